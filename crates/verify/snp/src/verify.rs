//! Verification of SEV-SNP evidence: endorsement chain to a pinned root, report signature,
//! endorsement extensions against the report, then the caller's policy.
//!
//! Trust: the evidence is entirely host-supplied. The only trusted inputs are the anchor
//! (AMD's roots pinned in [`crate::roots`], or a development root the caller configured),
//! the policy and the time. The real and the simulated platform run this same function; the
//! anchor alone decides which roots are acceptable, and the verdict says which one it was.

use serde::Serialize;
use sotto_verify_core::x509::{Cert, CertError, ChainRules, HashAlg, PublicKey};
use sotto_verify_core::{ChainCache, UnixTime};

use crate::ext;
use crate::policy::ser_hex;
use crate::report::{
    AttestationReport, ParseError, PolicyBits, SigningKey, SIGNED_LEN, SIG_ALGO_ECDSA_P384_SHA384,
};
use crate::roots::{chain_pem, pinned_cert};
use crate::{Product, SnpPolicy, TcbVersion};

/// SEV-SNP evidence as relayed by the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpEvidence {
    /// The raw 1184-byte ATTESTATION_REPORT.
    pub report: Vec<u8>,
    /// DER of the VCEK or VLEK that signed the report.
    pub endorsement_der: Vec<u8>,
    /// DER of `[intermediate, root]` (ASK or ASVK, then ARK) as the host had them. May be
    /// empty or just `[intermediate]` under [`SnpAnchor::Amd`], which has its own copies;
    /// must be `[intermediate, root]` under [`SnpAnchor::Simulated`].
    pub chain_der: Vec<Vec<u8>>,
}

/// What the evidence must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnpAnchor {
    /// AMD's roots pinned in this crate; the product is read from the endorsement.
    Amd,
    /// A development root the user explicitly chose to trust (see the `sim` feature). Evidence
    /// accepted under it proves nothing about hardware.
    Simulated { root_der: Vec<u8> },
}

/// The kind of key that endorses a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Versioned Chip Endorsement Key: unique to one chip and TCB, signed by the ASK.
    Vcek,
    /// Versioned Loaded Endorsement Key: issued to a cloud provider, signed by the ASVK.
    Vlek,
}

/// Why evidence was refused: one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnpError {
    #[error("attestation report is malformed: {0}")]
    Parse(ParseError),
    #[error("attestation report version {0} is not supported (expected 2, 3 or 5)")]
    UnsupportedVersion(u32),
    #[error("report signature algorithm {0} is not ECDSA P-384 with SHA-384")]
    UnsupportedSignatureAlgorithm(u32),
    #[error(
        "endorsement certificate is neither a VCEK (hwID extension) nor a VLEK (CSP ID extension)"
    )]
    UnknownEndorsementKind,
    #[error(
        "report says it was signed by {report:?} but the endorsement certificate is a {cert:?}"
    )]
    CertKindMismatch { report: SigningKey, cert: KeyKind },
    #[error("endorsement certificate has no recognised productName ({0:?})")]
    UnknownProduct(Option<String>),
    #[error("evidence chain holds {found} certificates; expected {expected}")]
    ChainShape {
        found: usize,
        expected: &'static str,
    },
    #[error("the chain does not end at AMD's pinned root for this product")]
    NotAmdRoot,
    #[error("the chain's root is not the configured simulated root")]
    SimulatedRootMismatch,
    #[error("certificate chain refused: {0}")]
    Chain(CertError),
    #[error("endorsement key is not a P-384 ECDSA key")]
    EndorsementKeyType,
    #[error("report signature has non-zero padding above its 48-byte R or S")]
    SignatureEncoding,
    #[error("report signature does not verify under the endorsement key")]
    SignatureInvalid,
    #[error("endorsement certificate's {0} extension is missing or malformed")]
    BadExtension(&'static str),
    #[error("report TCB {field} is {report} but the endorsement certifies {cert}")]
    TcbMismatch {
        field: &'static str,
        report: u8,
        cert: u8,
    },
    #[error("report CHIP_ID differs from the endorsement's hwID")]
    ChipIdMismatch,
    #[error("guest policy allows debugging")]
    DebugAllowed,
    #[error("guest policy allows a migration agent")]
    MigrationAgent,
    #[error("report came from VMPL {vmpl}, above the allowed {max}")]
    Vmpl { vmpl: u32, max: u32 },
    #[error("reported TCB {field} is {reported}, below the required {minimum}")]
    TcbBelowMinimum {
        field: &'static str,
        reported: u8,
        minimum: u8,
    },
    #[error("measurement {0} is not in the allowed list")]
    MeasurementNotAllowed(String),
    #[error("REPORT_DATA differs from the expected value")]
    ReportDataMismatch,
    #[error("HOST_DATA differs from the expected value")]
    HostDataMismatch,
}

/// What a verified report establishes, for the caller and for JSON output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnpVerdict {
    /// "sev-snp" for AMD-rooted evidence, "simulated" for the development root.
    pub platform: &'static str,
    pub product: Product,
    pub key_kind: KeyKind,
    pub report_version: u32,
    #[serde(serialize_with = "ser_hex")]
    pub measurement: [u8; 48],
    #[serde(serialize_with = "ser_hex")]
    pub report_data: [u8; 64],
    #[serde(serialize_with = "ser_hex")]
    pub host_data: [u8; 32],
    #[serde(serialize_with = "ser_hex")]
    pub chip_id: [u8; 64],
    pub reported_tcb: TcbVersion,
    pub policy: PolicyBits,
    pub guest_svn: u32,
    pub vmpl: u32,
    /// The checks that passed, in order.
    pub checks: Vec<&'static str>,
}

/// Verifies `evidence` against `anchor` and `policy` as of `at`.
pub fn verify(
    evidence: &SnpEvidence,
    anchor: &SnpAnchor,
    policy: &SnpPolicy,
    at: UnixTime,
) -> Result<SnpVerdict, SnpError> {
    verify_cached(evidence, anchor, policy, at, &mut ChainCache::new())
}

/// [`verify`], skipping the certificate signatures already proven in `cache` (typically the
/// VCEK's, for a client that sees the same chip again) and remembering the ones it proves.
/// Only signatures are cached: every other check, validity at `at` included, runs each call.
pub fn verify_cached(
    evidence: &SnpEvidence,
    anchor: &SnpAnchor,
    policy: &SnpPolicy,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<SnpVerdict, SnpError> {
    let mut checks = Vec::new();

    let report = AttestationReport::parse(&evidence.report).map_err(|e| match e {
        ParseError::UnsupportedVersion(v) => SnpError::UnsupportedVersion(v),
        other => SnpError::Parse(other),
    })?;
    checks.push("report-layout");
    if report.signature_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(SnpError::UnsupportedSignatureAlgorithm(
            report.signature_algo,
        ));
    }

    let endorsement = Cert::from_der(&evidence.endorsement_der).map_err(SnpError::Chain)?;
    let kind = endorsement_kind(&endorsement)?;
    let report_key = report.key_info.signing_key();
    let kinds_agree = matches!(
        (report_key, kind),
        (SigningKey::Vcek, KeyKind::Vcek) | (SigningKey::Vlek, KeyKind::Vlek)
    );
    if !kinds_agree {
        return Err(SnpError::CertKindMismatch {
            report: report_key,
            cert: kind,
        });
    }
    checks.push("endorsement-kind-matches-report");

    // The product only selects which pinned root to try; a false name cannot help an
    // attacker because the chain must then verify under that product's AMD root.
    let name = ext::product_name(&endorsement);
    let product = name
        .as_deref()
        .and_then(Product::from_product_name)
        .ok_or_else(|| SnpError::UnknownProduct(name.clone()))?;

    let platform = match anchor {
        SnpAnchor::Amd => {
            verify_amd_chain(evidence, &endorsement, product, kind, at, cache)?;
            checks.push("chain-to-pinned-amd-root");
            "sev-snp"
        }
        SnpAnchor::Simulated { root_der } => {
            verify_simulated_chain(evidence, &endorsement, root_der, at, cache)?;
            checks.push("chain-to-configured-simulated-root");
            "simulated"
        }
    };

    verify_report_signature(&endorsement, &evidence.report, &report)?;
    checks.push("report-signature");

    let reported_tcb = TcbVersion::decode(report.reported_tcb, product);
    check_tcb_extensions(&endorsement, &reported_tcb, product)?;
    checks.push("reported-tcb-matches-endorsement");
    if kind == KeyKind::Vcek {
        check_chip_id(&endorsement, &report.chip_id, product)?;
        checks.push("chip-id-matches-endorsement");
    }

    check_policy(&report, &reported_tcb, policy, &mut checks)?;

    Ok(SnpVerdict {
        platform,
        product,
        key_kind: kind,
        report_version: report.version,
        measurement: report.measurement,
        report_data: report.report_data,
        host_data: report.host_data,
        chip_id: report.chip_id,
        reported_tcb,
        policy: report.policy.decoded(),
        guest_svn: report.guest_svn,
        vmpl: report.vmpl,
        checks,
    })
}

/// A VCEK names its chip (hwID); a VLEK names its cloud provider (CSP ID) instead.
fn endorsement_kind(cert: &Cert) -> Result<KeyKind, SnpError> {
    match (
        cert.extension(ext::HW_ID).is_some(),
        cert.extension(ext::CSP_ID).is_some(),
    ) {
        (true, false) => Ok(KeyKind::Vcek),
        (false, true) => Ok(KeyKind::Vlek),
        _ => Err(SnpError::UnknownEndorsementKind),
    }
}

/// Verifies the endorsement to AMD's pinned roots for its product. When the intermediate is
/// the pinned ASK/ASVK itself (or the host sent none), the pinned intermediate is the anchor:
/// its signature by the ARK is a constant that `roots`' unit tests prove, so only the
/// endorsement's own signature is computed. Any other intermediate must verify under the ARK.
fn verify_amd_chain(
    evidence: &SnpEvidence,
    endorsement: &Cert,
    product: Product,
    kind: KeyKind,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<(), SnpError> {
    let (pinned_inter, pinned_ark) = chain_pem(product, kind).ok_or(SnpError::NotAmdRoot)?;
    let ark = pinned_cert(pinned_ark).map_err(SnpError::Chain)?;
    let pinned_inter = pinned_cert(pinned_inter).map_err(SnpError::Chain)?;
    let sent = match evidence.chain_der.as_slice() {
        [] => None,
        [inter] => Some(inter),
        [inter, root] => {
            if root.as_slice() != ark.der() {
                return Err(SnpError::NotAmdRoot);
            }
            Some(inter)
        }
        more => {
            return Err(SnpError::ChainShape {
                found: more.len(),
                expected: "0, 1 or 2",
            })
        }
    };
    match sent {
        Some(inter) if inter.as_slice() != pinned_inter.der() => {
            let inter = Cert::from_der(inter).map_err(SnpError::Chain)?;
            Cert::verify_chain_to_anchor(endorsement, &[inter], &ark, at, cache)
        }
        _ => {
            ark.check_validity(at).map_err(SnpError::Chain)?;
            Cert::verify_chain_to_anchor(endorsement, &[], &pinned_inter, at, cache)
        }
    }
    .map_err(SnpError::Chain)
}

/// Verifies the endorsement to the development root the caller configured, which must be the
/// evidence's root byte for byte and, not being a pinned constant, is checked to be self-signed.
/// Development chains are held to [`ChainRules::BASELINE`]: the simulated authority's
/// persisted chains carry no keyUsage (absent is accepted; present without keyCertSign is
/// not), whereas AMD's chains are held to [`ChainRules::VENDOR`].
fn verify_simulated_chain(
    evidence: &SnpEvidence,
    endorsement: &Cert,
    root_der: &[u8],
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<(), SnpError> {
    let [inter, root] = evidence.chain_der.as_slice() else {
        return Err(SnpError::ChainShape {
            found: evidence.chain_der.len(),
            expected: "2",
        });
    };
    if root.as_slice() != root_der {
        return Err(SnpError::SimulatedRootMismatch);
    }
    let intermediate = Cert::from_der(inter).map_err(SnpError::Chain)?;
    let root = Cert::from_der(root_der).map_err(SnpError::Chain)?;
    root.verify_issued_by(&root).map_err(SnpError::Chain)?;
    Cert::verify_chain_to_anchor_with(
        endorsement,
        &[intermediate],
        &root,
        at,
        cache,
        ChainRules::BASELINE,
    )
    .map_err(SnpError::Chain)
}

fn verify_report_signature(
    endorsement: &Cert,
    raw_report: &[u8],
    report: &AttestationReport,
) -> Result<(), SnpError> {
    let key = endorsement.public_key().map_err(SnpError::Chain)?;
    if !matches!(key, PublicKey::P384(_)) {
        return Err(SnpError::EndorsementKeyType);
    }
    let (r, s) = report
        .signature
        .p384_be()
        .ok_or(SnpError::SignatureEncoding)?;
    // Sign over the bytes exactly as received rather than a re-serialization.
    let signed = raw_report
        .get(..SIGNED_LEN)
        .ok_or(SnpError::Parse(ParseError::Length {
            found: raw_report.len(),
            expected: SIGNED_LEN,
        }))?;
    key.verify_ecdsa_raw(HashAlg::Sha384, signed, &r, &s)
        .map_err(|_| SnpError::SignatureInvalid)
}

/// The endorsement key is derived from one TCB; a report claiming another TCB under it is
/// inconsistent (e.g. an old key replayed with a rolled-forward TCB field).
fn check_tcb_extensions(
    endorsement: &Cert,
    reported: &TcbVersion,
    product: Product,
) -> Result<(), SnpError> {
    let mut fields = vec![
        ("bootloader", ext::BL_SPL, reported.bootloader),
        ("tee", ext::TEE_SPL, reported.tee),
        ("snp", ext::SNP_SPL, reported.snp),
        ("microcode", ext::UCODE_SPL, reported.microcode),
    ];
    if product.has_fmc() {
        fields.insert(0, ("fmc", ext::FMC_SPL, reported.fmc.unwrap_or(0)));
    }
    for (field, oid, report) in fields {
        let cert = ext::spl(endorsement, oid).ok_or(SnpError::BadExtension(field))?;
        if cert != report {
            return Err(SnpError::TcbMismatch {
                field,
                report,
                cert,
            });
        }
    }
    Ok(())
}

/// Binds a VCEK to the chip that produced the report. Turin VCEKs carry only the first eight
/// bytes of the chip identifier.
fn check_chip_id(endorsement: &Cert, chip_id: &[u8; 64], product: Product) -> Result<(), SnpError> {
    let hw_id = ext::hw_id(endorsement).ok_or(SnpError::BadExtension("hwID"))?;
    let matches = hw_id == chip_id.as_slice()
        || (product == Product::Turin && hw_id.len() == 8 && chip_id.get(..8) == Some(hw_id));
    if matches {
        Ok(())
    } else {
        Err(SnpError::ChipIdMismatch)
    }
}

fn check_policy(
    report: &AttestationReport,
    reported_tcb: &TcbVersion,
    policy: &SnpPolicy,
    checks: &mut Vec<&'static str>,
) -> Result<(), SnpError> {
    if report.policy.debug() && !policy.allow_debug {
        return Err(SnpError::DebugAllowed);
    }
    checks.push("policy-debug");
    if report.policy.migrate_ma() && !policy.allow_migration_agent {
        return Err(SnpError::MigrationAgent);
    }
    checks.push("policy-migration-agent");
    if let Some(max) = policy.max_vmpl {
        if report.vmpl > max {
            return Err(SnpError::Vmpl {
                vmpl: report.vmpl,
                max,
            });
        }
        checks.push("vmpl");
    }
    if let Some(minimum) = &policy.minimum_tcb {
        if let Some((field, reported, minimum)) = reported_tcb.first_below(minimum) {
            return Err(SnpError::TcbBelowMinimum {
                field,
                reported,
                minimum,
            });
        }
        checks.push("minimum-tcb");
    }
    if !policy.allowed_measurements.is_empty() {
        if !policy.allowed_measurements.contains(&report.measurement) {
            return Err(SnpError::MeasurementNotAllowed(hex::encode(
                report.measurement,
            )));
        }
        checks.push("measurement-allowed");
    }
    if let Some(expected) = &policy.expected_report_data {
        if expected != &report.report_data {
            return Err(SnpError::ReportDataMismatch);
        }
        checks.push("report-data");
    }
    if let Some(expected) = &policy.expected_host_data {
        if expected != &report.host_data {
            return Err(SnpError::HostDataMismatch);
        }
        checks.push("host-data");
    }
    Ok(())
}
