//! Test-only forgery kit: a throwaway P-256 PKI that impersonates Intel's (root, PCK Platform
//! CA, PCK leaf, TCB signing key) and re-signs a real quote and its real collateral under it, so
//! each forged test changes exactly one thing and every other check still passes. Verification
//! against this PKI goes through `verify_with_test_root` (feature `test-root`); the same output
//! against the pinned Intel root must fail at the PCK chain.

use std::str::FromStr;
use std::time::Duration;

use der::asn1::{BitString, UtcTime};
use der::flagset::FlagSet;
use der::{Decode, Encode, EncodePem};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey;
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use sotto_verify_core::x509::Cert;
use sotto_verify_tdx::{Collateral, Quote, TdxError, TdxPolicy, TdxVerdict, UnixTime};

use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

use super::{collateral_from, real_collateral_json, real_quote, AT};

/// 2020-01-01 and 2040-01-01: the test PKI's certificates are valid between them.
pub const Y2020: u64 = 1_577_836_800;
pub const Y2040: u64 = 2_208_988_800;

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
        parameters: None,
    }
}

fn time(secs: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs)).expect("utc time"))
}

fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    let der = key
        .verifying_key()
        .to_public_key_der()
        .expect("public key der");
    SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
}

fn sign_der(key: &SigningKey, msg: &[u8]) -> BitString {
    let sig: Signature = key.sign(msg);
    BitString::from_bytes(sig.to_der().as_bytes()).expect("bit string")
}

/// Raw `r || s` as DCAP stores signatures.
pub fn sign_raw(key: &SigningKey, msg: &[u8]) -> [u8; 64] {
    let sig: Signature = key.sign(msg);
    sig.to_bytes().into()
}

/// A certificate and its key.
pub struct Issued {
    pub key: SigningKey,
    pub cert: Certificate,
}

impl Issued {
    pub fn pem(&self) -> String {
        self.cert
            .to_pem(der::pem::LineEnding::LF)
            .expect("certificate pem")
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.to_der().expect("certificate der")
    }

    pub fn name(&self) -> Name {
        self.cert.tbs_certificate.subject.clone()
    }

    pub fn serial(&self) -> SerialNumber {
        self.cert.tbs_certificate.serial_number.clone()
    }

    /// This certificate's key as a collateral signer, its chain this certificate and then
    /// `issuers` up to the root.
    pub fn signer(&self, issuers: &[&Issued]) -> CollateralSigner<'_> {
        let chain_pem = std::iter::once(self)
            .chain(issuers.iter().copied())
            .map(Issued::pem)
            .collect();
        CollateralSigner {
            key: &self.key,
            chain_pem,
        }
    }
}

fn extension(oid: &str, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: const_oid::ObjectIdentifier::new_unwrap(oid),
        critical: true,
        extn_value: der::asn1::OctetString::new(value).expect("octet string"),
    }
}

/// A critical basicConstraints extension.
pub fn basic_constraints(ca: bool, path_len_constraint: Option<u8>) -> Extension {
    let value = x509_cert::ext::pkix::BasicConstraints {
        ca,
        path_len_constraint,
    };
    extension("2.5.29.19", value.to_der().expect("basicConstraints"))
}

/// A critical keyUsage extension with `usages`.
pub fn key_usage(usages: impl Into<FlagSet<KeyUsages>>) -> Extension {
    let value = KeyUsage(usages.into());
    extension("2.5.29.15", value.to_der().expect("keyUsage"))
}

/// What Intel's CAs carry: basicConstraints CA:TRUE (with `path_len`) and keyUsage
/// keyCertSign + cRLSign (issuers without them are refused by every vendor chain check).
pub fn ca_with_path_len(path_len: Option<u8>) -> Option<Vec<Extension>> {
    Some(vec![
        basic_constraints(true, path_len),
        key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
    ])
}

/// [`ca_with_path_len`] without a path length constraint.
pub fn ca() -> Option<Vec<Extension>> {
    ca_with_path_len(None)
}

/// What Intel's signing leaves (PCK certificate, TCB signing) carry: basicConstraints
/// CA:FALSE and keyUsage digitalSignature + nonRepudiation.
pub fn signing_leaf() -> Vec<Extension> {
    vec![
        basic_constraints(false, None),
        key_usage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation),
    ]
}

pub fn issue(
    subject: &str,
    serial: u8,
    issuer: Option<&Issued>,
    validity: (u64, u64),
    extensions: Option<Vec<Extension>>,
) -> Issued {
    let key = SigningKey::random(&mut OsRng);
    let subject = Name::from_str(subject).expect("name");
    let issuer_name = issuer.map_or_else(|| subject.clone(), Issued::name);
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&[serial]).expect("serial"),
        signature: ecdsa_sha256(),
        issuer: issuer_name,
        validity: Validity {
            not_before: time(validity.0),
            not_after: time(validity.1),
        },
        subject,
        subject_public_key_info: spki(&key),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions,
    };
    let signer = issuer.map_or(&key, |i| &i.key);
    let signature = sign_der(signer, &tbs.to_der().expect("tbs der"));
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature,
    };
    Issued { key, cert }
}

pub fn crl(issuer: &Issued, window: (u64, u64), revoked: &[SerialNumber]) -> Vec<u8> {
    let revoked_certificates = (!revoked.is_empty()).then(|| {
        revoked
            .iter()
            .map(|serial| RevokedCert {
                serial_number: serial.clone(),
                revocation_date: time(window.0),
                crl_entry_extensions: None,
            })
            .collect()
    });
    let tbs = TbsCertList {
        version: Version::V2,
        signature: ecdsa_sha256(),
        issuer: issuer.name(),
        this_update: time(window.0),
        next_update: Some(time(window.1)),
        revoked_certificates,
        crl_extensions: None,
    };
    let signature = sign_der(&issuer.key, &tbs.to_der().expect("tbs der"));
    CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature,
    }
    .to_der()
    .expect("crl der")
}

/// The SGX extension of the real PCK certificate, so FMSPC, PCE-ID and SVNs stay genuine.
pub fn real_sgx_extension(quote: &Quote) -> Extension {
    let chain = Cert::from_pem_chain(&quote.signature.pck_chain_pem).expect("real chain");
    let leaf = chain.first().expect("leaf");
    leaf.inner()
        .tbs_certificate
        .extensions
        .as_ref()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id.to_string() == "1.2.840.113741.1.13.1")
        })
        .cloned()
        .expect("SGX extension")
}

const INTEL_ROOT_NAME: &str = "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA";

pub const PCK_CA_NAME: &str =
    "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Platform CA";
pub const PCK_NAME: &str =
    "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Certificate";
pub const TCB_SIGNING_NAME: &str =
    "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX TCB Signing";

/// How the test PKI's PCK chain is shaped; [`PkiSpec::intel`] mirrors Intel's real one.
pub struct PkiSpec {
    pub leaf_validity: (u64, u64),
    /// Extensions of the PCK leaf besides the (real) SGX extension.
    pub pck_extensions: Vec<Extension>,
    /// Extensions of the PCK Platform CA.
    pub pck_ca_extensions: Option<Vec<Extension>>,
    /// Extensions of an extra CA between the Platform CA and the leaf, if any.
    pub extra_ca_extensions: Option<Option<Vec<Extension>>>,
}

impl PkiSpec {
    /// Intel's shape: root (pathlen 1) -> Platform CA (pathlen 0) -> PCK leaf (digital
    /// signature), valid 2020 .. 2040.
    pub fn intel() -> PkiSpec {
        PkiSpec {
            leaf_validity: (Y2020, Y2040),
            pck_extensions: signing_leaf(),
            pck_ca_extensions: ca_with_path_len(Some(0)),
            extra_ca_extensions: None,
        }
    }
}

/// Signs TCB info and QE identity: a key and the issuer chain (PEM) the collateral names.
pub struct CollateralSigner<'a> {
    pub key: &'a SigningKey,
    pub chain_pem: String,
}

/// The throwaway PKI and the pieces of one forged quote + collateral.
pub struct Forge {
    pub root: Issued,
    pub pck_ca: Issued,
    /// A CA between the Platform CA and the leaf ([`PkiSpec::extra_ca_extensions`]).
    pub extra_ca: Option<Issued>,
    pub pck: Issued,
    pub tcb_signer: Issued,
    pub att_key: SigningKey,
    /// Quote header and TD report body (v4, 48 + 584 bytes), re-signed on build.
    pub header: Vec<u8>,
    pub body: Vec<u8>,
    pub qe_report: Vec<u8>,
    pub qe_auth_data: Vec<u8>,
    pub tcb_info: String,
    pub qe_identity: String,
    pub root_crl_revoked: Vec<SerialNumber>,
    pub pck_crl_revoked: Vec<SerialNumber>,
    pub crl_window: (u64, u64),
}

impl Forge {
    /// Re-creates the real v4 quote and its collateral under a fresh test PKI whose root
    /// impersonates Intel's by name.
    pub fn new() -> Forge {
        Self::with_leaf_validity((Y2020, Y2040))
    }

    pub fn with_leaf_validity(validity: (u64, u64)) -> Forge {
        Self::with_pki(PkiSpec {
            leaf_validity: validity,
            ..PkiSpec::intel()
        })
    }

    pub fn with_pki(spec: PkiSpec) -> Forge {
        let raw = real_quote();
        let quote = Quote::parse(&raw).expect("real quote");
        let root = issue(
            INTEL_ROOT_NAME,
            1,
            None,
            (Y2020, Y2040),
            ca_with_path_len(Some(1)),
        );
        let pck_ca = issue(
            PCK_CA_NAME,
            2,
            Some(&root),
            (Y2020, Y2040),
            spec.pck_ca_extensions,
        );
        let extra_ca = spec.extra_ca_extensions.map(|exts| {
            issue(
                "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX PCK Extra CA",
                5,
                Some(&pck_ca),
                (Y2020, Y2040),
                exts,
            )
        });
        let mut pck_extensions = vec![real_sgx_extension(&quote)];
        pck_extensions.extend(spec.pck_extensions);
        let pck = issue(
            PCK_NAME,
            3,
            Some(extra_ca.as_ref().unwrap_or(&pck_ca)),
            spec.leaf_validity,
            Some(pck_extensions),
        );
        let tcb_signer = issue(
            TCB_SIGNING_NAME,
            4,
            Some(&root),
            (Y2020, Y2040),
            Some(signing_leaf()),
        );
        let collateral = real_collateral_json();
        Forge {
            root,
            pck_ca,
            extra_ca,
            pck,
            tcb_signer,
            att_key: SigningKey::random(&mut OsRng),
            header: raw[..48].to_vec(),
            body: raw[48..48 + 584].to_vec(),
            qe_report: quote.signature.qe_report_raw.to_vec(),
            qe_auth_data: quote.signature.qe_auth_data.clone(),
            tcb_info: collateral["tcb_info"].as_str().expect("tcb_info").into(),
            qe_identity: collateral["qe_identity"]
                .as_str()
                .expect("qe_identity")
                .into(),
            root_crl_revoked: Vec::new(),
            pck_crl_revoked: Vec::new(),
            crl_window: (Y2020, Y2040),
        }
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.root.der()
    }

    /// The quote: header and body signed by the attestation key, the QE report binding that
    /// key and signed by the PCK key, and the test PCK chain.
    pub fn quote(&self) -> Vec<u8> {
        let att_pub = self.att_key.verifying_key().to_encoded_point(false);
        let att_pub = &att_pub.as_bytes()[1..];
        let mut qe_report = self.qe_report.clone();
        let bound = Sha256::new()
            .chain_update(att_pub)
            .chain_update(&self.qe_auth_data)
            .finalize();
        qe_report[320..352].copy_from_slice(&bound);
        qe_report[352..384].fill(0);
        let qe_sig = sign_raw(&self.pck.key, &qe_report);

        let mut pem = std::iter::once(self.pck.pem())
            .chain(self.extra_ca.iter().map(Issued::pem))
            .chain([self.pck_ca.pem(), self.root.pem()])
            .collect::<String>()
            .into_bytes();
        pem.push(0);
        let mut qe_cert_data = qe_report;
        qe_cert_data.extend_from_slice(&qe_sig);
        qe_cert_data.extend_from_slice(&(self.qe_auth_data.len() as u16).to_le_bytes());
        qe_cert_data.extend_from_slice(&self.qe_auth_data);
        qe_cert_data.extend_from_slice(&5u16.to_le_bytes());
        qe_cert_data.extend_from_slice(&(pem.len() as u32).to_le_bytes());
        qe_cert_data.extend_from_slice(&pem);

        let signed = [self.header.as_slice(), self.body.as_slice()].concat();
        let mut sig_data = sign_raw(&self.att_key, &signed).to_vec();
        sig_data.extend_from_slice(att_pub);
        sig_data.extend_from_slice(&6u16.to_le_bytes());
        sig_data.extend_from_slice(&(qe_cert_data.len() as u32).to_le_bytes());
        sig_data.extend_from_slice(&qe_cert_data);

        let mut quote = signed;
        quote.extend_from_slice(&(sig_data.len() as u32).to_le_bytes());
        quote.extend_from_slice(&sig_data);
        quote
    }

    /// The test PKI's TCB signing key with its chain (signer, root), as Intel serves it.
    pub fn tcb_signing(&self) -> CollateralSigner<'_> {
        self.tcb_signer.signer(&[&self.root])
    }

    /// The collateral JSON, every signature made by the test PKI.
    pub fn collateral_json(&self) -> serde_json::Value {
        self.collateral_json_signed_by(&self.tcb_signing(), &self.tcb_signing())
    }

    /// The collateral JSON with the TCB info signed by `tcb_info` and the QE identity by
    /// `qe_identity` (CRLs by the test root and Platform CA).
    pub fn collateral_json_signed_by(
        &self,
        tcb_info: &CollateralSigner<'_>,
        qe_identity: &CollateralSigner<'_>,
    ) -> serde_json::Value {
        let crl_chain = [self.pck_ca.pem(), self.root.pem()].concat();
        let tcb_sig = hex::encode(sign_raw(tcb_info.key, self.tcb_info.as_bytes()));
        let qe_sig = hex::encode(sign_raw(qe_identity.key, self.qe_identity.as_bytes()));
        serde_json::json!({
            "pck_crl_issuer_chain": crl_chain,
            "root_ca_crl": hex::encode(crl(&self.root, self.crl_window, &self.root_crl_revoked)),
            "pck_crl": hex::encode(crl(&self.pck_ca, self.crl_window, &self.pck_crl_revoked)),
            "tcb_info_issuer_chain": tcb_info.chain_pem,
            "tcb_info": self.tcb_info,
            "tcb_info_signature": tcb_sig,
            "qe_identity_issuer_chain": qe_identity.chain_pem,
            "qe_identity": self.qe_identity,
            "qe_identity_signature": qe_sig,
        })
    }

    /// Verifies the forged quote under the strict policy with one collateral document,
    /// `"TCB info"` or `"QE identity"`, signed by `signer` and the other by the TCB signing key.
    pub fn with_collateral_signed_by(
        &self,
        document: &str,
        signer: &CollateralSigner<'_>,
    ) -> Result<TdxVerdict, TdxError> {
        let intel = self.tcb_signing();
        let json = match document {
            "TCB info" => self.collateral_json_signed_by(signer, &intel),
            "QE identity" => self.collateral_json_signed_by(&intel, signer),
            other => panic!("no collateral document {other:?}"),
        };
        self.verify_with(&json, &TdxPolicy::strict(), AT)
    }

    /// Verifies the forged quote with `collateral` against the test root.
    pub fn verify_with(
        &self,
        collateral: &serde_json::Value,
        policy: &TdxPolicy,
        at: UnixTime,
    ) -> Result<TdxVerdict, TdxError> {
        sotto_verify_tdx::verify_with_test_root(
            &self.quote(),
            &collateral_from(collateral),
            policy,
            at,
            &self.root_der(),
        )
    }

    pub fn collateral(&self) -> Collateral {
        collateral_from(&self.collateral_json())
    }

    /// Verifies the forged quote and collateral against the test root.
    pub fn verify(&self, policy: &TdxPolicy, at: UnixTime) -> Result<TdxVerdict, TdxError> {
        self.verify_with(&self.collateral_json(), policy, at)
    }

    /// [`Forge::verify`] with the strict policy, at a time inside the real collateral's windows.
    pub fn strict(&self) -> Result<TdxVerdict, TdxError> {
        self.verify(&TdxPolicy::strict(), AT)
    }
}
