//! `moltvault grep`: searches sealed and plain transcripts without writing plaintext anywhere.

use std::io::{BufRead, BufReader, Write};
use std::time::SystemTime;

use moltvault_gateway::TranscriptKind;
use moltvault_vault::Vault;

use crate::commands::Ctx;
use crate::commands::cat::{open_plain, read_error};
use crate::commands::key::{UnlockArgs, unlock};
use crate::commands::seal::{gateway, parse_duration};
use crate::report::{Status, user_error};
use crate::ui;

/// Searches every transcript (sealed ones decrypted in memory, `.zst` archives decompressed)
/// for a regular expression and prints `<file>:<line>:<text>` for each matching line.
///
/// The vault is unlocked once, only if a sealed file is searched. Exit status as grep: 0 when
/// something matched, 1 when nothing did, 2 on error.
#[derive(Debug, clap::Args)]
pub struct GrepArgs {
    /// The regular expression (Rust regex syntax).
    pattern: String,
    /// Only this agent's transcripts.
    #[arg(long, value_name = "AGENT")]
    agent: Option<String>,
    /// Only files modified within this duration (`12h`, `7d`) or since this date (YYYY-MM-DD).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Ignore case.
    #[arg(long, short = 'i')]
    ignore_case: bool,
    /// Print only a count of matching lines per file.
    #[arg(long, short = 'c')]
    count: bool,
    /// Print only the names of files with a match.
    #[arg(long, short = 'l')]
    files_with_matches: bool,
    #[command(flatten)]
    unlock: UnlockArgs,
}

fn since_time(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(d) = parse_duration(s) {
        return Ok(SystemTime::now() - d);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s, &fmt).map_err(|_| {
        user_error(
            format!("{s:?} is neither a duration nor a date"),
            "Use a duration such as 7d or a date such as 2026-11-01.",
        )
    })?;
    let t = date.midnight().assume_utc();
    Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(t.unix_timestamp().max(0) as u64))
}

pub fn run(ctx: &Ctx, args: GrepArgs) -> anyhow::Result<Status> {
    let re = regex::bytes::RegexBuilder::new(&args.pattern)
        .case_insensitive(args.ignore_case)
        .build()
        .map_err(|e| {
            user_error(
                format!("invalid pattern: {e}"),
                "Write a Rust regex (https://docs.rs/regex); escape metacharacters with \\.",
            )
        })?;
    let since = args.since.as_deref().map(since_time).transpose()?;
    let gw = gateway(ctx)?;
    let mut files = gw.transcript_files()?;
    files.retain(|f| {
        args.agent.as_ref().is_none_or(|a| &f.agent == a)
            && since.is_none_or(|t| {
                std::fs::symlink_metadata(&f.path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m >= t)
            })
    });
    let identity = if files.iter().any(|f| f.kind == TranscriptKind::Sealed) {
        let vault = Vault::open(&ctx.vault_dir)?;
        Some(unlock(&vault, &args.unlock)?)
    } else {
        None
    };
    let mut out = ui::stdout();
    let mut any = false;
    let mut line = Vec::with_capacity(64 * 1024);
    for f in &files {
        let r = open_plain(f, identity.as_ref())?;
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let name = f.path.display().to_string();
        let (mut n, mut hits) = (0u64, 0u64);
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    let _ = out.flush();
                    return Err(read_error(f, e));
                }
            }
            n += 1;
            if !re.is_match(&line) {
                continue;
            }
            hits += 1;
            if args.count {
                continue;
            }
            if args.files_with_matches {
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let res = write!(out, "{name}:{n}:")
                .and_then(|_| out.write_all(text))
                .and_then(|_| out.write_all(b"\n"));
            if let Err(e) = res {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(Status::Ok);
                }
                return Err(e.into());
            }
        }
        if hits > 0 {
            any = true;
        }
        if args.count {
            writeln!(out, "{name}:{hits}")?;
        } else if args.files_with_matches && hits > 0 {
            writeln!(out, "{name}")?;
        }
    }
    out.flush()?;
    Ok(if any { Status::Ok } else { Status::Findings })
}
