//! `moltvault grep`: searches sealed and plain transcripts without writing plaintext anywhere.

use std::io::{Read, Write};
use std::time::SystemTime;

use moltvault_gateway::TranscriptKind;
use moltvault_vault::Vault;

use crate::commands::Ctx;
use crate::commands::cat::{open_plain, read_error};
use crate::commands::key::{UnlockArgs, unlock};
use crate::commands::seal::parse_duration;
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
        .multi_line(true)
        .build()
        .map_err(|e| {
            user_error(
                format!("invalid pattern: {e}"),
                "Write a Rust regex (https://docs.rs/regex); escape metacharacters with \\.",
            )
        })?;
    let since = args.since.as_deref().map(since_time).transpose()?;
    let gw = ctx.gateway()?;
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
    let mode = if args.count {
        Mode::Count
    } else if args.files_with_matches {
        Mode::Files
    } else {
        Mode::Lines
    };
    for f in &files {
        let r = open_plain(f, identity.as_ref())?;
        let name = f.path.display().to_string();
        let res = search(r, &re, mode, |n, line| {
            write!(out, "{name}:{n}:")?;
            out.write_all(line)?;
            out.write_all(b"\n")
        });
        let hits = match res {
            Ok(h) => h,
            Err(SearchError::Read(e)) => {
                let _ = out.flush();
                return Err(read_error(f, e));
            }
            Err(SearchError::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(Status::Ok);
            }
            Err(SearchError::Write(e)) => return Err(e.into()),
        };
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Lines,
    Count,
    Files,
}

enum SearchError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Searches a stream line by line the way ripgrep does: the regex runs over large blocks and
/// only the lines holding a candidate match are isolated and re-checked on their own (so a match
/// never spans lines). Returns the number of matching lines; `emit` gets each one (number, text
/// without its newline) in [`Mode::Lines`].
fn search(
    mut r: impl Read,
    re: &regex::bytes::Regex,
    mode: Mode,
    mut emit: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> Result<u64, SearchError> {
    const BLOCK: usize = 1 << 20;
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0usize;
    let mut line_no = 0u64; // lines fully consumed before the block
    let mut hits = 0u64;
    let mut eof = false;
    while !eof {
        if len == buf.len() {
            // One line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = loop {
            match r.read(&mut buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SearchError::Read(e)),
            }
        };
        if n == 0 {
            eof = true;
        }
        len += n;
        // Search only whole lines; keep a trailing partial line for the next round.
        let end = if eof {
            len
        } else {
            match memchr::memrchr(b'\n', &buf[..len]) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let block = &buf[..end];
        let mut pos = 0usize;
        let mut counted = 0usize;
        while pos < block.len() {
            let Some(m) = re.find_at(block, pos) else {
                break;
            };
            let start = memchr::memrchr(b'\n', &block[pos..m.start()]).map_or(pos, |i| pos + i + 1);
            let stop =
                memchr::memchr(b'\n', &block[m.start()..]).map_or(block.len(), |i| m.start() + i);
            let line = &block[start..stop];
            if re.is_match(line) {
                hits += 1;
                if mode == Mode::Files {
                    return Ok(hits);
                }
                if mode == Mode::Lines {
                    line_no += memchr::memchr_iter(b'\n', &block[counted..start]).count() as u64;
                    counted = start;
                    emit(line_no + 1, line).map_err(SearchError::Write)?;
                }
            }
            pos = stop + 1;
        }
        if mode == Mode::Lines {
            line_no += memchr::memchr_iter(b'\n', &block[counted..end]).count() as u64;
        }
        buf.copy_within(end..len, 0);
        len -= end;
    }
    Ok(hits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str, pat: &str) -> Vec<(u64, String)> {
        let re = regex::bytes::RegexBuilder::new(pat)
            .multi_line(true)
            .build()
            .unwrap();
        let mut out = Vec::new();
        let hits = search(text.as_bytes(), &re, Mode::Lines, |n, l| {
            out.push((n, String::from_utf8_lossy(l).into_owned()));
            Ok(())
        })
        .ok()
        .unwrap();
        assert_eq!(hits as usize, out.len());
        out
    }

    #[test]
    fn finds_lines_with_numbers_and_never_spans_lines() {
        let t = "alpha\nbeta x\ngamma\nx delta x\nlast x";
        assert_eq!(
            lines(t, "x"),
            [
                (2, "beta x".into()),
                (4, "x delta x".into()),
                (5, "last x".into())
            ]
        );
        assert_eq!(lines(t, r"a\s+b"), Vec::<(u64, String)>::new());
        assert_eq!(lines(t, "^gamma$"), [(3, "gamma".into())]);
    }

    #[test]
    fn lines_longer_than_a_block_and_block_boundaries() {
        let long = "y".repeat(3 << 20);
        let t = format!("a\n{long}z\nb z\n");
        let got = lines(&t, "z");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 2);
        assert_eq!(got[1], (3, "b z".into()));
        let many: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
        let got = lines(&many, "^line 1999(9|8)$");
        assert_eq!(
            got,
            [(19999, "line 19998".into()), (20000, "line 19999".into())]
        );
    }
}
