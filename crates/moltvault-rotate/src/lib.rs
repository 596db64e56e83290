//! Owns `moltvault rotate`: the credential inventory of a gateway home, the provider catalogue
//! (data), offline validation, opt-in online verification, the crash-safe per-secret state
//! machine with its hash-chained write-ahead journal, the residue sweep and the incident report.
//!
//! Libraries never print: the flow talks to the user through the [`Prompter`] trait.
//!
//! ```
//! use moltvault_rotate::{Catalogue, FingerprintKey, InventoryOptions, discover};
//! let dir = tempfile::tempdir().unwrap();
//! let inv = discover(
//!     &InventoryOptions { state_dir: dir.path().into(), home: dir.path().into(), extra: vec![], vault: None },
//!     &Catalogue::builtin().unwrap(),
//!     &FingerprintKey::from_bytes([0; 32]),
//! ).unwrap();
//! assert!(inv.secrets.is_empty());
//! ```

pub mod catalogue;
mod engine;
mod error;
mod fingerprint;
pub mod inventory;
pub mod journal;
pub mod report;
mod stage;
pub mod sweep;
pub mod validate;
pub mod verify;

pub use catalogue::{Catalogue, Class, Origin, Provider};
pub use engine::{
    Env, Host, Lock, Mode, Plan, Prompter, RotateOptions, RunOutcome, Status, SweepMode,
    SystemHost, abort, active_run, generate_token, latest_run, plan, render_plan, resume, run_dir,
    start, status,
};
pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, FingerprintKey};
pub use inventory::{
    ExtraSecret, Inventory, InventoryOptions, Key, Location, LockedRef, Role, Secret, VaultAccess,
    discover,
};
pub use journal::{Event, Journal, PlanItem, Record, State};
pub use stage::Sealer;
pub use verify::{Outcome, Verification, Verifier};
