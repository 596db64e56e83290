//! `moltvault cat`: prints a transcript, sealed or plain, without writing plaintext to disk.

use std::io::{Read, Write};

use moltvault_gateway::{TranscriptFile, TranscriptKind};
use moltvault_vault::{Identity, Vault};

use crate::commands::Ctx;
use crate::commands::key::{UnlockArgs, unlock};
use crate::commands::seal::resolve;
use crate::report::{Status, user_error};
use crate::ui;

/// Prints a session's transcript on stdout, decrypting sealed files and decompressing `.zst`
/// archives in memory: no plaintext is written anywhere.
///
/// A sealed file is authenticated chunk by chunk (64 KiB): if it is truncated or damaged, the
/// chunks before the damage are printed and the command then fails, so treat the output of a
/// failed `cat` as incomplete.
#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// A session id (its main transcript) or a transcript file path.
    #[arg(value_name = "SESSION")]
    session: String,
    /// Which file of the session to print when it has several.
    #[arg(long, value_enum, default_value = "transcript")]
    file: WhichFile,
    #[command(flatten)]
    unlock: UnlockArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WhichFile {
    /// `<sid>.jsonl` (or, if gone, the newest archived copy).
    Transcript,
    /// `<sid>.trajectory.jsonl`.
    Trajectory,
}

/// Opens a transcript file (plain, sealed, zstd or sealed zstd) as a plaintext stream.
///
/// # Errors
/// The file cannot be opened or decrypted, or a sealed file is met without an identity.
pub fn open_plain(
    f: &TranscriptFile,
    identity: Option<&Identity>,
) -> anyhow::Result<Box<dyn Read + Send>> {
    if f.kind == TranscriptKind::Sealed {
        let Some(id) = identity else {
            anyhow::bail!("{} is sealed", f.path.display());
        };
        let r = moltvault_vault::seal::open_sealed(&f.path, id)?;
        if f.sealed_of.is_some_and(TranscriptKind::is_zstd) {
            return Ok(Box::new(zstd::stream::read::Decoder::new(r)?));
        }
        return Ok(Box::new(r));
    }
    let file = moltvault_vault::seal::open_regular(&f.path)?;
    if f.kind.is_zstd() {
        return Ok(Box::new(zstd::stream::read::Decoder::new(file)?));
    }
    Ok(Box::new(std::io::BufReader::with_capacity(
        256 * 1024,
        file,
    )))
}

fn effective_kind(f: &TranscriptFile) -> TranscriptKind {
    f.sealed_of.unwrap_or(f.kind)
}

pub fn run(ctx: &Ctx, args: CatArgs) -> anyhow::Result<Status> {
    let gw = ctx.gateway()?;
    let files = gw.transcript_files()?;
    let mut found = resolve(&files, std::slice::from_ref(&args.session), false)?;
    if found.len() > 1 {
        let want = match args.file {
            WhichFile::Transcript => [TranscriptKind::Jsonl],
            WhichFile::Trajectory => [TranscriptKind::Trajectory],
        };
        let mut primary: Vec<TranscriptFile> = found
            .iter()
            .filter(|f| want.contains(&effective_kind(f)))
            .cloned()
            .collect();
        if primary.is_empty() && args.file == WhichFile::Transcript {
            primary = found
                .iter()
                .filter(|f| effective_kind(f) != TranscriptKind::Trajectory)
                .cloned()
                .collect();
            primary.sort_by(|a, b| b.path.cmp(&a.path));
            primary.truncate(1);
        }
        if primary.len() != 1 {
            let list: Vec<String> = found.iter().map(|f| f.path.display().to_string()).collect();
            return Err(user_error(
                format!(
                    "session {} has several files: {}",
                    args.session,
                    list.join(", ")
                ),
                "Pass one of the paths instead of the session id.",
            ));
        }
        found = primary;
    }
    let f = &found[0];
    let identity = if f.kind == TranscriptKind::Sealed {
        let vault = Vault::open(&ctx.vault_dir)?;
        Some(unlock(&vault, &args.unlock)?)
    } else {
        None
    };
    let mut r = open_plain(f, identity.as_ref())?;
    let mut out = ui::stdout();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = out.flush();
                return Err(read_error(f, e));
            }
        };
        if let Err(e) = out.write_all(&buf[..n]) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(Status::Ok);
            }
            return Err(e.into());
        }
    }
    out.flush()?;
    Ok(Status::Ok)
}

/// Turns a read error of a (possibly sealed) transcript into a typed vault error.
pub fn read_error(f: &TranscriptFile, e: std::io::Error) -> anyhow::Error {
    if f.kind == TranscriptKind::Sealed {
        moltvault_vault::Error::Decrypt {
            path: f.path.clone(),
            kind: moltvault_vault::DecryptFailure::from_io(&e),
        }
        .into()
    } else {
        anyhow::Error::new(e).context(format!("cannot read {}", f.path.display()))
    }
}
