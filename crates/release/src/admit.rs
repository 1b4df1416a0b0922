//! Which logged releases count, and whether a verified enclave is one of them.
//!
//! A release counts when its statement is signed by a quorum of the pinned release keys and no
//! revocation, signed the same way, names it. An enclave is admitted when one such release
//! lists the launch measurement its hardware reported and the model, engine and version its
//! manifest names, and its TCB, VMPL, guest policy, TD attributes and GPU meet the release's
//! floor. Entries that are not quorum-signed statements grant nothing.

use std::sync::OnceLock;

use sotto_tlog::note::{Note, Verifier};
use sotto_verify::{CpuVerdict, Verdict};
use sotto_verify_snp::SnpVerdict;
use sotto_verify_tdx::TdxVerdict;

use crate::manifest::{statement_digest, Release, Revocation, Statement};
use crate::trust::Trust;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("no release in the log lists this enclave's {platform} measurement {measurement}: it is not a build the release keys signed")]
    NotListed {
        platform: &'static str,
        measurement: String,
    },
    #[error("the release {version} that lists this measurement was revoked: {reason}")]
    Revoked { version: String, reason: String },
    #[error("the release {version} that lists this measurement is signed by {have} of the {need} release keys required")]
    BelowQuorum {
        version: String,
        have: usize,
        need: usize,
    },
    #[error("the enclave serves model {sha256}, which its release {version} does not list")]
    Model { version: String, sha256: String },
    #[error("the enclave claims release {claimed}, but its measurement is release {version}'s")]
    Version { claimed: String, version: String },
    #[error("the enclave runs engine {claimed}, its release {version} names {expected}")]
    Engine {
        version: String,
        claimed: String,
        expected: String,
    },
    #[error("release {version} refuses this enclave: {why}")]
    Floor { version: String, why: String },
    #[error("a simulated enclave is admitted only by a development log's trust configuration")]
    SimulatedInProduction,
}

/// What the enclave's manifest claims (already bound to its evidence by the channel).
#[derive(Clone, Copy, Debug)]
pub struct Claims<'a> {
    pub release: &'a str,
    pub model_sha256: &'a str,
    pub model_size: u64,
    pub engine_name: &'a str,
    pub engine_version: &'a str,
    pub engine_context: u32,
}

/// A release entry of the log and who signed it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub index: u64,
    pub release: Release,
    /// SHA-256 of its statement text.
    pub digest: String,
    pub signers: Vec<String>,
}

/// What the client was admitted to talk to, for the user to see.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Admitted {
    pub name: String,
    pub version: String,
    pub source_commit: String,
    /// Its index in the log.
    pub index: u64,
    pub digest: String,
    pub signers: Vec<String>,
}

/// One statement of the log, parsed; its signatures are checked the first time they matter.
#[derive(Debug)]
struct Parsed {
    index: u64,
    note: Note,
    statement: Statement,
    digest: String,
    signers: OnceLock<Vec<String>>,
}

/// Every statement of a verified log. A release counts when a quorum of the pinned release
/// keys signed it and no revocation signed the same way names it. Signatures are verified
/// lazily and once: admitting an enclave checks only the releases that list its measurement
/// and the revocations that name them, so a long log costs a parse per entry, not a
/// signature check per entry.
#[derive(Debug, Default)]
pub struct ReleaseSet {
    quorum: usize,
    dev: bool,
    keys: Vec<Verifier>,
    statements: Vec<Parsed>,
    /// Entries that are not signed statements at all, by index.
    pub ignored: Vec<u64>,
}

impl ReleaseSet {
    /// Reads every entry of a verified log.
    pub fn from_entries(trust: &Trust, entries: &[Vec<u8>]) -> Self {
        let mut set = ReleaseSet {
            quorum: trust.file.release_keys.quorum,
            dev: trust.is_dev(),
            keys: trust.release_keys.clone(),
            ..Default::default()
        };
        for (i, entry) in entries.iter().enumerate() {
            let index = i as u64;
            let parsed = Note::parse(entry).ok().and_then(|note| {
                let statement = Statement::parse(note.text()).ok()?;
                Some((note, statement))
            });
            match parsed {
                Some((note, statement)) => set.statements.push(Parsed {
                    index,
                    digest: statement_digest(note.text()),
                    note,
                    statement,
                    signers: OnceLock::new(),
                }),
                None => set.ignored.push(index),
            }
        }
        set
    }

    /// The pinned release keys whose signatures on `p` verify (none if one of them fails).
    fn signers<'a>(&self, p: &'a Parsed) -> &'a [String] {
        p.signers.get_or_init(|| {
            p.note
                .verify(&self.keys)
                .map(|v| v.into_iter().map(|v| v.name).collect())
                .unwrap_or_default()
        })
    }

    fn logged(&self, p: &Parsed, release: &Release) -> Logged {
        Logged {
            index: p.index,
            release: release.clone(),
            digest: p.digest.clone(),
            signers: self.signers(p).to_vec(),
        }
    }

    fn revocation(&self, digest: &str) -> Option<&Revocation> {
        self.statements.iter().find_map(|p| match &p.statement {
            Statement::Revocation(r)
                if r.release_sha256 == digest && self.signers(p).len() >= self.quorum =>
            {
                Some(r)
            }
            _ => None,
        })
    }

    /// The releases signed by the quorum (revoked or not), oldest first.
    pub fn releases(&self) -> Vec<Logged> {
        self.statements
            .iter()
            .filter_map(|p| match &p.statement {
                Statement::Release(r) if self.signers(p).len() >= self.quorum => {
                    Some(self.logged(p, r))
                }
                _ => None,
            })
            .collect()
    }

    /// The releases that count and have not been revoked, oldest first.
    pub fn current(&self) -> Vec<Logged> {
        self.releases()
            .into_iter()
            .filter(|l| self.revocation(&l.digest).is_none())
            .collect()
    }

    /// Admits a verified enclave, or says why not. Newer releases are tried first.
    pub fn admit(&self, verdict: &Verdict, claims: &Claims<'_>) -> Result<Admitted, AdmitError> {
        if verdict.is_simulated() && !self.dev {
            return Err(AdmitError::SimulatedInProduction);
        }
        let mut first_error = None;
        let mut below_quorum = None;
        for p in self.statements.iter().rev() {
            let Statement::Release(release) = &p.statement else {
                continue;
            };
            if !lists_measurement(release, &verdict.cpu) {
                continue;
            }
            let signers = self.signers(p);
            if signers.len() < self.quorum {
                below_quorum.get_or_insert(AdmitError::BelowQuorum {
                    version: release.version.clone(),
                    have: signers.len(),
                    need: self.quorum,
                });
                continue;
            }
            if let Some(rev) = self.revocation(&p.digest) {
                first_error.get_or_insert(AdmitError::Revoked {
                    version: release.version.clone(),
                    reason: rev.reason.clone(),
                });
                continue;
            }
            match check_release(release, verdict, claims) {
                Ok(()) => {
                    return Ok(Admitted {
                        name: release.name.clone(),
                        version: release.version.clone(),
                        source_commit: release.source_commit.clone(),
                        index: p.index,
                        digest: p.digest.clone(),
                        signers: signers.to_vec(),
                    })
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error.or(below_quorum) {
            return Err(e);
        }
        let (platform, measurement) = measurement_of(verdict);
        Err(AdmitError::NotListed {
            platform,
            measurement,
        })
    }
}

/// How a refusal names the measurement it looked for.
fn measurement_of(verdict: &Verdict) -> (&'static str, String) {
    let platform = match verdict.cpu {
        CpuVerdict::SevSnp(_) => "SEV-SNP",
        CpuVerdict::Simulated(_) => "simulated",
        CpuVerdict::Tdx(_) => "TDX (MRTD)",
    };
    (platform, hex::encode(verdict.launch_measurement()))
}

fn tdx_matches(m: &crate::manifest::TdxMeasurement, v: &TdxVerdict) -> bool {
    let eq = |want: &str, got: &[u8; 48]| want == hex::encode(got);
    eq(&m.mrtd, &v.mrtd)
        && eq(&m.rtmr0, &v.rtmrs[0])
        && eq(&m.rtmr1, &v.rtmrs[1])
        && eq(&m.rtmr2, &v.rtmrs[2])
        && m.rtmr3.as_deref().is_none_or(|r| eq(r, &v.rtmrs[3]))
        && m.mrconfigid.as_deref().is_none_or(|c| eq(c, &v.mrconfigid))
}

fn lists_measurement(r: &Release, cpu: &CpuVerdict) -> bool {
    match cpu {
        CpuVerdict::SevSnp(v) => r.platforms.sev_snp.as_ref().is_some_and(|s| {
            let m = hex::encode(v.measurement);
            s.measurements.iter().any(|x| x.measurement == m)
        }),
        CpuVerdict::Simulated(v) => r
            .platforms
            .simulated
            .as_ref()
            .is_some_and(|s| s.measurements.contains(&hex::encode(v.measurement))),
        CpuVerdict::Tdx(v) => r
            .platforms
            .tdx
            .as_ref()
            .is_some_and(|t| t.measurements.iter().any(|m| tdx_matches(m, v))),
    }
}

fn floor(r: &Release, why: impl Into<String>) -> AdmitError {
    AdmitError::Floor {
        version: r.version.clone(),
        why: why.into(),
    }
}

fn check_snp(r: &Release, v: &SnpVerdict) -> Result<(), AdmitError> {
    let Some(s) = &r.platforms.sev_snp else {
        return Ok(());
    };
    if v.vmpl != s.vmpl {
        return Err(floor(
            r,
            format!(
                "its report comes from VMPL {}, the release requires VMPL {}",
                v.vmpl, s.vmpl
            ),
        ));
    }
    let got = v.reported_tcb;
    let min = s.minimum_tcb;
    let low = [
        ("bootloader", got.bootloader, min.bootloader),
        ("TEE", got.tee, min.tee),
        ("SNP firmware", got.snp, min.snp),
        ("microcode", got.microcode, min.microcode),
        ("FMC", got.fmc.unwrap_or(0), min.fmc.unwrap_or(0)),
    ];
    if let Some((what, have, need)) = low.iter().find(|(_, have, need)| have < need) {
        return Err(floor(
            r,
            format!("its {what} TCB level {have} is below the release's minimum {need}"),
        ));
    }
    let policy = format!("{:016x}", v.policy.raw);
    if policy != s.guest_policy {
        return Err(floor(
            r,
            format!(
                "its guest policy is {policy}, the release requires {}",
                s.guest_policy
            ),
        ));
    }
    Ok(())
}

fn check_tdx(r: &Release, v: &TdxVerdict) -> Result<(), AdmitError> {
    let Some(t) = &r.platforms.tdx else {
        return Ok(());
    };
    let attributes = hex::encode(v.td_attributes);
    if attributes != t.td_attributes {
        return Err(floor(
            r,
            format!(
                "its TD attributes are {attributes}, the release requires {}",
                t.td_attributes
            ),
        ));
    }
    let floor_n = t.minimum_tcb_evaluation_data_number;
    for (what, n) in [
        ("TCB info", v.tcb_info_evaluation_data_number),
        ("QE identity", v.qe_identity_evaluation_data_number),
    ] {
        if n < floor_n {
            return Err(floor(
                r,
                format!(
                    "Intel's {what} collateral is at evaluation data number {n}, below the \
                     release's minimum {floor_n}"
                ),
            ));
        }
    }
    Ok(())
}

fn check_release(r: &Release, verdict: &Verdict, c: &Claims<'_>) -> Result<(), AdmitError> {
    if c.release != r.version {
        return Err(AdmitError::Version {
            claimed: c.release.to_string(),
            version: r.version.clone(),
        });
    }
    if !r
        .models
        .iter()
        .any(|m| m.sha256 == c.model_sha256 && m.size == c.model_size)
    {
        return Err(AdmitError::Model {
            version: r.version.clone(),
            sha256: c.model_sha256.to_string(),
        });
    }
    let e = &r.engine;
    if (e.name.as_str(), e.version.as_str(), e.context)
        != (c.engine_name, c.engine_version, c.engine_context)
    {
        return Err(AdmitError::Engine {
            version: r.version.clone(),
            claimed: format!(
                "{} {} (context {})",
                c.engine_name, c.engine_version, c.engine_context
            ),
            expected: format!("{} {} (context {})", e.name, e.version, e.context),
        });
    }
    match &verdict.cpu {
        CpuVerdict::SevSnp(v) => check_snp(r, v)?,
        CpuVerdict::Simulated(v) => {
            if v.vmpl != 0 {
                return Err(floor(r, format!("its report comes from VMPL {}", v.vmpl)));
            }
        }
        CpuVerdict::Tdx(v) => check_tdx(r, v)?,
    }
    match (&r.gpu, &verdict.gpu) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err(floor(
                r,
                "the release serves no GPU, the enclave attests one",
            ))
        }
        (Some(g), None) if g.required => {
            return Err(floor(r, "the release requires an attested GPU"))
        }
        (Some(_), None) => {}
        (Some(g), Some(v)) => {
            use sotto_verify_nvidia::CcMode;
            if g.cc_mode
                && !matches!(
                    v.cc_mode,
                    CcMode::MultiGpuPassthrough | CcMode::SingleGpuPassthrough
                )
            {
                return Err(floor(
                    r,
                    "the GPU's signed measurements do not show confidential-computing mode",
                ));
            }
            if !g.rim_sha256.is_empty()
                && (v.rim_sha256.is_empty()
                    || !v.rim_sha256.iter().all(|h| g.rim_sha256.contains(h)))
            {
                return Err(floor(
                    r,
                    "the GPU was checked against RIMs the release does not list",
                ));
            }
        }
    }
    Ok(())
}
