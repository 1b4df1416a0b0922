//! The simulated platform: a development authority that signs SEV-SNP-layout reports with a
//! P-384 chip key under a locally generated root -> intermediate -> chip chain, so machines
//! without SEV-SNP run the same verification path. Also the builders for forged evidence
//! that the refusal tests use.
//!
//! Trust: nothing verified under a simulated root says anything about hardware; a client must
//! be told explicitly to accept [`crate::SnpAnchor::Simulated`], and the verdict names the
//! platform "simulated". Randomness and time are arguments (no OS entropy, no clock). The
//! chip's secret key is zeroized on drop and in its serialized form; nothing here implements
//! `Debug`. The root and intermediate keys are discarded after generation, so a persisted
//! authority cannot mint further chips.

use core::str::FromStr;
use core::time::Duration;

use const_oid::ObjectIdentifier;
use der::asn1::{Any, BitString, GeneralizedTime, Ia5StringRef, OctetString, UtcTime};
use der::{Decode, Encode};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use sotto_verify_core::x509::{Cert, CertError};
use sotto_verify_core::UnixTime;
use x509_cert::ext::pkix::BasicConstraints;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};
use zeroize::Zeroizing;

use crate::report::{GuestPolicy, KeyInfo, ParseError, REPORT_SIZE, SIG_ALGO_ECDSA_P384_SHA384};
use crate::{ext, AttestationReport, Product, SnpEvidence, TcbVersion};

const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");

const ROOT_NAME: &str = "CN=Sotto Simulated SNP Root,O=Sotto Development";
const INTERMEDIATE_NAME: &str = "CN=Sotto Simulated SNP Signer,O=Sotto Development";
const CHIP_NAME: &str = "CN=SEV-VCEK,OU=Simulated,O=Sotto Development";
/// Certificates are valid from a day before `now` (tolerating clock skew between the
/// enclave and its clients) for ten years.
const BACKDATE_SECS: u64 = 24 * 3600;
const VALIDITY_SECS: u64 = 3652 * 24 * 3600;
/// RFC 5280: UTCTime up to 2049, GeneralizedTime from 2050-01-01.
const GENERALIZED_TIME_FROM: u64 = 2_524_608_000;
const MAGIC: &[u8; 16] = b"sotto-snp-sim-v1";

/// Why the simulated authority could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("DER encoding failed: {0}")]
    Der(String),
    #[error("the simulated product uses the Milan/Genoa TCB layout, which has no FMC field")]
    FmcUnsupported,
    #[error("serialized authority is malformed: {0}")]
    Malformed(&'static str),
    #[error("certificate: {0}")]
    Cert(CertError),
    #[error("report: {0}")]
    Report(ParseError),
}

fn der_err(e: der::Error) -> SimError {
    SimError::Der(e.to_string())
}

/// A development SEV-SNP platform: one simulated chip with a fixed chip id and TCB.
pub struct SimAuthority {
    chip_key: SigningKey,
    root_der: Vec<u8>,
    intermediate_der: Vec<u8>,
    chip_der: Vec<u8>,
    chip_id: [u8; 64],
    tcb: TcbVersion,
}

impl SimAuthority {
    /// Creates a root, an intermediate and a chip key, and certifies the chip key with the
    /// same AMD extensions a VCEK carries (productName "Simulated").
    pub fn generate(
        rng: &mut impl CryptoRngCore,
        now: UnixTime,
        chip_id: [u8; 64],
        tcb: TcbVersion,
    ) -> Result<SimAuthority, SimError> {
        if tcb.fmc.is_some() {
            return Err(SimError::FmcUnsupported);
        }
        let root_key = SigningKey::random(rng);
        let intermediate_key = SigningKey::random(rng);
        let chip_key = SigningKey::random(rng);
        let validity = validity(now)?;
        let root = name(ROOT_NAME)?;
        let intermediate = name(INTERMEDIATE_NAME)?;
        let chip = name(CHIP_NAME)?;
        let vcek = chip_extensions(&chip_id, &tcb)?;

        // Every certificate of the authority has the same validity and a fresh serial.
        let mut issue = |issuer: &Name,
                         subject: &Name,
                         subject_key: &SigningKey,
                         extensions: Vec<Extension>,
                         issuer_key: &SigningKey| {
            let spec = CertSpec {
                serial: random_serial(rng),
                issuer: issuer.clone(),
                subject: subject.clone(),
                validity,
                subject_key: subject_key.verifying_key(),
                extensions,
            };
            build_cert(spec, issuer_key)
        };
        let root_der = issue(&root, &root, &root_key, ca_extensions()?, &root_key)?;
        let intermediate_der = issue(
            &root,
            &intermediate,
            &intermediate_key,
            ca_extensions()?,
            &root_key,
        )?;
        let chip_der = issue(&intermediate, &chip, &chip_key, vcek, &intermediate_key)?;
        Self::assemble(chip_key, [root_der, intermediate_der, chip_der])
    }

    /// The development root a client must be configured with to accept this authority.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// `[intermediate, root]`, as [`SnpEvidence::chain_der`] carries them.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        vec![self.intermediate_der.clone(), self.root_der.clone()]
    }

    /// The chip certificate (the simulated VCEK).
    pub fn chip_cert_der(&self) -> &[u8] {
        &self.chip_der
    }

    pub fn chip_id(&self) -> &[u8; 64] {
        &self.chip_id
    }

    pub fn tcb(&self) -> TcbVersion {
        self.tcb
    }

    /// Signs bytes `0..0x2A0` of `report` with the chip key and stores R and S in its
    /// signature field. Other fields are left exactly as the caller set them.
    pub fn sign_report(&self, report: &mut AttestationReport) -> Result<(), SimError> {
        let mut signed = report.to_bytes();
        signed.truncate(crate::SIGNED_LEN);
        let signature: Signature = self.chip_key.sign(&signed);
        let (r, s) = signature.split_bytes();
        let r = <[u8; 48]>::try_from(&r[..]).map_err(|_| SimError::Malformed("r"))?;
        let s = <[u8; 48]>::try_from(&s[..]).map_err(|_| SimError::Malformed("s"))?;
        report.signature.set_p384_be(&r, &s);
        Ok(())
    }

    /// A fresh signed version 3 report from this chip: VMPL 0, no debug, no migration
    /// agent, this chip's id and TCB, the given measurement and REPORT_DATA.
    pub fn issue_report(
        &self,
        measurement: [u8; 48],
        report_data: [u8; 64],
    ) -> Result<AttestationReport, SimError> {
        let mut blank = [0u8; REPORT_SIZE];
        blank[0] = 3;
        let mut report = AttestationReport::parse(&blank).map_err(SimError::Report)?;
        let tcb = self.tcb.encode(Product::Simulated);
        report.policy = GuestPolicy(GuestPolicy::RESERVED_ONE | GuestPolicy::SMT);
        report.signature_algo = SIG_ALGO_ECDSA_P384_SHA384;
        report.key_info = KeyInfo(KeyInfo::VCEK);
        report.current_tcb = tcb;
        report.reported_tcb = tcb;
        report.committed_tcb = tcb;
        report.launch_tcb = tcb;
        report.chip_id = self.chip_id;
        report.measurement = measurement;
        report.report_data = report_data;
        self.sign_report(&mut report)?;
        Ok(report)
    }

    /// Packages a report with this chip's certificate and chain.
    pub fn evidence(&self, report: &AttestationReport) -> SnpEvidence {
        SnpEvidence {
            report: report.to_bytes(),
            endorsement_der: self.chip_der.clone(),
            chain_der: self.chain_der(),
        }
    }

    /// Persists the chip key and the three certificates. The output holds a secret key.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let key = Zeroizing::new(self.chip_key.to_bytes());
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key[..]);
        for der in [&self.root_der, &self.intermediate_der, &self.chip_der] {
            // Certificates here are a few hundred bytes; u32 cannot overflow.
            out.extend_from_slice(&u32::try_from(der.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(der);
        }
        out
    }

    /// Restores an authority from [`SimAuthority::to_bytes`], checking that the chain links
    /// up and the key matches the chip certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<SimAuthority, SimError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(SimError::Malformed("magic"))?;
        let key_bytes = rest.get(..48).ok_or(SimError::Malformed("truncated key"))?;
        let chip_key =
            SigningKey::from_slice(key_bytes).map_err(|_| SimError::Malformed("chip key"))?;
        let mut rest = rest.get(48..).ok_or(SimError::Malformed("truncated key"))?;
        let mut ders = Vec::with_capacity(3);
        for _ in 0..3 {
            let (der, tail) = take_len_prefixed(rest)?;
            ders.push(der.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(SimError::Malformed("trailing bytes"));
        }
        let ders: [Vec<u8>; 3] = ders
            .try_into()
            .map_err(|_| SimError::Malformed("certificate count"))?;
        Self::assemble(chip_key, ders)
    }

    /// An authority from its chip key and `[root, intermediate, chip]` certificates, once the
    /// chain links up and the key matches the chip certificate; the chip id and TCB are the
    /// chip certificate's.
    fn assemble(chip_key: SigningKey, ders: [Vec<u8>; 3]) -> Result<SimAuthority, SimError> {
        let [root_der, intermediate_der, chip_der] = ders;
        let root = Cert::from_der(&root_der).map_err(SimError::Cert)?;
        let intermediate = Cert::from_der(&intermediate_der).map_err(SimError::Cert)?;
        let chip = Cert::from_der(&chip_der).map_err(SimError::Cert)?;
        root.verify_issued_by(&root).map_err(SimError::Cert)?;
        intermediate
            .verify_issued_by(&root)
            .map_err(SimError::Cert)?;
        chip.verify_issued_by(&intermediate)
            .map_err(SimError::Cert)?;
        let chip_spki = chip
            .inner()
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if chip_spki != chip_key.verifying_key().to_encoded_point(false).as_bytes() {
            return Err(SimError::Malformed(
                "chip key does not match chip certificate",
            ));
        }
        let chip_id = ext::hw_id(&chip)
            .and_then(|id| <[u8; 64]>::try_from(id).ok())
            .ok_or(SimError::Malformed("hwID extension"))?;
        let spl = |oid| ext::spl(&chip, oid).ok_or(SimError::Malformed("TCB extension"));
        let tcb = TcbVersion {
            fmc: None,
            bootloader: spl(ext::BL_SPL)?,
            tee: spl(ext::TEE_SPL)?,
            snp: spl(ext::SNP_SPL)?,
            microcode: spl(ext::UCODE_SPL)?,
        };
        Ok(SimAuthority {
            chip_key,
            root_der,
            intermediate_der,
            chip_der,
            chip_id,
            tcb,
        })
    }
}

fn take_len_prefixed(bytes: &[u8]) -> Result<(&[u8], &[u8]), SimError> {
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(SimError::Malformed("truncated length"))?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes))
        .map_err(|_| SimError::Malformed("length"))?;
    let end = 4usize
        .checked_add(len)
        .ok_or(SimError::Malformed("length"))?;
    let body = bytes
        .get(4..end)
        .ok_or(SimError::Malformed("truncated certificate"))?;
    let tail = bytes.get(end..).ok_or(SimError::Malformed("length"))?;
    Ok((body, tail))
}

struct CertSpec<'a> {
    serial: [u8; 16],
    issuer: Name,
    subject: Name,
    validity: Validity,
    subject_key: &'a VerifyingKey,
    extensions: Vec<Extension>,
}

fn name(rfc4514: &str) -> Result<Name, SimError> {
    Name::from_str(rfc4514).map_err(der_err)
}

fn time(secs: u64) -> Result<Time, SimError> {
    let d = Duration::from_secs(secs);
    if secs < GENERALIZED_TIME_FROM {
        UtcTime::from_unix_duration(d).map(Time::UtcTime)
    } else {
        GeneralizedTime::from_unix_duration(d).map(Time::GeneralTime)
    }
    .map_err(der_err)
}

fn validity(now: UnixTime) -> Result<Validity, SimError> {
    Ok(Validity {
        not_before: time(now.0.saturating_sub(BACKDATE_SECS))?,
        not_after: time(now.0.saturating_add(VALIDITY_SECS))?,
    })
}

/// A positive 16-byte serial with a non-zero first byte (so its DER length is fixed).
fn random_serial(rng: &mut impl CryptoRngCore) -> [u8; 16] {
    let mut serial = [0u8; 16];
    rng.fill_bytes(&mut serial);
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}

fn ecdsa_sha384() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA384,
        parameters: None,
    }
}

fn spki(key: &VerifyingKey) -> Result<SubjectPublicKeyInfoOwned, SimError> {
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&SECP384R1).map_err(der_err)?),
        },
        subject_public_key: BitString::from_bytes(key.to_encoded_point(false).as_bytes())
            .map_err(der_err)?,
    })
}

fn extension(oid: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Result<Extension, SimError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).map_err(der_err)?,
    })
}

/// The extensions of the root and the intermediate: a CA, with no limit on the path below.
fn ca_extensions() -> Result<Vec<Extension>, SimError> {
    let value = BasicConstraints {
        ca: true,
        path_len_constraint: None,
    }
    .to_der()
    .map_err(der_err)?;
    Ok(vec![extension(BASIC_CONSTRAINTS, true, value)?])
}

/// The extensions of an AMD VCEK, filled with the simulated chip's values.
fn chip_extensions(chip_id: &[u8; 64], tcb: &TcbVersion) -> Result<Vec<Extension>, SimError> {
    let int = |v: u8| v.to_der().map_err(der_err);
    let product = Ia5StringRef::new(Product::Simulated.name())
        .and_then(|s| s.to_der())
        .map_err(der_err)?;
    let mut exts = vec![
        extension(ext::STRUCT_VERSION, false, int(0)?)?,
        extension(ext::PRODUCT_NAME, false, product)?,
        extension(ext::BL_SPL, false, int(tcb.bootloader)?)?,
        extension(ext::TEE_SPL, false, int(tcb.tee)?)?,
    ];
    for oid in ext::RESERVED_SPLS {
        exts.push(extension(oid, false, int(0)?)?);
    }
    exts.push(extension(ext::SNP_SPL, false, int(tcb.snp)?)?);
    exts.push(extension(ext::UCODE_SPL, false, int(tcb.microcode)?)?);
    // AMD stores the chip id raw, not DER-wrapped; the simulation does the same.
    exts.push(extension(ext::HW_ID, false, chip_id.to_vec())?);
    Ok(exts)
}

fn sign_tbs(tbs: TbsCertificate, issuer_key: &SigningKey) -> Result<Vec<u8>, SimError> {
    let tbs_der = tbs.to_der().map_err(der_err)?;
    let signature: Signature = issuer_key.sign(&tbs_der);
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha384(),
        signature: BitString::from_bytes(signature.to_der().as_bytes()).map_err(der_err)?,
    };
    cert.to_der().map_err(der_err)
}

fn build_cert(spec: CertSpec<'_>, issuer_key: &SigningKey) -> Result<Vec<u8>, SimError> {
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&spec.serial).map_err(der_err)?,
        signature: ecdsa_sha384(),
        issuer: spec.issuer,
        validity: spec.validity,
        subject: spec.subject,
        subject_public_key_info: spki(spec.subject_key)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(spec.extensions),
    };
    sign_tbs(tbs, issuer_key)
}

/// Builders for evidence that must be refused, for the forged-evidence tests.
pub mod forge {
    use super::*;

    /// `evidence` with its report changed by `mutate` and the original signature kept.
    pub fn tampered(
        evidence: &SnpEvidence,
        mutate: impl FnOnce(&mut AttestationReport),
    ) -> Result<SnpEvidence, ParseError> {
        let mut report = AttestationReport::parse(&evidence.report)?;
        mutate(&mut report);
        Ok(SnpEvidence {
            report: report.to_bytes(),
            ..evidence.clone()
        })
    }

    /// `report` changed by `mutate`, then re-signed by `authority` and packaged with the
    /// authority's chip certificate and chain.
    pub fn resigned(
        authority: &SimAuthority,
        report: &AttestationReport,
        mutate: impl FnOnce(&mut AttestationReport),
    ) -> Result<SnpEvidence, SimError> {
        let mut report = report.clone();
        mutate(&mut report);
        authority.sign_report(&mut report)?;
        Ok(authority.evidence(&report))
    }

    /// A copy of the certificate `genuine_der` (same names, validity and extensions) whose
    /// key is replaced by a fresh P-384 key that also signs it: indistinguishable from the
    /// genuine one to a verifier that only compares names.
    pub fn impostor_of(
        rng: &mut impl CryptoRngCore,
        genuine_der: &[u8],
    ) -> Result<Vec<u8>, SimError> {
        let genuine = Certificate::from_der(genuine_der).map_err(der_err)?;
        let key = SigningKey::random(rng);
        let mut tbs = genuine.tbs_certificate;
        tbs.subject_public_key_info = spki(key.verifying_key())?;
        tbs.signature = ecdsa_sha384();
        sign_tbs(tbs, &key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{verify, SnpAnchor, SnpError, SnpPolicy, SnpVerdict};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NOW: UnixTime = UnixTime(1_750_000_000);

    fn tcb() -> TcbVersion {
        TcbVersion {
            fmc: None,
            bootloader: 4,
            tee: 0,
            snp: 22,
            microcode: 0xd5,
        }
    }

    fn authority() -> SimAuthority {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        SimAuthority::generate(&mut rng, NOW, [0x5a; 64], tcb()).unwrap()
    }

    /// Verifies `evidence` under the default policy, anchored in `sim`'s root.
    fn verify_under(
        sim: &SimAuthority,
        evidence: &SnpEvidence,
        at: UnixTime,
    ) -> Result<SnpVerdict, SnpError> {
        let anchor = SnpAnchor::Simulated {
            root_der: sim.root_der().to_vec(),
        };
        verify(evidence, &anchor, &SnpPolicy::default(), at)
    }

    #[test]
    fn generate_sign_verify_round_trip() {
        let sim = authority();
        let report = sim.issue_report([1; 48], [2; 64]).unwrap();
        let verdict = verify_under(&sim, &sim.evidence(&report), NOW).unwrap();
        assert_eq!(verdict.platform, "simulated");
        assert_eq!(verdict.product, Product::Simulated);
        assert_eq!(verdict.measurement, [1; 48]);
        assert_eq!(verdict.report_data, [2; 64]);
        assert_eq!(verdict.chip_id, [0x5a; 64]);
        assert_eq!(verdict.reported_tcb, tcb());
        assert!(verdict.checks.contains(&"report-signature"));
    }

    #[test]
    fn persisted_authority_keeps_signing_for_the_same_root() {
        let sim = authority();
        let restored = SimAuthority::from_bytes(&sim.to_bytes()).unwrap();
        assert_eq!(restored.root_der(), sim.root_der());
        assert_eq!(restored.chip_id(), sim.chip_id());
        assert_eq!(restored.tcb(), sim.tcb());
        let report = restored.issue_report([3; 48], [4; 64]).unwrap();
        assert!(verify_under(&sim, &restored.evidence(&report), NOW).is_ok());
    }

    #[test]
    fn from_bytes_refuses_damage() {
        let bytes = authority().to_bytes();
        assert!(SimAuthority::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong_key = bytes.to_vec();
        wrong_key[MAGIC.len() + 47] ^= 1;
        assert!(SimAuthority::from_bytes(&wrong_key).is_err());
        assert!(SimAuthority::from_bytes(b"nonsense").is_err());
    }

    #[test]
    fn fmc_tcb_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let tcb = TcbVersion {
            fmc: Some(1),
            ..tcb()
        };
        assert!(matches!(
            SimAuthority::generate(&mut rng, NOW, [0; 64], tcb),
            Err(SimError::FmcUnsupported)
        ));
    }

    #[test]
    fn certificates_expire_after_ten_years() {
        let sim = authority();
        let report = sim.issue_report([1; 48], [2; 64]).unwrap();
        let later = UnixTime(NOW.0 + VALIDITY_SECS + 1);
        let err = verify_under(&sim, &sim.evidence(&report), later);
        assert!(matches!(
            err,
            Err(SnpError::Chain(CertError::Expired { .. }))
        ));
    }
}
