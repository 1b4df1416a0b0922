//! The release statement: which launch measurements, models, engine, web files and client
//! binaries make up one Sotto release, or the revocation of one.
//!
//! A statement is canonical JSON (the fields in the order declared here, maps sorted by key,
//! no whitespace) followed by one newline; that text is the body of a signed note whose
//! signatures are the release keys'. Parsing refuses unknown fields and any text that is not
//! exactly the canonical serialisation of what it parsed to, so one release has one spelling
//! and one digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` of every statement this version writes and reads.
pub const FORMAT: &str = "sotto-release/v1";
/// A statement larger than this is refused (it must fit a log entry with its signatures).
pub const MAX_STATEMENT: usize = 48 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the statement is larger than {MAX_STATEMENT} bytes")]
    TooLarge,
    #[error("the statement is not valid JSON of a release or revocation: {0}")]
    Json(String),
    #[error("the statement is not in canonical form (fields in order, no whitespace, one final newline)")]
    NotCanonical,
    #[error("unsupported statement format {0:?} (this client reads {FORMAT})")]
    Format(String),
    #[error("{field}: {why}")]
    Field {
        field: &'static str,
        why: &'static str,
    },
}

fn field(field: &'static str, why: &'static str) -> ManifestError {
    ManifestError::Field { field, why }
}

fn is_hex(s: &str, bytes: usize) -> bool {
    s.len() == bytes * 2 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Statement {
    Release(Box<Release>),
    Revocation(Revocation),
}

/// One release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub format: String,
    pub name: String,
    /// Equal to the `release` an enclave of this build puts in its manifest.
    pub version: String,
    /// The source commit it was built from (40 lower-case hex digits).
    pub source_commit: String,
    pub platforms: Platforms,
    pub models: Vec<Model>,
    pub engine: Engine,
    /// GPU requirements; `None`: this release serves no GPU.
    pub gpu: Option<Gpu>,
    /// The web client's files; `None`: this release ships no web client.
    pub web: Option<WebBundle>,
    /// The released client binaries.
    pub clients: Vec<ClientBinary>,
}

/// Accepted launch measurements, per platform. A platform that is `None` is not accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platforms {
    pub sev_snp: Option<SevSnp>,
    pub tdx: Option<Tdx>,
    /// The development platform: only a trust configuration marked `dev` admits it.
    pub simulated: Option<Simulated>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SevSnp {
    /// One MEASUREMENT per deployment shape (vCPU count and type, VMM).
    pub measurements: Vec<SnpMeasurement>,
    /// Every component of the report's REPORTED_TCB must be at least this.
    pub minimum_tcb: SnpTcb,
    /// The VMPL the enclave's reports must come from (0: the most privileged).
    pub vmpl: u32,
    /// The guest POLICY the enclave must have been launched with (hex, 16 digits).
    pub guest_policy: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpMeasurement {
    pub vcpus: u32,
    pub vcpu_type: String,
    pub vmm: String,
    /// 96 lower-case hex digits.
    pub measurement: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later only.
    pub fmc: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tdx {
    /// One entry per platform profile (firmware, kernel and command line as measured).
    pub measurements: Vec<TdxMeasurement>,
    /// TD_ATTRIBUTES the TD must have exactly (16 hex digits).
    pub td_attributes: String,
    /// The lowest tcbEvaluationDataNumber accepted in the TCB info and QE identity.
    pub minimum_tcb_evaluation_data_number: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdxMeasurement {
    pub profile: String,
    pub mrtd: String,
    pub rtmr0: String,
    pub rtmr1: String,
    pub rtmr2: String,
    /// Pinned only when the release fixes what the TD extends into RTMR3 at run time.
    pub rtmr3: Option<String>,
    pub mrconfigid: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Simulated {
    /// The simulated platform's MEASUREMENT values (96 hex digits each).
    pub measurements: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    /// SHA-256 of the GGUF file, 64 lower-case hex digits.
    pub sha256: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    pub name: String,
    pub version: String,
    /// The context window in tokens the enclave runs with.
    pub context: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// Refuse an enclave of this release that attests no GPU.
    pub required: bool,
    /// The GPU must be in confidential-computing mode.
    pub cc_mode: bool,
    /// SHA-256 of the driver and VBIOS reference integrity manifests the GPU must match.
    pub rim_sha256: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebBundle {
    /// The bundle digest the server computes and serves at /.well-known/sotto-bundle.sha256.
    pub digest: String,
    /// Every file of the bundle by path below the site root (`index.html`, `app.js`, …) and
    /// its SHA-256; what a browser extension or `sotto verify web` compares.
    pub files: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBinary {
    /// e.g. `sotto-x86_64-unknown-linux-gnu`.
    pub name: String,
    pub sha256: String,
}

/// The revocation of one release: clients refuse it from the moment they see this entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub format: String,
    pub name: String,
    pub version: String,
    /// SHA-256 of the revoked release's statement text.
    pub release_sha256: String,
    pub reason: String,
}

impl Statement {
    /// The canonical text: JSON and a final newline.
    pub fn to_text(&self) -> Result<String, ManifestError> {
        self.validate()?;
        let mut s = serde_json::to_string(self).map_err(|e| ManifestError::Json(e.to_string()))?;
        s.push('\n');
        if s.len() > MAX_STATEMENT {
            return Err(ManifestError::TooLarge);
        }
        Ok(s)
    }

    /// Parses a canonical statement text (a note's text).
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        if text.len() > MAX_STATEMENT {
            return Err(ManifestError::TooLarge);
        }
        let json = text.strip_suffix('\n').ok_or(ManifestError::NotCanonical)?;
        let statement: Statement =
            crate::parse_format(json, FORMAT, ManifestError::Json, ManifestError::Format)?;
        statement.validate()?;
        if statement.to_text()? != text {
            return Err(ManifestError::NotCanonical);
        }
        Ok(statement)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        match self {
            Statement::Release(r) => r.validate(),
            Statement::Revocation(r) => r.validate(),
        }
    }
}

/// SHA-256 of a statement's text: how a revocation names the release it revokes.
pub fn statement_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn check_name(name: &str, what: &'static str) -> Result<(), ManifestError> {
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(field(what, "must be 1 to 200 printable characters"));
    }
    Ok(())
}

/// What every statement starts with: this format, a name and a version.
fn check_heading(format: &str, name: &str, version: &str) -> Result<(), ManifestError> {
    if format != FORMAT {
        return Err(ManifestError::Format(format.to_string()));
    }
    check_name(name, "name")?;
    check_name(version, "version")
}

impl Release {
    fn validate(&self) -> Result<(), ManifestError> {
        check_heading(&self.format, &self.name, &self.version)?;
        if !is_hex(&self.source_commit, 20) {
            return Err(field("source_commit", "must be 40 lower-case hex digits"));
        }
        let p = &self.platforms;
        if p.sev_snp.is_none() && p.tdx.is_none() && p.simulated.is_none() {
            return Err(field(
                "platforms",
                "a release must accept at least one platform",
            ));
        }
        if let Some(snp) = &p.sev_snp {
            if snp.measurements.is_empty() {
                return Err(field("platforms.sev_snp.measurements", "empty"));
            }
            for m in &snp.measurements {
                if !is_hex(&m.measurement, 48) {
                    return Err(field(
                        "platforms.sev_snp.measurements",
                        "each measurement is 96 lower-case hex digits",
                    ));
                }
                check_name(&m.vcpu_type, "platforms.sev_snp.measurements.vcpu_type")?;
                check_name(&m.vmm, "platforms.sev_snp.measurements.vmm")?;
            }
            if !is_hex(&snp.guest_policy, 8) {
                return Err(field(
                    "platforms.sev_snp.guest_policy",
                    "must be 16 lower-case hex digits",
                ));
            }
        }
        if let Some(tdx) = &p.tdx {
            if tdx.measurements.is_empty() {
                return Err(field("platforms.tdx.measurements", "empty"));
            }
            for m in &tdx.measurements {
                check_name(&m.profile, "platforms.tdx.measurements.profile")?;
                let fixed = [&m.mrtd, &m.rtmr0, &m.rtmr1, &m.rtmr2];
                let optional = [&m.rtmr3, &m.mrconfigid];
                if !fixed.iter().all(|h| is_hex(h, 48))
                    || !optional
                        .iter()
                        .all(|h| h.as_ref().is_none_or(|h| is_hex(h, 48)))
                {
                    return Err(field(
                        "platforms.tdx.measurements",
                        "MRTD, RTMRs and MRCONFIGID are 96 lower-case hex digits",
                    ));
                }
            }
            if !is_hex(&tdx.td_attributes, 8) {
                return Err(field(
                    "platforms.tdx.td_attributes",
                    "must be 16 lower-case hex digits",
                ));
            }
        }
        if let Some(sim) = &p.simulated {
            if sim.measurements.is_empty() || !sim.measurements.iter().all(|m| is_hex(m, 48)) {
                return Err(field(
                    "platforms.simulated.measurements",
                    "one or more measurements of 96 lower-case hex digits",
                ));
            }
        }
        if self.models.is_empty() {
            return Err(field("models", "a release serves at least one model"));
        }
        for m in &self.models {
            check_name(&m.name, "models.name")?;
            if !is_hex(&m.sha256, 32) {
                return Err(field("models.sha256", "must be 64 lower-case hex digits"));
            }
        }
        check_name(&self.engine.name, "engine.name")?;
        check_name(&self.engine.version, "engine.version")?;
        if let Some(gpu) = &self.gpu {
            if !gpu.rim_sha256.iter().all(|h| is_hex(h, 32)) {
                return Err(field("gpu.rim_sha256", "each is 64 lower-case hex digits"));
            }
        }
        if let Some(web) = &self.web {
            if !is_hex(&web.digest, 32) || !web.files.values().all(|h| is_hex(h, 32)) {
                return Err(field("web", "digests are 64 lower-case hex digits"));
            }
            if web.files.is_empty() {
                return Err(field("web.files", "empty"));
            }
            for path in web.files.keys() {
                if path.is_empty()
                    || path.starts_with('/')
                    || path
                        .split('/')
                        .any(|s| s.is_empty() || s == "." || s == "..")
                {
                    return Err(field("web.files", "paths are relative, without . or .."));
                }
            }
        }
        for c in &self.clients {
            check_name(&c.name, "clients.name")?;
            if !is_hex(&c.sha256, 32) {
                return Err(field("clients.sha256", "must be 64 lower-case hex digits"));
            }
        }
        Ok(())
    }
}

impl Revocation {
    fn validate(&self) -> Result<(), ManifestError> {
        check_heading(&self.format, &self.name, &self.version)?;
        if !is_hex(&self.release_sha256, 32) {
            return Err(field("release_sha256", "must be 64 lower-case hex digits"));
        }
        if self.reason.len() > 2000 || self.reason.chars().any(char::is_control) {
            return Err(field("reason", "at most 2000 printable characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Release {
        Release {
            format: FORMAT.into(),
            name: "sotto".into(),
            version: "0.1.0".into(),
            source_commit: "0123456789abcdef0123456789abcdef01234567".into(),
            platforms: Platforms {
                sev_snp: Some(SevSnp {
                    measurements: vec![SnpMeasurement {
                        vcpus: 4,
                        vcpu_type: "EPYC-v4".into(),
                        vmm: "qemu".into(),
                        measurement: "ab".repeat(48),
                    }],
                    minimum_tcb: SnpTcb {
                        bootloader: 3,
                        tee: 0,
                        snp: 8,
                        microcode: 115,
                        fmc: None,
                    },
                    vmpl: 0,
                    guest_policy: "0000000000030000".into(),
                }),
                tdx: None,
                simulated: Some(Simulated {
                    measurements: vec!["cd".repeat(48)],
                }),
            },
            models: vec![Model {
                name: "tiny".into(),
                sha256: "ef".repeat(32),
                size: 1234,
            }],
            engine: Engine {
                name: "llama.cpp".into(),
                version: "b1".into(),
                context: 4096,
            },
            gpu: None,
            web: Some(WebBundle {
                digest: "01".repeat(32),
                files: [("app.js".to_string(), "02".repeat(32))]
                    .into_iter()
                    .collect(),
            }),
            clients: vec![],
        }
    }

    #[test]
    fn canonical_round_trip() {
        let s = Statement::Release(Box::new(sample()));
        let text = s.to_text().unwrap();
        assert!(text.starts_with("{\"kind\":\"release\",\"format\":\"sotto-release/v1\""));
        assert_eq!(Statement::parse(&text).unwrap(), s);
        let spaced = text.replacen(',', ", ", 1);
        assert_eq!(Statement::parse(&spaced), Err(ManifestError::NotCanonical));
        assert_eq!(
            Statement::parse(text.trim_end()),
            Err(ManifestError::NotCanonical)
        );
        let extra = text.replacen("{\"kind\"", "{\"extra\":1,\"kind\"", 1);
        assert!(matches!(
            Statement::parse(&extra),
            Err(ManifestError::Json(_))
        ));
        let v2 = text.replace(FORMAT, "sotto-release/v2");
        assert!(matches!(
            Statement::parse(&v2),
            Err(ManifestError::Format(_))
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let mut r = sample();
        r.source_commit = "xyz".into();
        assert!(matches!(
            Statement::Release(Box::new(r)).to_text(),
            Err(ManifestError::Field {
                field: "source_commit",
                ..
            })
        ));
        let mut r = sample();
        r.web.as_mut().unwrap().files = [("../etc".to_string(), "02".repeat(32))]
            .into_iter()
            .collect();
        assert!(Statement::Release(Box::new(r)).to_text().is_err());
        let mut r = sample();
        r.platforms = Platforms::default();
        assert!(Statement::Release(Box::new(r)).to_text().is_err());
    }
}
