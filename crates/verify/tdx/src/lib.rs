//! Intel TDX DCAP quote verification, implemented here from Intel's specifications: no
//! third-party verification service, no I/O, no clock (the time is an argument), and it builds
//! for wasm32 so the browser runs the same code.
//!
//! Trust: the only thing trusted is the Intel SGX Root CA pinned in [`roots`]. The quote comes
//! from the TD through an untrusted host, and the collateral from the host's cache; both are
//! refused unless every link verifies:
//!
//! 1. the PCK certificate chain in the quote → pinned root, valid at `at`, none of it revoked
//!    by the root CA CRL or the PCK CRL (themselves signed and current at `at`);
//! 2. the QE report signed by the PCK key, binding (REPORTDATA) the attestation key and QE
//!    authentication data; the quote's header and TD report signed by that attestation key;
//! 3. the QE identity and TCB info signed by Intel's TCB signing certificate (issued directly
//!    by the pinned root and named "Intel SGX TCB Signing": no other certificate that chains to
//!    the root, such as a PCK, may sign collateral), current at `at`, from an evaluation data
//!    number the policy still accepts; the QE matches its identity; the TCB info is the PCK's
//!    platform (FMSPC, PCE-ID); the platform, TDX module and QE TCB levels converge to a
//!    [`TcbStatus`];
//! 4. the relying party's [`TdxPolicy`]: accepted statuses, no debug, required and forbidden
//!    TD attributes, expected measurements.

pub mod attributes;
pub mod collateral;
pub mod pck;
pub mod policy;
pub mod quote;
pub mod roots;
pub mod tcb;

use sha2::{Digest, Sha256};
use sotto_verify_core::crl::{Crl, CrlError};
use sotto_verify_core::x509::{Cert, CertError, HashAlg};
pub use sotto_verify_core::{ChainCache, UnixTime};

pub use collateral::{Collateral, QeIdentity, TcbInfo, MAX_COLLATERAL_LEN};
use collateral::{Issuance, SignedJson};
pub use pck::PckPlatform;
pub use policy::{TdxPolicy, TdxVerdict};
pub use quote::{BodyKind, Quote, TdReport, MAX_QUOTE_LEN};
pub use tcb::TcbStatus;

/// Why a quote was refused: one variant per check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TdxError {
    #[error("quote is {len} bytes, more than the {max} accepted")]
    QuoteTooLarge { len: usize, max: usize },
    #[error("quote is malformed: {0}")]
    QuoteParse(String),
    #[error("quote version {0} is not supported (only 4 and 5)")]
    UnsupportedVersion(u16),
    #[error("TEE type {0:#x} is not TDX (0x81)")]
    UnsupportedTeeType(u32),
    #[error("attestation key type {0} is not ECDSA-256 with P-256 (2)")]
    UnsupportedAttestationKeyType(u16),
    #[error("quote body type {0} is not a TD report (2, 3 or 4)")]
    UnsupportedBodyType(u16),
    #[error("certification data type {0} is not supported (expected 6 wrapping 5)")]
    UnsupportedCertificationData(u16),
    #[error("collateral is {len} bytes, more than the {max} accepted")]
    CollateralTooLarge { len: usize, max: usize },
    #[error("collateral is malformed: {0}")]
    CollateralParse(String),
    #[error("the pinned Intel root certificate does not parse: {0}")]
    PinnedRootInvalid(CertError),
    #[error("PCK certificate chain does not verify to the Intel root: {0}")]
    PckChain(CertError),
    #[error("PCK certificate's SGX extension is malformed: {0}")]
    PckExtension(String),
    #[error("certificate '{subject}' of the PCK chain is revoked")]
    PckRevoked { subject: String },
    #[error("{crl} is invalid: {error}")]
    CrlInvalid { crl: &'static str, error: CrlError },
    #[error("{crl} is not current: {error}")]
    CrlExpired { crl: &'static str, error: CrlError },
    #[error("QE report signature does not verify under the PCK key")]
    QeReportSignature,
    #[error("QE report does not bind the attestation key and QE authentication data")]
    QeReportDataMismatch,
    #[error("quote signature does not verify under the attestation key")]
    QuoteSignature,
    #[error("{collateral} signing chain does not verify to the Intel root: {error}")]
    TcbSigningChain {
        collateral: &'static str,
        error: CertError,
    },
    #[error("{collateral} signing certificate '{subject}' is revoked")]
    TcbSigningRevoked {
        collateral: &'static str,
        subject: String,
    },
    #[error(
        "{collateral} is signed by '{subject}', which is not issued directly by the Intel SGX \
         Root CA ({intermediates} certificate(s) between them): only Intel's TCB signing \
         certificate may sign collateral"
    )]
    TcbSignerNotIssuedByRoot {
        collateral: &'static str,
        subject: String,
        intermediates: usize,
    },
    #[error(
        "{collateral} is signed by '{subject}', which is not Intel's TCB signing certificate \
         (CN=Intel SGX TCB Signing, O=Intel Corporation, L=Santa Clara, ST=CA, C=US)"
    )]
    TcbSignerSubject {
        collateral: &'static str,
        subject: String,
    },
    #[error(
        "{collateral} tcbEvaluationDataNumber {number} is below the policy's minimum {minimum}"
    )]
    TcbEvaluationDataNumberTooLow {
        collateral: &'static str,
        number: u32,
        minimum: u32,
    },
    #[error("QE identity signature does not verify")]
    QeIdentitySignature,
    #[error("QE identity is not valid before {issue_date} (checked at {at})")]
    QeIdentityNotYetValid { issue_date: u64, at: u64 },
    #[error("QE identity expired at {next_update} (checked at {at})")]
    QeIdentityExpired { next_update: u64, at: u64 },
    #[error("QE report {field} does not match Intel's QE identity")]
    QeIdentityMismatch { field: &'static str },
    #[error("QE ISVSVN {isv_svn} is below every TCB level of the QE identity")]
    QeTcbLevelNotFound { isv_svn: u16 },
    #[error("TCB info signature does not verify")]
    TcbInfoSignature,
    #[error("TCB info is not valid before {issue_date} (checked at {at})")]
    TcbInfoNotYetValid { issue_date: u64, at: u64 },
    #[error("TCB info expired at {next_update} (checked at {at})")]
    TcbInfoExpired { next_update: u64, at: u64 },
    #[error("PCK FMSPC {pck} does not match the TCB info's {tcb_info}")]
    FmspcMismatch { pck: String, tcb_info: String },
    #[error("PCK PCE-ID {pck} does not match the TCB info's {tcb_info}")]
    PceIdMismatch { pck: String, tcb_info: String },
    #[error("platform TCB is below every TCB level of the TCB info")]
    TcbLevelNotFound,
    #[error("TCB info has no TDX module identity {id}")]
    TdxModuleIdentityNotFound { id: String },
    #[error("TDX module {field} does not match the TCB info")]
    TdxModuleMismatch { field: &'static str },
    #[error("TDX module SVN {minor} (major {major}) is below every level of its identity")]
    TdxModuleTcbLevelNotFound { major: u8, minor: u8 },
    #[error("platform TCB is revoked")]
    TcbRevoked,
    #[error("TCB status {status} is not accepted by the policy")]
    TcbStatusNotAccepted { status: TcbStatus },
    #[error("TD runs in debug mode (TUD.DEBUG set), refused by the policy")]
    DebugEnabled,
    #[error(
        "TD attributes lack {missing:#018x} ({}), required by the policy",
        attributes::names(*.missing)
    )]
    TdAttributesMissing { missing: u64 },
    #[error(
        "TD attributes set {forbidden:#018x} ({}), forbidden by the policy",
        attributes::names(*.forbidden)
    )]
    TdAttributesForbidden { forbidden: u64 },
    #[error("MRTD does not match the policy")]
    MrtdMismatch,
    #[error("RTMR{index} does not match the policy")]
    RtmrMismatch { index: usize },
    #[error("MRCONFIGID does not match the policy")]
    MrConfigIdMismatch,
    #[error("REPORTDATA does not match the policy")]
    ReportDataMismatch,
}

/// Verifies a TDX quote against its collateral and a policy, as of `at`, rooted in the pinned
/// Intel SGX Root CA.
pub fn verify(
    quote: &[u8],
    collateral: &Collateral,
    policy: &TdxPolicy,
    at: UnixTime,
) -> Result<TdxVerdict, TdxError> {
    verify_cached(quote, collateral, policy, at, &mut ChainCache::new())
}

/// [`verify`], skipping the signatures already proven in `cache` and remembering the ones it
/// proves: the PCK chain, the TCB signing certificate, the CRLs, the QE report and the signed
/// QE identity and TCB info (all shared by every quote of a platform until the collateral is
/// renewed). The quote's own signature is always computed, and every other check (validity
/// windows at `at`, revocation, identities, TCB levels, policy) runs on each call.
pub fn verify_cached(
    quote: &[u8],
    collateral: &Collateral,
    policy: &TdxPolicy,
    at: UnixTime,
    cache: &mut ChainCache,
) -> Result<TdxVerdict, TdxError> {
    let root = roots::intel_sgx_root().map_err(TdxError::PinnedRootInvalid)?;
    verify_with_root(quote, collateral, policy, at, &root, cache)
}

/// [`verify`] rooted in a caller-chosen certificate, so tests can re-sign evidence under a
/// throwaway CA. Compiled only with the `test-root` feature; production builds cannot reach it.
#[cfg(feature = "test-root")]
pub fn verify_with_test_root(
    quote: &[u8],
    collateral: &Collateral,
    policy: &TdxPolicy,
    at: UnixTime,
    root_der: &[u8],
) -> Result<TdxVerdict, TdxError> {
    let root = Cert::from_der(root_der).map_err(TdxError::PckChain)?;
    // Unlike the pinned root, whose self-signature a unit test proves once, a caller's root is
    // checked here.
    root.verify_issued_by(&root).map_err(TdxError::PckChain)?;
    verify_with_root(quote, collateral, policy, at, &root, &mut ChainCache::new())
}

/// Splits a PEM-decoded chain into leaf and intermediates, dropping a trailing copy of the
/// anchor (Intel ships chains ending in the root). Any other trailing root is kept, so it must
/// then chain to the anchor and a foreign root fails there.
fn split_chain<'a>(chain: &'a [Cert], root: &Cert) -> Option<(&'a Cert, &'a [Cert])> {
    let chain = match chain.split_last() {
        Some((last, rest)) if last.der() == root.der() => rest,
        _ => chain,
    };
    chain.split_first()
}

/// The two documents Intel's TCB signing certificate signs, for the names and errors by which
/// their checks differ.
#[derive(Clone, Copy)]
enum Document {
    QeIdentity,
    TcbInfo,
}

impl Document {
    /// The name errors give the document, and the envelope's name for its JSON.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Document::QeIdentity => ("QE identity", "qe_identity"),
            Document::TcbInfo => ("TCB info", "tcb_info"),
        }
    }

    /// The verdict's checks [`verified_document`] passes: signature, validity, evaluation
    /// data number.
    fn checks(self) -> [&'static str; 3] {
        match self {
            Document::QeIdentity => [
                "qe_identity_signature",
                "qe_identity_validity",
                "qe_identity_evaluation_data_number",
            ],
            Document::TcbInfo => [
                "tcb_info_signature",
                "tcb_info_validity",
                "tcb_info_evaluation_data_number",
            ],
        }
    }

    fn bad_signature(self) -> TdxError {
        match self {
            Document::QeIdentity => TdxError::QeIdentitySignature,
            Document::TcbInfo => TdxError::TcbInfoSignature,
        }
    }

    fn not_yet_valid(self, issue_date: u64, at: UnixTime) -> TdxError {
        let at = at.0;
        match self {
            Document::QeIdentity => TdxError::QeIdentityNotYetValid { issue_date, at },
            Document::TcbInfo => TdxError::TcbInfoNotYetValid { issue_date, at },
        }
    }

    fn expired(self, next_update: u64, at: UnixTime) -> TdxError {
        let at = at.0;
        match self {
            Document::QeIdentity => TdxError::QeIdentityExpired { next_update, at },
            Document::TcbInfo => TdxError::TcbInfoExpired { next_update, at },
        }
    }
}

/// What a TCB signing certificate must chain to, and when.
struct TcbSignerAnchor<'a> {
    root: &'a Cert,
    root_crl: &'a Crl,
    at: UnixTime,
}

/// Verifies `signed` as the document `doc` and parses it: signed by Intel's TCB signing
/// certificate, then (once its bytes are proven Intel's) current at `at` and no older than
/// the policy's evaluation data number.
fn verified_document<T>(
    doc: Document,
    signed: &SignedJson,
    parse: fn(&[u8]) -> Result<T, TdxError>,
    anchor: &TcbSignerAnchor<'_>,
    policy: &TdxPolicy,
    cache: &mut ChainCache,
) -> Result<T, TdxError> {
    let (name, json_name) = doc.names();
    let signer = tcb_signer(&signed.chain, anchor, name, cache)?;
    let json = signed.json.as_bytes();
    if !verify_raw_sig(signer, json, &signed.signature, cache) {
        return Err(doc.bad_signature());
    }
    let document = parse(json)?;
    let issuance = Issuance::parse(json, json_name)?;
    let issue = collateral::parse_utc(&issuance.issue_date)?;
    let next = collateral::parse_utc(&issuance.next_update)?;
    if anchor.at.0 < issue {
        return Err(doc.not_yet_valid(issue, anchor.at));
    }
    if anchor.at.0 > next {
        return Err(doc.expired(next, anchor.at));
    }
    check_evaluation_number(policy, name, issuance.tcb_evaluation_data_number)?;
    Ok(document)
}

/// Verifies the signer of TCB info or QE identity and returns it. It must be Intel's TCB
/// signing certificate: issued directly by the root (the host may send the root after it, or
/// not), named as Intel names it, valid, a data-signing key (keyUsage), and not revoked by the
/// root CA CRL. A certificate that merely chains to the root is refused: a PCK key, or the PCK
/// Platform or Processor CA's, must never vouch for TCB levels.
fn tcb_signer<'a>(
    chain: &'a [Cert],
    anchor: &TcbSignerAnchor<'_>,
    collateral: &'static str,
    cache: &mut ChainCache,
) -> Result<&'a Cert, TdxError> {
    let &TcbSignerAnchor { root, root_crl, at } = anchor;
    let (leaf, intermediates) = split_chain(chain, root).ok_or(TdxError::TcbSigningChain {
        collateral,
        error: CertError::EmptyPem,
    })?;
    if !intermediates.is_empty() {
        return Err(TdxError::TcbSignerNotIssuedByRoot {
            collateral,
            subject: leaf.subject(),
            intermediates: intermediates.len(),
        });
    }
    if !roots::is_intel_tcb_signing_subject(leaf) {
        return Err(TdxError::TcbSignerSubject {
            collateral,
            subject: leaf.subject(),
        });
    }
    Cert::verify_chain_to_anchor(leaf, &[], root, at, cache)
        .map_err(|error| TdxError::TcbSigningChain { collateral, error })?;
    if root_crl.is_revoked(leaf) {
        return Err(TdxError::TcbSigningRevoked {
            collateral,
            subject: leaf.subject(),
        });
    }
    Ok(leaf)
}

/// Refuses collateral older than the policy's evaluation data number.
fn check_evaluation_number(
    policy: &TdxPolicy,
    collateral: &'static str,
    number: u32,
) -> Result<(), TdxError> {
    match policy.minimum_tcb_evaluation_data_number {
        Some(minimum) if number < minimum => Err(TdxError::TcbEvaluationDataNumberTooLow {
            collateral,
            number,
            minimum,
        }),
        _ => Ok(()),
    }
}

/// A signature by a certificate already verified to the root, over data every quote of the
/// platform shares (QE report, QE identity, TCB info), so it may be cached.
fn verify_raw_sig(cert: &Cert, msg: &[u8], sig: &[u8; 64], cache: &mut ChainCache) -> bool {
    let (r, s) = sig.split_at(32);
    cert.verify_ecdsa_raw_cached(HashAlg::Sha256, msg, r, s, cache)
        .is_ok()
}

fn check_crl(
    crl: &Crl,
    issuer: &Cert,
    at: UnixTime,
    name: &'static str,
    cache: &mut ChainCache,
) -> Result<(), TdxError> {
    crl.verify_signed_by_cached(issuer, cache)
        .map_err(|error| TdxError::CrlInvalid { crl: name, error })?;
    crl.check_validity(at)
        .map_err(|error| TdxError::CrlExpired { crl: name, error })
}

fn verify_with_root(
    raw_quote: &[u8],
    collateral: &Collateral,
    policy: &TdxPolicy,
    at: UnixTime,
    root: &Cert,
    cache: &mut ChainCache,
) -> Result<TdxVerdict, TdxError> {
    let mut checks = Vec::new();
    let quote = Quote::parse(raw_quote)?;
    checks.push("quote_structure");

    // 1. PCK chain and revocation.
    let pck_chain =
        Cert::from_pem_chain(&quote.signature.pck_chain_pem).map_err(TdxError::PckChain)?;
    let (pck, pck_intermediates) =
        split_chain(&pck_chain, root).ok_or(TdxError::PckChain(CertError::EmptyPem))?;
    let pck_issuer = pck_intermediates.first().ok_or_else(|| {
        TdxError::PckChain(CertError::Malformed(
            "PCK chain has no intermediate CA".into(),
        ))
    })?;
    Cert::verify_chain_to_anchor(pck, pck_intermediates, root, at, cache)
        .map_err(TdxError::PckChain)?;
    checks.push("pck_chain");
    check_crl(&collateral.root_ca_crl, root, at, "root CA CRL", cache)?;
    check_crl(&collateral.pck_crl, pck_issuer, at, "PCK CRL", cache)?;
    let revoked = pck_intermediates
        .iter()
        .find(|c| collateral.root_ca_crl.is_revoked(c))
        .or_else(|| collateral.pck_crl.is_revoked(pck).then_some(pck));
    if let Some(cert) = revoked {
        return Err(TdxError::PckRevoked {
            subject: cert.subject(),
        });
    }
    checks.push("crls_and_revocation");

    // 2. QE report, its binding of the attestation key, and the quote signature.
    let sig = &quote.signature;
    if !verify_raw_sig(pck, &sig.qe_report_raw, &sig.qe_report_signature, cache) {
        return Err(TdxError::QeReportSignature);
    }
    checks.push("qe_report_signature");
    let mut bound = Sha256::new();
    bound.update(sig.attestation_key);
    bound.update(&sig.qe_auth_data);
    let (bound_hash, bound_pad) = sig.qe_report.report_data.split_at(32);
    let bound: [u8; 32] = bound.finalize().into();
    if bound_hash != bound || bound_pad.iter().any(|&b| b != 0) {
        return Err(TdxError::QeReportDataMismatch);
    }
    checks.push("qe_report_data");
    let mut sec1 = [0x04u8; 65];
    sec1[1..].copy_from_slice(&sig.attestation_key);
    let att_key =
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| TdxError::QuoteSignature)?;
    let (r, s) = sig.quote_signature.split_at(32);
    sotto_verify_core::x509::PublicKey::P256(att_key)
        .verify_ecdsa_raw(HashAlg::Sha256, quote.signed_bytes(), r, s)
        .map_err(|_| TdxError::QuoteSignature)?;
    checks.push("quote_signature");

    // 3a. QE identity.
    let signer = TcbSignerAnchor {
        root,
        root_crl: &collateral.root_ca_crl,
        at,
    };
    let qe_identity = verified_document(
        Document::QeIdentity,
        &collateral.qe_identity,
        QeIdentity::parse,
        &signer,
        policy,
        cache,
    )?;
    checks.extend(Document::QeIdentity.checks());
    let qe_level = tcb::check_qe_identity(&qe_identity, &sig.qe_report)?;
    checks.push("qe_identity_match");

    // 3b. TCB info and the TCB evaluation.
    let tcb_info = verified_document(
        Document::TcbInfo,
        &collateral.tcb_info,
        TcbInfo::parse,
        &signer,
        policy,
        cache,
    )?;
    checks.extend(Document::TcbInfo.checks());
    let platform = PckPlatform::from_cert(pck)?;
    let tcb_fmspc: [u8; 6] = collateral::hex_field("tcb_info fmspc", &tcb_info.fmspc)?;
    if platform.fmspc != tcb_fmspc {
        return Err(TdxError::FmspcMismatch {
            pck: hex::encode(platform.fmspc),
            tcb_info: hex::encode(tcb_fmspc),
        });
    }
    let tcb_pce_id: [u8; 2] = collateral::hex_field("tcb_info pceId", &tcb_info.pce_id)?;
    if platform.pce_id != tcb_pce_id {
        return Err(TdxError::PceIdMismatch {
            pck: hex::encode(platform.pce_id),
            tcb_info: hex::encode(tcb_pce_id),
        });
    }
    checks.push("fmspc_and_pce_id");
    let outcome = tcb::evaluate(&tcb_info, &platform, &quote.body, qe_level)?;
    checks.push("tcb_level_and_tdx_module");

    // 4. Policy.
    let td = &quote.body;
    if outcome.status == TcbStatus::Revoked {
        return Err(TdxError::TcbRevoked);
    }
    if !policy.accepted_tcb_statuses.contains(&outcome.status) {
        return Err(TdxError::TcbStatusNotAccepted {
            status: outcome.status,
        });
    }
    checks.push("policy_tcb_status");
    if td.debug() && !policy.allow_debug {
        return Err(TdxError::DebugEnabled);
    }
    checks.push("policy_debug");
    let attrs = td.td_attributes_bits();
    let missing = policy.td_attributes_required & !attrs;
    if missing != 0 {
        return Err(TdxError::TdAttributesMissing { missing });
    }
    let forbidden = policy.td_attributes_forbidden & attrs;
    if forbidden != 0 {
        return Err(TdxError::TdAttributesForbidden { forbidden });
    }
    checks.push("policy_td_attributes");
    if policy.expected_mrtd.is_some_and(|m| m != td.mrtd) {
        return Err(TdxError::MrtdMismatch);
    }
    // Both are `[_; 4]`, so the zip compares every pinned register.
    for (index, (want, have)) in policy.expected_rtmrs.iter().zip(&td.rtmrs).enumerate() {
        if want.is_some_and(|w| &w != have) {
            return Err(TdxError::RtmrMismatch { index });
        }
    }
    if policy
        .expected_mrconfigid
        .is_some_and(|m| m != td.mrconfigid)
    {
        return Err(TdxError::MrConfigIdMismatch);
    }
    if policy
        .expected_report_data
        .is_some_and(|d| d != td.report_data)
    {
        return Err(TdxError::ReportDataMismatch);
    }
    checks.push("policy_measurements");

    Ok(TdxVerdict {
        quote_version: quote.header.version,
        tee_type: "TDX",
        body: td.kind,
        tcb_status: outcome.status,
        advisory_ids: outcome.advisory_ids,
        fmspc: platform.fmspc,
        tee_tcb_svn: td.tee_tcb_svn,
        td_attributes: td.td_attributes,
        mrtd: td.mrtd,
        rtmrs: td.rtmrs,
        mrconfigid: td.mrconfigid,
        report_data: td.report_data,
        tcb_info_evaluation_data_number: tcb_info.tcb_evaluation_data_number,
        qe_identity_evaluation_data_number: qe_identity.tcb_evaluation_data_number,
        checks,
    })
}
