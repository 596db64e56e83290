//! `moltvault serve` (not implemented yet).

use crate::commands::Ctx;
use crate::report::Status;

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn run(_ctx: &Ctx, _args: ServeArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault serve` is not implemented yet",
        "See the CHANGELOG for what this version can do.",
    ))
}
