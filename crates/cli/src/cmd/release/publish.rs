//! `sotto release publish`, `revoke` and `refresh`: appending signed statements to a log
//! directory (crash-safe, in sotto-log), writing revocations, and keeping the checkpoint's
//! witness cosignatures fresh.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sotto_log::{collect_cosignatures, Log, WitnessEndpoint};
use sotto_release::manifest::{statement_digest, Revocation, Statement, FORMAT};
use sotto_release::Trust;
use sotto_tlog::note::{Note, Signer};

use super::manifest::{read_statement, write_out};
use super::{keys, AnyError};

/// `URL,VKEY`: a witness's submission prefix and its cosignature vkey.
pub fn parse_witness(s: &str) -> Result<WitnessEndpoint, String> {
    let (url, vkey) = s
        .rsplit_once(',')
        .ok_or_else(|| format!("{s:?}: expected URL,VKEY"))?;
    let verifier = sotto_tlog::note::Verifier::parse(vkey).map_err(|e| format!("{vkey}: {e}"))?;
    if verifier.kind() != sotto_tlog::note::TYPE_COSIGNATURE_V1 {
        return Err(format!("{vkey}: not a cosignature/v1 witness key"));
    }
    Ok(WitnessEndpoint {
        url: url.to_string(),
        verifier,
    })
}

#[derive(Args)]
pub struct PublishArgs {
    /// The log directory (served as is at /log/ by `sotto server --log-dir`); created when
    /// empty.
    #[arg(long)]
    pub log: PathBuf,
    /// The log's key (its name is the log's origin).
    #[arg(long)]
    pub key: PathBuf,
    /// A witness to cosign the new checkpoint, as URL,VKEY (repeatable).
    #[arg(long = "witness", value_parser = parse_witness)]
    pub witnesses: Vec<WitnessEndpoint>,
    /// Refuse to publish a statement that is not signed by the quorum of release keys this
    /// trust configuration pins.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// The signed statement (from `sotto release sign`).
    pub statement: PathBuf,
}

pub fn http() -> Result<reqwest::Client, AnyError> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Appends `note` unless an entry with the same statement is already logged; returns its
/// index and whether it was new.
pub fn append_statement(
    log: &mut Log,
    signer: &Signer,
    note: &Note,
) -> Result<(u64, bool), AnyError> {
    if note.signatures().is_empty() {
        return Err("the statement is not signed (run `sotto release sign` first)".into());
    }
    let existing = log
        .entries()
        .iter()
        .position(|e| Note::parse(e).is_ok_and(|n| n.text() == note.text()));
    if let Some(i) = existing {
        return Ok((i as u64, false));
    }
    let index = log.size();
    log.append(signer, &[note.to_bytes()])?;
    Ok((index, true))
}

/// Collects cosignatures and says how it went on standard error.
pub async fn cosign(
    http: &reqwest::Client,
    log: &mut Log,
    witnesses: &[WitnessEndpoint],
) -> Result<usize, sotto_log::LogError> {
    if witnesses.is_empty() {
        return Ok(0);
    }
    let (kept, failures) = collect_cosignatures(http, log, witnesses).await?;
    for f in &failures {
        eprintln!("sotto: {f}");
    }
    Ok(kept)
}

pub async fn publish(args: PublishArgs) -> Result<ExitCode, AnyError> {
    let signer = keys::load(&args.key)?;
    let (note, statement) = read_statement(&args.statement)?;
    if let Some(path) = &args.trust {
        let trust = Trust::parse(
            &std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        )?;
        let signed = note.verify(&trust.release_keys)?.len();
        let need = trust.file.release_keys.quorum;
        if signed < need {
            return Err(format!(
                "the statement is signed by {signed} of the {need} release keys {} requires",
                path.display()
            )
            .into());
        }
    }
    let mut log = Log::open_or_create(&args.log, &signer)?;
    let (index, new) = append_statement(&mut log, &signer, &note)?;
    let kept = cosign(&http()?, &mut log, &args.witnesses).await?;
    let what = match &statement {
        Statement::Release(r) => format!("release {} {}", r.name, r.version),
        Statement::Revocation(r) => format!("revocation of {} {}", r.name, r.version),
    };
    if new {
        println!(
            "published the {what} at index {index}: {} is now of size {}, cosigned by {kept} of {} witnesses",
            log.origin(),
            log.size(),
            args.witnesses.len()
        );
    } else {
        println!("the {what} is already in {} at index {index}", log.origin());
    }
    Ok(if kept < args.witnesses.len() {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Args)]
pub struct RevokeArgs {
    /// The log directory holding the release.
    #[arg(long)]
    pub log: PathBuf,
    /// The log's public vkey (to check the directory before reading it).
    #[arg(long)]
    pub log_vkey: String,
    /// The version of the release to revoke.
    #[arg(long)]
    pub version: String,
    /// Why, for the users who will be refused.
    #[arg(long)]
    pub reason: String,
    /// Write the revocation statement here (default: standard output); sign it with
    /// `sotto release sign` and append it with `sotto release publish`.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn logged_releases(log: &Log) -> Vec<(u64, String, sotto_release::Release)> {
    log.entries()
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let note = Note::parse(e).ok()?;
            match Statement::parse(note.text()).ok()? {
                Statement::Release(r) => Some((i as u64, statement_digest(note.text()), *r)),
                Statement::Revocation(_) => None,
            }
        })
        .collect()
}

pub fn revoke(args: RevokeArgs) -> Result<ExitCode, AnyError> {
    let log = Log::open(&args.log, &keys::vkey(&args.log_vkey)?)?;
    let matching: Vec<_> = logged_releases(&log)
        .into_iter()
        .filter(|(_, _, r)| r.version == args.version)
        .collect();
    let (index, digest, release) = match matching.as_slice() {
        [one] => one.clone(),
        [] => return Err(format!("no release {} in {}", args.version, log.origin()).into()),
        _ => {
            return Err(format!(
                "{} releases named {} in the log; revoke them one by one is not supported yet",
                matching.len(),
                args.version
            )
            .into())
        }
    };
    let statement = Statement::Revocation(Revocation {
        format: FORMAT.into(),
        name: release.name.clone(),
        version: release.version.clone(),
        release_sha256: digest,
        reason: args.reason,
    });
    write_out(args.output.as_deref(), statement.to_text()?.as_bytes())?;
    eprintln!(
        "wrote the revocation of {} {} (log entry {index}); sign it with the release keys, then publish it",
        release.name, release.version
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct RefreshArgs {
    #[arg(long)]
    pub log: PathBuf,
    /// The log's public vkey.
    #[arg(long)]
    pub log_vkey: String,
    /// A witness, as URL,VKEY (repeatable).
    #[arg(long = "witness", value_parser = parse_witness, required = true)]
    pub witnesses: Vec<WitnessEndpoint>,
    /// Keep refreshing at this interval (e.g. `1h`); without it, refresh once.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub every: Option<Duration>,
}

pub async fn refresh(args: RefreshArgs) -> Result<ExitCode, AnyError> {
    let verifier = keys::vkey(&args.log_vkey)?;
    let http = http()?;
    loop {
        let kept = {
            let mut log = Log::open(&args.log, &verifier)?;
            let kept = cosign(&http, &mut log, &args.witnesses).await?;
            println!(
                "{} at size {}: {kept} of {} witnesses cosigned",
                log.origin(),
                log.size(),
                args.witnesses.len()
            );
            kept
        };
        match args.every {
            Some(every) => tokio::time::sleep(every).await,
            None => {
                return Ok(if kept < args.witnesses.len() {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                })
            }
        }
    }
}
