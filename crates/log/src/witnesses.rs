//! Asking witnesses to cosign the log's checkpoint (c2sp.org/tlog-witness `add-checkpoint`).
//!
//! A witness that does not know the log's size answers 409 with the size it last cosigned; the
//! log then sends the consistency proof from that size. Re-submitting an unchanged checkpoint
//! (old size = size, no proof) gets a fresh cosignature, which keeps cosignatures within the
//! age clients accept. Answers are untrusted: only cosignature lines that verify against the
//! witness's pinned key on this checkpoint are kept.

use std::time::Duration;

use sotto_tlog::note::{parse_signature_lines, Note, SignatureLine, Verifier};
use sotto_tlog::witness::{parse_size_body, AddCheckpoint};
use sotto_tlog::Checkpoint;

use crate::dir::{Log, LogError};

/// One witness: where to submit, and its cosignature key.
#[derive(Clone, Debug)]
pub struct WitnessEndpoint {
    /// The submission prefix; `add-checkpoint` is appended.
    pub url: String,
    pub verifier: Verifier,
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("witness {name}: cannot reach {url}: {why}")]
    Unreachable {
        name: String,
        url: String,
        why: String,
    },
    #[error("witness {name} refused the checkpoint: {status} {body}")]
    Refused {
        name: String,
        status: u16,
        body: String,
    },
    #[error("witness {name} has cosigned a tree of size {size}, larger than this log's {ours}: the log was rolled back or forked")]
    Ahead { name: String, size: u64, ours: u64 },
    #[error("witness {name} answered without a valid cosignature")]
    NoCosignature { name: String },
    #[error("{0}")]
    Log(#[from] LogError),
}

async fn submit(
    http: &reqwest::Client,
    w: &WitnessEndpoint,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), WitnessError> {
    let url = format!("{}/add-checkpoint", w.url.trim_end_matches('/'));
    let unreachable = |e: reqwest::Error| WitnessError::Unreachable {
        name: w.verifier.name().to_string(),
        url: url.clone(),
        why: e.to_string(),
    };
    let resp = http
        .post(&url)
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(unreachable)?;
    Ok((status, bytes.to_vec()))
}

fn printable(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .replace(char::is_control, " ")
}

/// Gets one witness's cosignature on the log's current checkpoint.
pub async fn cosign_one(
    http: &reqwest::Client,
    log: &Log,
    w: &WitnessEndpoint,
    known_size: Option<u64>,
) -> Result<SignatureLine, WitnessError> {
    let name = w.verifier.name().to_string();
    let checkpoint = Note::parse(&log.checkpoint().to_bytes()).map_err(LogError::from)?;
    let text = checkpoint.text().to_string();
    let mut bare = Note::new(text.clone()).map_err(LogError::from)?;
    for s in checkpoint.signatures() {
        if !(s.name == name && s.key_id == w.verifier.key_id()) {
            bare.add_signature(s.clone());
        }
    }
    let ours = Checkpoint::parse(&text)
        .map_err(|e| WitnessError::Refused {
            name: name.clone(),
            status: 0,
            body: e.to_string(),
        })?
        .size;
    let mut old = known_size.unwrap_or(ours).min(ours);
    for _ in 0..2 {
        let request = AddCheckpoint {
            old_size: old,
            proof: log.consistency_proof(old)?,
            checkpoint: bare.to_bytes(),
        };
        let (status, body) = submit(http, w, request.to_body()).await?;
        match status {
            200 => {
                let lines = parse_signature_lines(&body)
                    .map_err(|_| WitnessError::NoCosignature { name: name.clone() })?;
                for line in lines {
                    let mut probe = Note::new(text.clone()).map_err(LogError::from)?;
                    probe.add_signature(line.clone());
                    if probe
                        .verify(std::slice::from_ref(&w.verifier))
                        .is_ok_and(|v| v.iter().any(|v| v.timestamp.is_some()))
                    {
                        return Ok(line);
                    }
                }
                return Err(WitnessError::NoCosignature { name });
            }
            409 => {
                let size = parse_size_body(&body).ok_or_else(|| WitnessError::Refused {
                    name: name.clone(),
                    status,
                    body: printable(&body),
                })?;
                if size > ours {
                    return Err(WitnessError::Ahead { name, size, ours });
                }
                old = size;
            }
            _ => {
                return Err(WitnessError::Refused {
                    name,
                    status,
                    body: printable(&body),
                })
            }
        }
    }
    Err(WitnessError::Refused {
        name,
        status: 409,
        body: "the witness's size changed while the log was answering".into(),
    })
}

/// Asks every witness (in turn) and writes the cosignatures that verified into the served
/// checkpoint. Returns the number kept and the failures, which the caller reports.
pub async fn collect_cosignatures(
    http: &reqwest::Client,
    log: &mut Log,
    witnesses: &[WitnessEndpoint],
) -> Result<(usize, Vec<WitnessError>), LogError> {
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for w in witnesses {
        match cosign_one(http, log, w, None).await {
            Ok(line) => lines.push(line),
            Err(e) => {
                tracing::warn!(witness = w.verifier.name(), error = %e, "no cosignature");
                failures.push(e);
            }
        }
    }
    let verifiers: Vec<Verifier> = witnesses.iter().map(|w| w.verifier.clone()).collect();
    let kept = log.set_cosignatures(&verifiers, &lines)?;
    Ok((kept, failures))
}
