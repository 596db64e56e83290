//! `moltvault seal` / `moltvault unseal` (not implemented yet).

use crate::commands::Ctx;
use crate::report::Status;

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct SealArgs {}

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct UnsealArgs {}

pub fn run_seal(_ctx: &Ctx, _args: SealArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault seal` is not implemented yet",
        "See the CHANGELOG.",
    ))
}

pub fn run_unseal(_ctx: &Ctx, _args: UnsealArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault unseal` is not implemented yet",
        "See the CHANGELOG.",
    ))
}
