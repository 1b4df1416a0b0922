//! The re-signing kit: a builder that re-signs modified reports under a locally generated
//! P-384 test chain (root -> intermediate -> leaf) so that refusals after
//! the signature check can be exercised with evidence whose signature is valid.

use std::str::FromStr;
use std::time::Duration;

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::UtcTime;
use der::{Decode, Encode};
use p384::ecdsa::signature::hazmat::PrehashSigner;
use p384::ecdsa::{DerSignature, Signature, SigningKey};
use sha2::{Digest, Sha384};
use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_nvidia::spdm::field;
use sotto_verify_nvidia::{
    verify_with_root, CertChainInput, GpuError, GpuEvidenceInput, GpuPolicy, GpuVerdict,
    OpaqueField, SpdmEvidence,
};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::AsExtension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

use super::{policy, real_report, AT};

/// The real report's fields, to be modified and re-serialised.
#[derive(Clone)]
pub struct ReportParts {
    pub version: u8,
    pub request_code: u8,
    pub nonce: [u8; 32],
    pub blocks: Vec<(u8, Vec<u8>)>,
    pub responder_nonce: [u8; 32],
    pub opaque: Vec<OpaqueField>,
}

impl ReportParts {
    pub fn from_real() -> Self {
        let ev = SpdmEvidence::parse(&real_report()).expect("real report parses");
        ReportParts {
            version: 0x11,
            request_code: 0xE0,
            nonce: ev.request_nonce,
            blocks: ev
                .blocks
                .iter()
                .map(|b| (b.index, b.value.clone()))
                .collect(),
            responder_nonce: ev.responder_nonce,
            opaque: ev.opaque.clone(),
        }
    }

    pub fn set_opaque(&mut self, field_type: u16, value: &[u8]) {
        self.opaque.retain(|f| f.field_type != field_type);
        self.opaque.push(OpaqueField {
            field_type,
            value: value.to_vec(),
        });
    }

    pub fn remove_opaque(&mut self, field_type: u16) {
        self.opaque.retain(|f| f.field_type != field_type);
    }

    pub fn set_block(&mut self, index: u8, value: &[u8]) {
        for b in &mut self.blocks {
            if b.0 == index {
                b.1 = value.to_vec();
            }
        }
    }

    /// `request || response` without the signature.
    pub fn unsigned(&self) -> Vec<u8> {
        let mut opaque = Vec::new();
        for f in &self.opaque {
            opaque.extend_from_slice(&f.field_type.to_le_bytes());
            opaque.extend_from_slice(&(f.value.len() as u16).to_le_bytes());
            opaque.extend_from_slice(&f.value);
        }
        self.unsigned_with_raw_opaque(&opaque)
    }

    pub fn unsigned_with_raw_opaque(&self, opaque: &[u8]) -> Vec<u8> {
        let mut out = vec![self.version, self.request_code, 0x01, 0xFF];
        out.extend_from_slice(&self.nonce);
        out.push(0x00);
        let mut record = Vec::new();
        for (index, value) in &self.blocks {
            record.push(*index);
            record.push(0x01);
            record.extend_from_slice(&((value.len() + 3) as u16).to_le_bytes());
            record.push(0x01);
            record.extend_from_slice(&(value.len() as u16).to_le_bytes());
            record.extend_from_slice(value);
        }
        out.extend_from_slice(&[self.version, 0x60, 0x00, 0x00, self.blocks.len() as u8]);
        out.extend_from_slice(&(record.len() as u32).to_le_bytes()[..3]);
        out.extend_from_slice(&record);
        out.extend_from_slice(&self.responder_nonce);
        out.extend_from_slice(&(opaque.len() as u16).to_le_bytes());
        out.extend_from_slice(opaque);
        out
    }
}

/// Signs `unsigned` the way the GSP does: ECDSA P-384 over SHA-384, raw `r || s`.
pub fn sign(key: &SigningKey, unsigned: &[u8]) -> Vec<u8> {
    let digest = Sha384::digest(unsigned);
    let sig: Signature = key.sign_prehash(&digest).expect("sign");
    let mut out = unsigned.to_vec();
    out.extend_from_slice(&sig.to_bytes());
    out
}

/// NVIDIA's TcbInfo extension shape: `SEQUENCE { SEQUENCE { sha384 OID, OCTET STRING fwid } }`.
struct TcbInfo(der::Any);

impl AssociatedOid for TcbInfo {
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");
}

impl der::Encode for TcbInfo {
    fn encoded_len(&self) -> der::Result<der::Length> {
        self.0.encoded_len()
    }
    fn encode(&self, writer: &mut impl der::Writer) -> der::Result<()> {
        self.0.encode(writer)
    }
}

impl AsExtension for TcbInfo {
    fn critical(&self, _: &Name, _: &[x509_cert::ext::Extension]) -> bool {
        false
    }
}

fn tcb_info(fwid: &[u8]) -> TcbInfo {
    let sha384 = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
    let mut pair = sha384.to_der().expect("oid");
    pair.extend(
        der::asn1::OctetString::new(fwid)
            .expect("octets")
            .to_der()
            .expect("os"),
    );
    let inner = wrap_sequence(&pair);
    TcbInfo(der::Any::from_der(&wrap_sequence(&inner)).expect("any"))
}

fn wrap_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.push(0x81);
        out.push(len as u8);
    }
    out.extend_from_slice(content);
    out
}

/// A P-384 test chain; every key is derived from a fixed seed so the tests are deterministic.
pub struct TestChain {
    pub root: Cert,
    pub intermediate: Cert,
    pub leaf: Cert,
    pub root_key: SigningKey,
    pub intermediate_key: SigningKey,
    pub leaf_key: SigningKey,
}

/// `cert` with its TBS changed by `mutate` and signed again by `issuer_key` (ECDSA P-384 with
/// SHA-384, as the builder signs): for certificates that differ from the builder's profiles
/// in one extension only.
fn reissue(
    cert: &Cert,
    issuer_key: &SigningKey,
    mutate: impl FnOnce(&mut x509_cert::TbsCertificate),
) -> Cert {
    use p384::ecdsa::signature::Signer;
    let mut inner = cert.inner().clone();
    mutate(&mut inner.tbs_certificate);
    let tbs = inner.tbs_certificate.to_der().expect("tbs der");
    let sig: DerSignature = issuer_key.sign(&tbs);
    inner.signature = der::asn1::BitString::from_bytes(sig.as_bytes()).expect("bit string");
    Cert::from_der(&inner.to_der().expect("der")).expect("reparse")
}

/// Replaces (or, with `None`, removes) the extension `oid` of a TBS certificate.
fn set_extension(tbs: &mut x509_cert::TbsCertificate, oid: &str, value: Option<Vec<u8>>) {
    let oid = ObjectIdentifier::new_unwrap(oid);
    let exts = tbs.extensions.get_or_insert_with(Vec::new);
    exts.retain(|e| e.extn_id != oid);
    if let Some(value) = value {
        exts.push(x509_cert::ext::Extension {
            extn_id: oid,
            critical: true,
            extn_value: der::asn1::OctetString::new(value).expect("octet string"),
        });
    }
}

pub const KEY_USAGE_OID: &str = "2.5.29.15";
pub const BASIC_CONSTRAINTS_OID: &str = "2.5.29.19";

/// DER of a keyUsage value.
pub fn key_usage_der(
    usages: impl Into<der::flagset::FlagSet<x509_cert::ext::pkix::KeyUsages>>,
) -> Vec<u8> {
    x509_cert::ext::pkix::KeyUsage(usages.into())
        .to_der()
        .expect("keyUsage")
}

/// DER of a basicConstraints value.
pub fn basic_constraints_der(ca: bool, path_len_constraint: Option<u8>) -> Vec<u8> {
    x509_cert::ext::pkix::BasicConstraints {
        ca,
        path_len_constraint,
    }
    .to_der()
    .expect("basicConstraints")
}

pub struct ChainSpec {
    /// Validity of every certificate, as Unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// FWID placed in the leaf's TcbInfo extension, if any.
    pub leaf_fwid: Option<Vec<u8>>,
    /// Build the intermediate as an end-entity certificate (no CA flag).
    pub intermediate_is_leaf: bool,
}

impl ChainSpec {
    /// 2020-01-01 .. 2049-12-31, leaf FWID equal to the real report's.
    pub fn default_for_real_fwid() -> Self {
        let fwid = SpdmEvidence::parse(&real_report())
            .expect("real")
            .fwid()
            .expect("real report has a FWID")
            .to_vec();
        ChainSpec {
            not_before: 1_577_836_800,
            not_after: 2_524_607_999,
            leaf_fwid: Some(fwid),
            intermediate_is_leaf: false,
        }
    }
}

fn key(seed: u8) -> SigningKey {
    let mut bytes = [0x11u8; 48];
    bytes[47] = seed;
    SigningKey::from_slice(&bytes).expect("test key")
}

fn spki(key: &SigningKey) -> SubjectPublicKeyInfoOwned {
    SubjectPublicKeyInfoOwned::from_key(*key.verifying_key()).expect("spki")
}

fn validity(spec: &ChainSpec) -> Validity {
    Validity {
        not_before: Time::UtcTime(
            UtcTime::from_unix_duration(Duration::from_secs(spec.not_before)).expect("time"),
        ),
        not_after: Time::UtcTime(
            UtcTime::from_unix_duration(Duration::from_secs(spec.not_after)).expect("time"),
        ),
    }
}

fn finish(builder: CertificateBuilder<'_, SigningKey>) -> Cert {
    let cert = builder.build::<DerSignature>().expect("build cert");
    Cert::from_der(&cert.to_der().expect("der")).expect("reparse")
}

/// The test chain of [`ChainSpec::default_for_real_fwid`].
pub fn real_fwid_chain() -> TestChain {
    test_chain(&ChainSpec::default_for_real_fwid())
}

pub fn test_chain(spec: &ChainSpec) -> TestChain {
    let root_key = key(1);
    let int_key = key(2);
    let leaf_key = key(3);
    let root_name = Name::from_str("CN=Sotto Test GPU Root,O=Sotto Tests").expect("name");
    let int_name = Name::from_str("CN=Sotto Test GPU ICA,O=Sotto Tests").expect("name");
    let leaf_name = Name::from_str("CN=Sotto Test GPU Leaf,O=Sotto Tests").expect("name");

    let root = finish(
        CertificateBuilder::new(
            Profile::Root,
            SerialNumber::from(1u32),
            validity(spec),
            root_name.clone(),
            spki(&root_key),
            &root_key,
        )
        .expect("root builder"),
    );

    let int_profile = if spec.intermediate_is_leaf {
        Profile::Leaf {
            issuer: root_name,
            enable_key_agreement: false,
            enable_key_encipherment: false,
        }
    } else {
        Profile::SubCA {
            issuer: root_name,
            path_len_constraint: None,
        }
    };
    let intermediate = finish(
        CertificateBuilder::new(
            int_profile,
            SerialNumber::from(2u32),
            validity(spec),
            int_name.clone(),
            spki(&int_key),
            &root_key,
        )
        .expect("intermediate builder"),
    );

    let mut leaf_builder = CertificateBuilder::new(
        Profile::Leaf {
            issuer: int_name,
            enable_key_agreement: false,
            enable_key_encipherment: false,
        },
        SerialNumber::from(3u32),
        validity(spec),
        leaf_name,
        spki(&leaf_key),
        &int_key,
    )
    .expect("leaf builder");
    if let Some(fwid) = &spec.leaf_fwid {
        leaf_builder
            .add_extension(&tcb_info(fwid))
            .expect("tcb info");
    }
    let leaf = finish(leaf_builder);

    TestChain {
        root,
        intermediate,
        leaf,
        root_key,
        intermediate_key: int_key,
        leaf_key,
    }
}

impl TestChain {
    /// `ev` under this chain's root and `policy`, at [`AT`].
    pub fn verify_with(
        &self,
        ev: &GpuEvidenceInput,
        policy: &GpuPolicy,
    ) -> Result<GpuVerdict, GpuError> {
        verify_with_root(ev, policy, AT, &self.root)
    }

    /// `ev` under this chain's root and the default policy, at [`AT`].
    pub fn verify(&self, ev: &GpuEvidenceInput) -> Result<GpuVerdict, GpuError> {
        self.verify_with(ev, &policy())
    }

    /// The root re-issued (by itself) with extension `oid` set to `value`, or removed.
    pub fn set_root_extension(&mut self, oid: &str, value: Option<Vec<u8>>) {
        self.root = reissue(&self.root, &self.root_key, |tbs| {
            set_extension(tbs, oid, value)
        });
    }

    /// The intermediate re-issued by the root with extension `oid` set to `value`, or removed.
    pub fn set_intermediate_extension(&mut self, oid: &str, value: Option<Vec<u8>>) {
        self.intermediate = reissue(&self.intermediate, &self.root_key, |tbs| {
            set_extension(tbs, oid, value)
        });
    }

    /// The leaf re-issued by the intermediate with extension `oid` set to `value`, or removed.
    pub fn set_leaf_extension(&mut self, oid: &str, value: Option<Vec<u8>>) {
        self.leaf = reissue(&self.leaf, &self.intermediate_key, |tbs| {
            set_extension(tbs, oid, value)
        });
    }

    /// How the certificate chain check refuses this chain's own evidence under its root.
    pub fn chain_refusal(&self) -> CertError {
        match self.verify(&self.real_evidence()) {
            Err(GpuError::CertChain(e)) => e,
            other => panic!("not a chain refusal: {other:?}"),
        }
    }

    /// The real report's parts, signed by this chain's leaf.
    pub fn real_evidence(&self) -> GpuEvidenceInput {
        self.evidence(&ReportParts::from_real())
    }

    /// Evidence signed by this chain's leaf, with the chain leaf-first and root last.
    pub fn evidence(&self, parts: &ReportParts) -> GpuEvidenceInput {
        GpuEvidenceInput {
            report: sign(&self.leaf_key, &parts.unsigned()),
            cert_chain: CertChainInput::Der(vec![
                self.leaf.der().to_vec(),
                self.intermediate.der().to_vec(),
                self.root.der().to_vec(),
            ]),
            rims: Vec::new(),
        }
    }
}

pub fn vbios_bytes_for(version: &str) -> [u8; 8] {
    // Inverse of NVIDIA's rendering: "AA.BB.CC.DD.EE" -> low word 0xAABBCCDD, high word 0xEE.
    let parts: Vec<u8> = version
        .split('.')
        .map(|p| u8::from_str_radix(p, 16).expect("hex byte"))
        .collect();
    let low = u32::from_be_bytes([parts[0], parts[1], parts[2], parts[3]]);
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&low.to_le_bytes());
    out[4] = parts[4];
    out
}

pub const FEATURE_FLAG: u16 = field::FEATURE_FLAG;
