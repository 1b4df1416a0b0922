//! What a client pins: the log's key, the witnesses and how many must cosign, the release keys
//! and how many must sign, and how fresh a cosignature must be.
//!
//! The client carries one compiled in ([`production`]); `--trust FILE` replaces it for a
//! self-hosted deployment, and `sotto up` writes one for its development log. A development
//! configuration's log origin carries the reserved prefix [`DEV_ORIGIN_PREFIX`] and only a
//! configuration marked `dev` may name such a log, so production pins can never be pointed at
//! a development log (and a development log can never pass for a production one).

use serde::{Deserialize, Serialize};
use sotto_tlog::note::{Verifier, TYPE_COSIGNATURE_V1, TYPE_ED25519};

pub const TRUST_FORMAT: &str = "sotto-trust/v1";
/// Every development log's origin starts with this (`.invalid` can never be a real domain).
pub const DEV_ORIGIN_PREFIX: &str = "dev.sotto.invalid/";
/// Cosignatures older than this are stale unless the configuration says otherwise.
pub const DEFAULT_MAX_COSIGNATURE_AGE_SECS: u64 = 24 * 3600;
/// How far in the future a cosignature's time may lie (clock skew).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// The production pins compiled into every client. `None` until the team has created the
/// production log, witness and release keys offline: until then a client built from this
/// source admits no enclave without `--trust` (or the local development stack's own log).
pub const PRODUCTION: Option<&str> = None;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("the trust configuration is not valid JSON: {0}")]
    Json(String),
    #[error("unsupported trust configuration format {0:?} (this client reads {TRUST_FORMAT})")]
    Format(String),
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error(
        "this build of Sotto pins no production release log yet, so it cannot tell which \
         enclaves are Sotto's; use --trust FILE (a self-hosted deployment's trust.json), or \
         --insecure-simulated for the local development stack"
    )]
    NoProductionPins,
}

fn invalid(what: &'static str, why: impl Into<String>) -> TrustError {
    TrustError::Invalid {
        what,
        why: why.into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustFile {
    pub format: String,
    /// A development configuration (`sotto up`): its log is a dev log, and it admits the
    /// simulated platform's releases.
    pub dev: bool,
    pub log: LogPin,
    pub witnesses: Quorum,
    pub release_keys: Quorum,
    pub max_cosignature_age_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPin {
    pub origin: String,
    /// The log's Ed25519 note vkey; its name is the origin.
    pub vkey: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    /// How many distinct keys of `keys` must have signed.
    pub quorum: usize,
    pub keys: Vec<String>,
}

/// A checked trust configuration, its keys parsed.
#[derive(Clone, Debug)]
pub struct Trust {
    pub file: TrustFile,
    pub log: Verifier,
    pub witnesses: Vec<Verifier>,
    pub release_keys: Vec<Verifier>,
}

fn keys(q: &Quorum, kind: u8, what: &'static str) -> Result<Vec<Verifier>, TrustError> {
    let mut out: Vec<Verifier> = Vec::new();
    for k in &q.keys {
        let v = Verifier::parse(k).map_err(|e| invalid(what, format!("{k}: {e}")))?;
        if v.kind() != kind {
            return Err(invalid(what, format!("{k}: wrong signature type")));
        }
        if out
            .iter()
            .any(|o| o.name() == v.name() && o.key_id() == v.key_id())
        {
            return Err(invalid(what, format!("{k} is listed twice")));
        }
        out.push(v);
    }
    if q.quorum == 0 || q.quorum > out.len() {
        return Err(invalid(
            what,
            format!("a quorum of {} of {} keys", q.quorum, out.len()),
        ));
    }
    Ok(out)
}

impl Trust {
    pub fn from_file(file: TrustFile) -> Result<Self, TrustError> {
        if file.format != TRUST_FORMAT {
            return Err(TrustError::Format(file.format));
        }
        let log =
            Verifier::parse(&file.log.vkey).map_err(|e| invalid("log.vkey", e.to_string()))?;
        if log.kind() != TYPE_ED25519 {
            return Err(invalid("log.vkey", "a log signs with an Ed25519 note key"));
        }
        if log.name() != file.log.origin {
            return Err(invalid(
                "log.vkey",
                "the key's name must be the log's origin",
            ));
        }
        if file.log.origin.starts_with(DEV_ORIGIN_PREFIX) != file.dev {
            return Err(invalid(
                "log.origin",
                if file.dev {
                    format!("a development log's origin starts with {DEV_ORIGIN_PREFIX}")
                } else {
                    format!(
                        "{} is a development log; only a dev configuration may pin it",
                        file.log.origin
                    )
                },
            ));
        }
        if file.max_cosignature_age_secs == 0 {
            return Err(invalid("max_cosignature_age_secs", "must be positive"));
        }
        let witnesses = keys(&file.witnesses, TYPE_COSIGNATURE_V1, "witnesses")?;
        let release_keys = keys(&file.release_keys, TYPE_ED25519, "release_keys")?;
        Ok(Trust {
            file,
            log,
            witnesses,
            release_keys,
        })
    }

    pub fn parse(json: &str) -> Result<Self, TrustError> {
        let file: TrustFile =
            crate::parse_format(json, TRUST_FORMAT, TrustError::Json, TrustError::Format)?;
        Self::from_file(file)
    }

    /// The pins compiled into this build.
    pub fn production() -> Result<Self, TrustError> {
        let trust = Self::parse(PRODUCTION.ok_or(TrustError::NoProductionPins)?)?;
        if trust.file.dev {
            return Err(invalid(
                "production pins",
                "must not be a dev configuration",
            ));
        }
        Ok(trust)
    }

    pub fn to_json(&self) -> String {
        // A struct of strings, integers and lists always serialises.
        serde_json::to_string_pretty(&self.file).unwrap_or_default()
    }

    pub fn origin(&self) -> &str {
        &self.file.log.origin
    }

    pub fn is_dev(&self) -> bool {
        self.file.dev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Keys;

    #[test]
    fn dev_and_production_logs_never_mix() {
        let dev = Keys::new("dev.sotto.invalid/abc", 1);
        Trust::from_file(dev.trust_file(true)).unwrap();
        assert!(Trust::from_file(dev.trust_file(false)).is_err());
        let prod = Keys::new("log.sotto.example", 1);
        Trust::from_file(prod.trust_file(false)).unwrap();
        assert!(Trust::from_file(prod.trust_file(true)).is_err());
        assert_eq!(
            Trust::production().unwrap_err(),
            TrustError::NoProductionPins
        );
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let k = Keys::new("log.sotto.example", 1);
        let mut f = k.trust_file(false);
        f.witnesses.quorum = f.witnesses.keys.len() + 1;
        assert!(Trust::from_file(f)
            .unwrap_err()
            .to_string()
            .contains("witnesses"));
        let mut f = k.trust_file(false);
        f.release_keys.keys.push(f.release_keys.keys[0].clone());
        assert!(Trust::from_file(f).is_err());
        let mut f = k.trust_file(false);
        f.witnesses.keys[0] = k.release[0].verifier().to_vkey();
        assert!(Trust::from_file(f).is_err());
        let mut f = k.trust_file(false);
        f.log.origin = "other".into();
        assert!(Trust::from_file(f).is_err());
        let json = Trust::from_file(k.trust_file(false)).unwrap().to_json();
        Trust::parse(&json).unwrap();
        assert!(matches!(
            Trust::parse(&json.replace("sotto-trust/v1", "sotto-trust/v9")),
            Err(TrustError::Format(_))
        ));
    }
}
