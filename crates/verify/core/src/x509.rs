//! X.509 certificates as the attestation chains use them: DER/PEM parsing, validity at a
//! given time, and issuer signatures in the three algorithms the vendors use (ECDSA P-256 and
//! P-384 for Intel, NVIDIA and AMD's chip keys; RSASSA-PSS with SHA-384 for AMD's ARK/ASK).

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256, Sha384};
use x509_cert::Certificate;

use crate::cache::{ChainCache, Link, Signed};
use crate::UnixTime;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Why a certificate or a signature made with its key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate is not valid DER X.509: {0}")]
    Malformed(String),
    #[error("PEM input holds no certificate")]
    EmptyPem,
    #[error("certificate '{subject}' signs other certificates but is not a CA (basicConstraints)")]
    NotCa { subject: String },
    #[error("certificate '{subject}' signs other certificates but its keyUsage does not allow keyCertSign")]
    KeyCertSignNotAllowed { subject: String },
    #[error("certificate '{subject}' signs other certificates but carries no keyUsage extension")]
    KeyUsageMissing { subject: String },
    #[error(
        "certificate '{subject}' allows {max} intermediate CA certificate(s) below it \
         (pathLenConstraint), the chain has {found}"
    )]
    PathLenExceeded {
        subject: String,
        max: u8,
        found: usize,
    },
    #[error(
        "certificate '{subject}' signs evidence but its keyUsage does not allow digitalSignature"
    )]
    DigitalSignatureNotAllowed { subject: String },
    #[error("certificate '{subject}' has a malformed or repeated {extension} extension")]
    MalformedExtension {
        subject: String,
        extension: &'static str,
    },
    #[error("certificate '{subject}' is not valid before {not_before} (checked at {at})")]
    NotYetValid {
        subject: String,
        not_before: u64,
        at: u64,
    },
    #[error("certificate '{subject}' expired at {not_after} (checked at {at})")]
    Expired {
        subject: String,
        not_after: u64,
        at: u64,
    },
    #[error("certificate '{subject}' names issuer '{issuer}', expected '{expected}'")]
    IssuerMismatch {
        subject: String,
        issuer: String,
        expected: String,
    },
    #[error("signature algorithm {0} is not supported")]
    UnsupportedSignatureAlgorithm(String),
    #[error("public key type is not supported: {0}")]
    UnsupportedKey(String),
    #[error("signature on '{subject}' does not verify under its issuer's key")]
    BadSignature { subject: String },
    #[error("signature does not verify")]
    BadDataSignature,
    #[error("signature encoding is invalid")]
    MalformedSignature,
}

/// How strictly a chain's issuers must declare their role, beyond what every chain checks.
///
/// Every chain, whatever the rules: each issuer (intermediate or anchor) has basicConstraints
/// cA=TRUE, its keyUsage (when present) allows keyCertSign, its pathLenConstraint (when present)
/// is not exceeded by the intermediates below it, and the leaf's keyUsage (when present) allows
/// digitalSignature, since every leaf these verifiers accept signs evidence or collateral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainRules {
    /// Refuse an issuer that carries no keyUsage extension at all. Every real AMD (ARK, ASK,
    /// ASVK), Intel (SGX Root CA, PCK Platform CA) and NVIDIA (Device Identity CA and the
    /// GH100 intermediates) issuer carries a critical keyUsage with keyCertSign, so vendor
    /// chains require it; the simulated SNP platform's persisted development chains predate
    /// keyUsage and are verified without this requirement.
    pub require_issuer_key_usage: bool,
}

impl ChainRules {
    /// The rules for chains to a vendor root: issuers must carry keyUsage.
    pub const VENDOR: ChainRules = ChainRules {
        require_issuer_key_usage: true,
    };
    /// RFC 5280's baseline: an issuer without keyUsage is accepted (any present keyUsage must
    /// still allow keyCertSign).
    pub const BASELINE: ChainRules = ChainRules {
        require_issuer_key_usage: false,
    };
}

impl Default for ChainRules {
    fn default() -> Self {
        ChainRules::VENDOR
    }
}

/// A public key found in a certificate.
#[derive(Clone, Debug)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
}

/// Hash applied to a message before an ECDSA or RSA-PSS signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(msg).to_vec(),
            HashAlg::Sha384 => Sha384::digest(msg).to_vec(),
        }
    }
}

impl PublicKey {
    /// Verifies a DER-encoded ECDSA signature over `msg` hashed with `hash`.
    pub fn verify_ecdsa_der(
        &self,
        hash: HashAlg,
        msg: &[u8],
        sig_der: &[u8],
    ) -> Result<(), CertError> {
        self.verify_ecdsa(hash, msg, EcdsaSig::Der(sig_der))
    }

    /// Verifies a fixed-size big-endian `r || s` ECDSA signature over `msg` hashed with `hash`.
    pub fn verify_ecdsa_raw(
        &self,
        hash: HashAlg,
        msg: &[u8],
        r: &[u8],
        s: &[u8],
    ) -> Result<(), CertError> {
        self.verify_ecdsa(hash, msg, EcdsaSig::Raw { r, s })
    }

    fn verify_ecdsa(&self, hash: HashAlg, msg: &[u8], sig: EcdsaSig<'_>) -> Result<(), CertError> {
        use ecdsa::signature::hazmat::PrehashVerifier;
        let prehash = hash.digest(msg);
        // The same steps for the curve crate `$curve` with `$len`-byte scalars: a macro, as the
        // generic form needs the curve crates' long typenum bounds spelled out.
        macro_rules! verify_on {
            ($curve:ident, $len:literal, $key:expr) => {{
                let sig = match sig {
                    EcdsaSig::Der(der) => $curve::ecdsa::Signature::from_der(der),
                    EcdsaSig::Raw { r, s } => $curve::ecdsa::Signature::from_scalars(
                        $curve::FieldBytes::from(fixed::<$len>(r)?),
                        $curve::FieldBytes::from(fixed::<$len>(s)?),
                    ),
                }
                .map_err(|_| CertError::MalformedSignature)?;
                $key.verify_prehash(&prehash, &sig)
                    .map_err(|_| CertError::BadDataSignature)
            }};
        }
        match self {
            PublicKey::P256(k) => verify_on!(p256, 32, k),
            PublicKey::P384(k) => verify_on!(p384, 48, k),
            PublicKey::Rsa(_) => Err(CertError::UnsupportedKey("RSA key used for ECDSA".into())),
        }
    }

    /// Verifies an RSASSA-PSS signature (MGF1 with the same hash, salt length = hash length).
    pub fn verify_rsa_pss(&self, hash: HashAlg, msg: &[u8], sig: &[u8]) -> Result<(), CertError> {
        use rsa::signature::Verifier;
        let PublicKey::Rsa(k) = self else {
            return Err(CertError::UnsupportedKey("EC key used for RSA-PSS".into()));
        };
        let sig = rsa::pss::Signature::try_from(sig).map_err(|_| CertError::MalformedSignature)?;
        match hash {
            HashAlg::Sha256 => rsa::pss::VerifyingKey::<Sha256>::new(k.clone()).verify(msg, &sig),
            HashAlg::Sha384 => rsa::pss::VerifyingKey::<Sha384>::new(k.clone()).verify(msg, &sig),
        }
        .map_err(|_| CertError::BadDataSignature)
    }
}

/// An ECDSA signature as it arrives: DER, or big-endian `r` and `s`.
#[derive(Clone, Copy)]
enum EcdsaSig<'a> {
    Der(&'a [u8]),
    Raw { r: &'a [u8], s: &'a [u8] },
}

/// The hash of an ECDSA signature algorithm (certificates' and CRLs'); `None` for any other.
pub(crate) fn ecdsa_hash(alg: ObjectIdentifier) -> Option<HashAlg> {
    if alg == ECDSA_WITH_SHA256 {
        Some(HashAlg::Sha256)
    } else if alg == ECDSA_WITH_SHA384 {
        Some(HashAlg::Sha384)
    } else {
        None
    }
}

/// Left-pads a big-endian integer to `N` bytes, refusing longer input.
fn fixed<const N: usize>(be: &[u8]) -> Result<[u8; N], CertError> {
    let trimmed = {
        let first = be.iter().position(|&b| b != 0).unwrap_or(be.len());
        &be[first..]
    };
    if trimmed.len() > N {
        return Err(CertError::MalformedSignature);
    }
    let mut out = [0u8; N];
    out[N - trimmed.len()..].copy_from_slice(trimmed);
    Ok(out)
}

/// A parsed certificate together with its exact DER bytes.
#[derive(Clone, Debug)]
pub struct Cert {
    der: Vec<u8>,
    cert: Certificate,
}

impl Cert {
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
        Ok(Cert {
            der: der.to_vec(),
            cert,
        })
    }

    /// Parses every `CERTIFICATE` block of a PEM bundle, in order.
    pub fn from_pem_chain(pem: &[u8]) -> Result<Vec<Self>, CertError> {
        let certs =
            Certificate::load_pem_chain(pem).map_err(|e| CertError::Malformed(e.to_string()))?;
        if certs.is_empty() {
            return Err(CertError::EmptyPem);
        }
        certs
            .into_iter()
            .map(|cert| {
                let der = cert
                    .to_der()
                    .map_err(|e| CertError::Malformed(e.to_string()))?;
                Ok(Cert { der, cert })
            })
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn inner(&self) -> &Certificate {
        &self.cert
    }

    pub fn sha256_fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    pub fn not_before(&self) -> u64 {
        self.cert
            .tbs_certificate
            .validity
            .not_before
            .to_unix_duration()
            .as_secs()
    }

    pub fn not_after(&self) -> u64 {
        self.cert
            .tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs()
    }

    /// Refuses the certificate outside `[not_before, not_after]`.
    pub fn check_validity(&self, at: UnixTime) -> Result<(), CertError> {
        if at.0 < self.not_before() {
            return Err(CertError::NotYetValid {
                subject: self.subject(),
                not_before: self.not_before(),
                at: at.0,
            });
        }
        if at.0 > self.not_after() {
            return Err(CertError::Expired {
                subject: self.subject(),
                not_after: self.not_after(),
                at: at.0,
            });
        }
        Ok(())
    }

    /// Whether basicConstraints marks this certificate as a CA (a malformed or repeated
    /// extension does not).
    pub fn is_ca(&self) -> bool {
        self.basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.ca)
    }

    /// The basicConstraints extension, if present; refused when malformed or repeated.
    pub fn basic_constraints(
        &self,
    ) -> Result<Option<x509_cert::ext::pkix::BasicConstraints>, CertError> {
        self.decoded_extension(BASIC_CONSTRAINTS, "basicConstraints")
    }

    /// The keyUsage extension, if present; refused when malformed or repeated.
    pub fn key_usage(&self) -> Result<Option<x509_cert::ext::pkix::KeyUsage>, CertError> {
        self.decoded_extension(KEY_USAGE, "keyUsage")
    }

    /// Extension `oid` decoded as `T`, if present; refused when malformed or repeated.
    fn decoded_extension<'a, T: Decode<'a>>(
        &'a self,
        oid: ObjectIdentifier,
        name: &'static str,
    ) -> Result<Option<T>, CertError> {
        self.unique_extension(oid, name)?
            .map(|v| {
                T::from_der(v).map_err(|_| CertError::MalformedExtension {
                    subject: self.subject(),
                    extension: name,
                })
            })
            .transpose()
    }

    /// The value of extension `oid`, refusing a certificate that repeats it (RFC 5280 §4.2).
    fn unique_extension(
        &self,
        oid: ObjectIdentifier,
        name: &'static str,
    ) -> Result<Option<&[u8]>, CertError> {
        let mut found = self
            .cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id == oid);
        let first = found.next();
        if found.next().is_some() {
            return Err(CertError::MalformedExtension {
                subject: self.subject(),
                extension: name,
            });
        }
        Ok(first.map(|e| e.extn_value.as_bytes()))
    }

    /// The subject's attributes as `(type, value)` pairs, in certificate order, with the
    /// value decoded from its UTF8String, PrintableString or IA5String (`None` for any other
    /// string type). For comparing a subject with an expected name attribute by attribute,
    /// independently of how the name is rendered.
    pub fn subject_attributes(&self) -> Vec<(ObjectIdentifier, Option<String>)> {
        use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
        use der::Tagged;
        self.cert
            .tbs_certificate
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .map(|atv| {
                let v = &atv.value;
                let text = match v.tag() {
                    der::Tag::Utf8String => v
                        .decode_as::<Utf8StringRef<'_>>()
                        .ok()
                        .map(|s| s.to_string()),
                    der::Tag::PrintableString => v
                        .decode_as::<PrintableStringRef<'_>>()
                        .ok()
                        .map(|s| s.to_string()),
                    der::Tag::Ia5String => v
                        .decode_as::<Ia5StringRef<'_>>()
                        .ok()
                        .map(|s| s.to_string()),
                    _ => None,
                };
                (atv.oid, text)
            })
            .collect()
    }

    /// Checks that this certificate names `issuer`'s subject as its issuer.
    fn check_issuer_name(&self, issuer: &Cert) -> Result<(), CertError> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(CertError::IssuerMismatch {
                subject: self.subject(),
                issuer: self.issuer(),
                expected: issuer.subject(),
            });
        }
        Ok(())
    }

    /// Whether subject and issuer are the same name (a root, or a CA's key-rollover
    /// certificate).
    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    /// Checks that this certificate may issue the certificates below it in a chain, of which
    /// `intermediates_below` are intermediate CAs that are not self-issued (the leaf is not
    /// counted).
    fn check_may_issue(
        &self,
        intermediates_below: usize,
        rules: ChainRules,
    ) -> Result<(), CertError> {
        // A leaf key (a VCEK, a PCK, a device key) must never vouch for another certificate,
        // whatever its signature says.
        let Some(bc) = self.basic_constraints()?.filter(|bc| bc.ca) else {
            return Err(CertError::NotCa {
                subject: self.subject(),
            });
        };
        match self.key_usage()? {
            Some(ku) if !ku.key_cert_sign() => {
                return Err(CertError::KeyCertSignNotAllowed {
                    subject: self.subject(),
                })
            }
            None if rules.require_issuer_key_usage => {
                return Err(CertError::KeyUsageMissing {
                    subject: self.subject(),
                })
            }
            _ => {}
        }
        // RFC 5280 §6.1.4 (l)/(m).
        if let Some(max) = bc.path_len_constraint {
            if intermediates_below > usize::from(max) {
                return Err(CertError::PathLenExceeded {
                    subject: self.subject(),
                    max,
                    found: intermediates_below,
                });
            }
        }
        Ok(())
    }

    /// Checks that this certificate's key may sign data (reports, quotes, collateral): its
    /// keyUsage, when present, allows digitalSignature.
    pub fn check_may_sign_data(&self) -> Result<(), CertError> {
        match self.key_usage()? {
            Some(ku) if !ku.digital_signature() => Err(CertError::DigitalSignatureNotAllowed {
                subject: self.subject(),
            }),
            _ => Ok(()),
        }
    }

    /// The value of the extension `oid`, if present (the OCTET STRING's contents).
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()?
            .iter()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// The certificate's subject public key.
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        let spki = &self.cert.tbs_certificate.subject_public_key_info;
        let key_bytes = spki.subject_public_key.raw_bytes();
        let alg = spki.algorithm.oid;
        if alg == EC_PUBLIC_KEY {
            let curve: ObjectIdentifier = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as().ok())
                .ok_or_else(|| CertError::UnsupportedKey("EC key without named curve".into()))?;
            if curve == SECP256R1 {
                return p256::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                    .map(PublicKey::P256)
                    .map_err(|_| CertError::UnsupportedKey("invalid P-256 point".into()));
            }
            if curve == SECP384R1 {
                return p384::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes)
                    .map(PublicKey::P384)
                    .map_err(|_| CertError::UnsupportedKey("invalid P-384 point".into()));
            }
            return Err(CertError::UnsupportedKey(format!("EC curve {curve}")));
        }
        if alg == RSA_ENCRYPTION || alg == RSASSA_PSS {
            use rsa::pkcs1::DecodeRsaPublicKey;
            return rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
                .map(PublicKey::Rsa)
                .map_err(|_| CertError::UnsupportedKey("invalid RSA key".into()));
        }
        Err(CertError::UnsupportedKey(alg.to_string()))
    }

    /// Checks that `issuer` issued this certificate: names chain and the signature verifies.
    pub fn verify_issued_by(&self, issuer: &Cert) -> Result<(), CertError> {
        self.check_issuer_name(issuer)?;
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or(CertError::MalformedSignature)?;
        let key = issuer.public_key()?;
        let alg = self.cert.signature_algorithm.oid;
        let bad = |_| CertError::BadSignature {
            subject: self.subject(),
        };
        if let Some(hash) = ecdsa_hash(alg) {
            key.verify_ecdsa_der(hash, &tbs, sig).map_err(bad)
        } else if alg == RSASSA_PSS {
            // AMD's ARK/ASK/VCEK use PSS with SHA-384 and a 48-byte salt; the parameters are
            // pinned here rather than read from the certificate.
            key.verify_rsa_pss(HashAlg::Sha384, &tbs, sig).map_err(bad)
        } else {
            Err(CertError::UnsupportedSignatureAlgorithm(alg.to_string()))
        }
    }

    /// Verifies `leaf -> intermediates... -> root`, each link signed by the next, every
    /// certificate valid at `at`, every issuer allowed to issue under [`ChainRules::VENDOR`],
    /// and `root` self-signed. `root` must come from a pinned constant or an explicitly
    /// configured anchor, never from the evidence itself.
    pub fn verify_chain(
        leaf: &Cert,
        intermediates: &[Cert],
        root: &Cert,
        at: UnixTime,
    ) -> Result<(), CertError> {
        root.verify_issued_by(root)?;
        Cert::verify_chain_to_anchor(leaf, intermediates, root, at, &mut ChainCache::new())
    }

    /// Verifies `leaf -> intermediates... -> anchor` like [`Cert::verify_chain`], except that
    /// the anchor's self-signature is not checked and signatures already in `cache` are not
    /// recomputed. A self-signature says nothing about whether to trust a root; the trust lies
    /// in `anchor` being a constant pinned in code (whose pinning crate proves its
    /// self-signature in a unit test) or a root the caller explicitly configured. Every
    /// certificate, the anchor included, must still be valid at `at`, cached or not. The
    /// chain's links enter `cache` only if the whole chain verifies. Issuers are held to
    /// [`ChainRules::VENDOR`].
    pub fn verify_chain_to_anchor(
        leaf: &Cert,
        intermediates: &[Cert],
        anchor: &Cert,
        at: UnixTime,
        cache: &mut ChainCache,
    ) -> Result<(), CertError> {
        Cert::verify_chain_to_anchor_with(
            leaf,
            intermediates,
            anchor,
            at,
            cache,
            ChainRules::VENDOR,
        )
    }

    /// [`Cert::verify_chain_to_anchor`] under explicit [`ChainRules`]. The role checks
    /// (basicConstraints, keyUsage, pathLenConstraint) run on every call, cached links or not.
    pub fn verify_chain_to_anchor_with(
        leaf: &Cert,
        intermediates: &[Cert],
        anchor: &Cert,
        at: UnixTime,
        cache: &mut ChainCache,
        rules: ChainRules,
    ) -> Result<(), CertError> {
        anchor.check_validity(at)?;
        leaf.check_may_sign_data()?;
        let mut verified = Vec::new();
        let mut child = leaf;
        // Intermediate CAs between `parent` and the leaf that count toward a path length
        // (RFC 5280 §6.1.4 (l): self-issued ones do not).
        let mut below = 0usize;
        for (position, parent) in intermediates
            .iter()
            .chain(std::iter::once(anchor))
            .enumerate()
        {
            // From the second link on, `child` is the intermediate just below `parent`.
            if position > 0 && !child.is_self_issued() {
                below += 1;
            }
            child.check_validity(at)?;
            // Names first, so a certificate presented under the wrong issuer is reported as
            // such; then the issuer's role, before any signature is computed.
            child.check_issuer_name(parent)?;
            parent.check_may_issue(below, rules)?;
            let link = Link::new(
                parent.sha256_fingerprint(),
                Signed::Certificate,
                &[child.der()],
            );
            if !cache.contains(&link) {
                child.verify_issued_by(parent)?;
                verified.push(link);
            }
            child = parent;
        }
        for link in verified {
            cache.insert(link);
        }
        Ok(())
    }

    /// [`PublicKey::verify_ecdsa_raw`] under this certificate's key, remembered in `cache`.
    /// For signed collateral only: the caller must already have verified this certificate to
    /// a trusted anchor, since a success is cached as soon as it is computed.
    pub fn verify_ecdsa_raw_cached(
        &self,
        hash: HashAlg,
        msg: &[u8],
        r: &[u8],
        s: &[u8],
        cache: &mut ChainCache,
    ) -> Result<(), CertError> {
        let alg = [hash as u8];
        let link = Link::new(self.sha256_fingerprint(), Signed::Data, &[&alg, msg, r, s]);
        if !cache.contains(&link) {
            self.public_key()?.verify_ecdsa_raw(hash, msg, r, s)?;
            cache.insert(link);
        }
        Ok(())
    }
}
