//! Pure AMD SEV-SNP attestation verification, for the client (native and wasm32) and tests.
//!
//! [`AttestationReport::parse`] reads the firmware's 1184-byte report; [`verify`] decides
//! whether [`SnpEvidence`] is a genuine report endorsed by AMD (or, under an explicitly
//! configured [`SnpAnchor::Simulated`] root, by the development platform) and acceptable under
//! an [`SnpPolicy`], returning an [`SnpVerdict`] or the [`SnpError`] naming the failed check.
//!
//! Trust: evidence bytes are untrusted host input. Trusted are only AMD's roots pinned in
//! [`roots`], the caller's anchor choice and policy, and the time passed in. No I/O, no clock.
//!
//! The `sim` feature adds [`sim`]: a P-384 development authority that signs reports in the
//! same layout (for machines without SEV-SNP) and builders for forged evidence in tests.

pub(crate) mod ext;
mod policy;
mod report;
pub mod roots;
mod tcb;
mod verify;

#[cfg(feature = "sim")]
pub mod sim;

pub use policy::SnpPolicy;
pub use report::{
    parse_hex, AttestationReport, GuestPolicy, KeyInfo, ParseError, PlatformInfo, PolicyBits,
    ReportSignature, SigningKey, REPORT_SIZE, SIGNED_LEN, SIG_ALGO_ECDSA_P384_SHA384,
    SUPPORTED_VERSIONS,
};
pub use sotto_verify_core::x509::CertError;
pub use sotto_verify_core::{ChainCache, UnixTime};
pub use tcb::{Product, TcbVersion};
pub use verify::{verify, verify_cached, KeyKind, SnpAnchor, SnpError, SnpEvidence, SnpVerdict};
