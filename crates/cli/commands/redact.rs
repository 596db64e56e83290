//! `moltvault redact` (not implemented yet).

use crate::commands::Ctx;
use crate::report::Status;

/// (Not implemented yet.)
#[derive(Debug, clap::Args)]
pub struct RedactArgs {}

pub fn run(_ctx: &Ctx, _args: RedactArgs) -> anyhow::Result<Status> {
    Err(crate::report::user_error(
        "`moltvault redact` is not implemented yet",
        "See the CHANGELOG for what this version can do.",
    ))
}
