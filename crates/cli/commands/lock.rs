//! `moltvault lock` / `moltvault unlock` (not implemented yet).

use crate::commands::Ctx;
use crate::report::Status;

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct LockArgs {}

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {}

pub fn run_lock(_ctx: &Ctx, _args: LockArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault lock` is not implemented yet",
        "See the CHANGELOG.",
    ))
}

pub fn run_unlock(_ctx: &Ctx, _args: UnlockArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault unlock` is not implemented yet",
        "See the CHANGELOG.",
    ))
}
