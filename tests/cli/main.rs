//! The CLI end to end: one test binary, one module per verb.

mod archive;
mod audit;
mod backup;
mod help;
mod plugin;
mod redact;
mod rotate;
mod rotate_vault;
mod scan;
mod seal;
mod secrets;
mod status;
mod vault;
