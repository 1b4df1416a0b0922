//! Certificate revocation lists (RFC 5280 §5) as the vendors publish them: DER parsing, the
//! issuer's ECDSA signature, the `thisUpdate`/`nextUpdate` window at a given time, and
//! revocation of a certificate by serial number.
//!
//! Trust: the CRL bytes are untrusted until [`Crl::verify_signed_by`] succeeds under an issuer
//! certificate the caller has already verified; only then do [`Crl::is_revoked`] answers mean
//! anything.

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::crl::CertificateList;

use crate::cache::{ChainCache, Link, Signed};
use crate::x509::{ecdsa_hash, Cert, CertError};
use crate::UnixTime;

/// Why a CRL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    #[error("CRL is not valid DER: {0}")]
    Malformed(String),
    #[error("CRL issuer '{issuer}' is not the expected '{expected}'")]
    IssuerMismatch { issuer: String, expected: String },
    #[error("CRL signature algorithm {0} is not supported")]
    UnsupportedSignatureAlgorithm(String),
    #[error("CRL signature does not verify under its issuer's key: {0}")]
    BadSignature(CertError),
    #[error("CRL issuer '{issuer}' may not sign CRLs (its keyUsage does not allow cRLSign)")]
    IssuerNotCrlSigner { issuer: String },
    #[error("CRL issuer's certificate is unusable: {0}")]
    IssuerCertificate(CertError),
    #[error("CRL from '{issuer}' is not valid before {this_update} (checked at {at})")]
    NotYetValid {
        issuer: String,
        this_update: u64,
        at: u64,
    },
    #[error("CRL from '{issuer}' expired at {next_update} (checked at {at})")]
    Expired {
        issuer: String,
        next_update: u64,
        at: u64,
    },
    #[error("CRL from '{issuer}' has no nextUpdate, so its freshness cannot be bounded")]
    NoNextUpdate { issuer: String },
}

/// A parsed CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    crl: CertificateList,
    /// SHA-256 of the exact DER, the CRL's identity in a [`ChainCache`].
    sha256: [u8; 32],
}

impl Crl {
    pub fn from_der(der: &[u8]) -> Result<Self, CrlError> {
        let crl = CertificateList::from_der(der).map_err(|e| CrlError::Malformed(e.to_string()))?;
        Ok(Crl {
            crl,
            sha256: Sha256::digest(der).into(),
        })
    }

    pub fn issuer(&self) -> String {
        self.crl.tbs_cert_list.issuer.to_string()
    }

    pub fn this_update(&self) -> u64 {
        self.crl
            .tbs_cert_list
            .this_update
            .to_unix_duration()
            .as_secs()
    }

    pub fn next_update(&self) -> Option<u64> {
        self.crl
            .tbs_cert_list
            .next_update
            .map(|t| t.to_unix_duration().as_secs())
    }

    /// Checks that `issuer` (whose own chain the caller has verified) signed this CRL, that
    /// the CRL names it as issuer, and that the issuer's keyUsage (when present, as it is on
    /// every Intel CRL issuer) allows cRLSign.
    pub fn verify_signed_by(&self, issuer: &Cert) -> Result<(), CrlError> {
        self.check_issuer(issuer)?;
        let tbs = self
            .crl
            .tbs_cert_list
            .to_der()
            .map_err(|e| CrlError::Malformed(e.to_string()))?;
        let sig = self
            .crl
            .signature
            .as_bytes()
            .ok_or(CrlError::BadSignature(CertError::MalformedSignature))?;
        let alg = self.crl.signature_algorithm.oid;
        let hash = ecdsa_hash(alg)
            .ok_or_else(|| CrlError::UnsupportedSignatureAlgorithm(alg.to_string()))?;
        issuer
            .public_key()
            .and_then(|key| key.verify_ecdsa_der(hash, &tbs, sig))
            .map_err(CrlError::BadSignature)
    }

    fn check_issuer(&self, issuer: &Cert) -> Result<(), CrlError> {
        if self.crl.tbs_cert_list.issuer != issuer.inner().tbs_certificate.subject {
            return Err(CrlError::IssuerMismatch {
                issuer: self.issuer(),
                expected: issuer.subject(),
            });
        }
        match issuer.key_usage().map_err(CrlError::IssuerCertificate)? {
            Some(ku) if !ku.crl_sign() => Err(CrlError::IssuerNotCrlSigner {
                issuer: issuer.subject(),
            }),
            _ => Ok(()),
        }
    }

    /// [`Crl::verify_signed_by`], remembered in `cache`. The caller must already have
    /// verified `issuer` to a trusted anchor, since a success is cached as soon as it is
    /// computed. The CRL's window is not part of the cached fact: check it on every use.
    pub fn verify_signed_by_cached(
        &self,
        issuer: &Cert,
        cache: &mut ChainCache,
    ) -> Result<(), CrlError> {
        self.check_issuer(issuer)?;
        let link = Link::new(issuer.sha256_fingerprint(), Signed::Crl, &[&self.sha256]);
        if !cache.contains(&link) {
            self.verify_signed_by(issuer)?;
            cache.insert(link);
        }
        Ok(())
    }

    /// Refuses the CRL outside `[thisUpdate, nextUpdate]`; a CRL without `nextUpdate` is
    /// refused because nothing would bound how stale it may be.
    pub fn check_validity(&self, at: UnixTime) -> Result<(), CrlError> {
        if at.0 < self.this_update() {
            return Err(CrlError::NotYetValid {
                issuer: self.issuer(),
                this_update: self.this_update(),
                at: at.0,
            });
        }
        let next_update = self.next_update().ok_or_else(|| CrlError::NoNextUpdate {
            issuer: self.issuer(),
        })?;
        if at.0 > next_update {
            return Err(CrlError::Expired {
                issuer: self.issuer(),
                next_update,
                at: at.0,
            });
        }
        Ok(())
    }

    /// Whether `cert`'s serial number is listed. Meaningful only for a CRL from `cert`'s issuer
    /// whose signature has been verified.
    pub fn is_revoked(&self, cert: &Cert) -> bool {
        let serial = &cert.inner().tbs_certificate.serial_number;
        self.crl
            .tbs_cert_list
            .revoked_certificates
            .as_ref()
            .is_some_and(|list| list.iter().any(|r| &r.serial_number == serial))
    }
}
