//! `moltvault status` (not implemented yet).

use crate::commands::Ctx;
use crate::report::Status;

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

pub fn run(_ctx: &Ctx, _args: StatusArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault status` is not implemented yet",
        "See the CHANGELOG for what this version can do.",
    ))
}
