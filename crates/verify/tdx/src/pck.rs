//! Intel's SGX extension in PCK certificates (OID 1.2.840.113741.1.13.1): the platform's TCB
//! component SVNs, PCESVN, CPUSVN, PCE-ID and FMSPC, which select the TCB info and its level.
//!
//! Trust: the values are meaningful only once the PCK certificate has been verified to the
//! pinned Intel root; parsing itself trusts nothing and refuses any deviation from the layout
//! (`SEQUENCE OF SEQUENCE { OID, value }`).

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, OctetStringRef};
use der::Decode;
use sotto_verify_core::x509::Cert;

use crate::TdxError;

const SGX_EXTENSIONS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");
const SGX_TCB: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2");
const SGX_PCESVN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2.17");
const SGX_CPUSVN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2.18");
const SGX_PCEID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.3");
const SGX_FMSPC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.4");

/// The platform identity and TCB a PCK certificate attests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PckPlatform {
    /// SGX TCB component SVNs 1..=16 (OIDs ...1.2.1 to ...1.2.16).
    pub tcb_components: [u16; 16],
    pub pce_svn: u16,
    pub cpu_svn: [u8; 16],
    pub pce_id: [u8; 2],
    pub fmspc: [u8; 6],
}

fn bad(why: impl Into<String>) -> TdxError {
    TdxError::PckExtension(why.into())
}

/// Splits `SEQUENCE OF SEQUENCE { OID, ANY }` into its pairs.
fn pairs<'a>(seq: &[AnyRef<'a>]) -> Result<Vec<(ObjectIdentifier, AnyRef<'a>)>, TdxError> {
    seq.iter()
        .map(|item| {
            let inner: Vec<AnyRef<'a>> = item
                .decode_as()
                .map_err(|e| bad(format!("entry is not a SEQUENCE: {e}")))?;
            match inner.as_slice() {
                [oid, value] => Ok((
                    oid.decode_as()
                        .map_err(|e| bad(format!("entry without OID: {e}")))?,
                    *value,
                )),
                _ => Err(bad("entry is not an (OID, value) pair")),
            }
        })
        .collect()
}

fn octets<const N: usize>(value: AnyRef<'_>, what: &str) -> Result<[u8; N], TdxError> {
    let os: OctetStringRef<'_> = value
        .decode_as()
        .map_err(|e| bad(format!("{what} is not an OCTET STRING: {e}")))?;
    os.as_bytes()
        .try_into()
        .map_err(|_| bad(format!("{what} is not {N} bytes")))
}

fn svn(value: AnyRef<'_>, what: &str) -> Result<u16, TdxError> {
    value
        .decode_as::<u16>()
        .map_err(|e| bad(format!("{what} is not a small INTEGER: {e}")))
}

impl PckPlatform {
    /// Reads the SGX extension of a PCK certificate.
    pub fn from_cert(cert: &Cert) -> Result<PckPlatform, TdxError> {
        let ext = cert
            .extension(SGX_EXTENSIONS)
            .ok_or_else(|| bad("certificate has no SGX extension"))?;
        let top: Vec<AnyRef<'_>> =
            Vec::from_der(ext).map_err(|e| bad(format!("not a SEQUENCE: {e}")))?;
        let top = pairs(&top)?;
        let find = |oid: ObjectIdentifier, what: &str| {
            let mut it = top.iter().filter(|(o, _)| *o == oid);
            match (it.next(), it.next()) {
                (Some((_, v)), None) => Ok(*v),
                (None, _) => Err(bad(format!("{what} missing"))),
                (Some(_), Some(_)) => Err(bad(format!("{what} repeated"))),
            }
        };

        let tcb_seq: Vec<AnyRef<'_>> = find(SGX_TCB, "TCB")?
            .decode_as()
            .map_err(|e| bad(format!("TCB is not a SEQUENCE: {e}")))?;
        let tcb = pairs(&tcb_seq)?;
        let mut tcb_components = [None; 16];
        let (mut pce_svn, mut cpu_svn) = (None, None);
        for (oid, value) in tcb {
            if oid == SGX_PCESVN {
                pce_svn = Some(svn(value, "PCESVN")?);
            } else if oid == SGX_CPUSVN {
                cpu_svn = Some(octets::<16>(value, "CPUSVN")?);
            } else {
                let index = component_index(&oid)
                    .ok_or_else(|| bad(format!("unexpected TCB entry {oid}")))?;
                let slot = tcb_components
                    .get_mut(index)
                    .ok_or_else(|| bad(format!("unexpected TCB entry {oid}")))?;
                if slot.is_some() {
                    return Err(bad(format!("TCB component {oid} repeated")));
                }
                *slot = Some(svn(value, "TCB component SVN")?);
            }
        }
        let mut components = [0u16; 16];
        for (out, found) in components.iter_mut().zip(tcb_components) {
            *out = found.ok_or_else(|| bad("TCB component SVN missing"))?;
        }
        Ok(PckPlatform {
            tcb_components: components,
            pce_svn: pce_svn.ok_or_else(|| bad("PCESVN missing"))?,
            cpu_svn: cpu_svn.ok_or_else(|| bad("CPUSVN missing"))?,
            pce_id: octets(find(SGX_PCEID, "PCE-ID")?, "PCE-ID")?,
            fmspc: octets(find(SGX_FMSPC, "FMSPC")?, "FMSPC")?,
        })
    }
}

/// Maps `1.2.840.113741.1.13.1.2.N` (N in 1..=16) to index N-1.
fn component_index(oid: &ObjectIdentifier) -> Option<usize> {
    if oid.parent()? != SGX_TCB {
        return None;
    }
    let last = oid.arcs().last()?;
    let n = usize::try_from(last).ok()?;
    (1..=16).contains(&n).then(|| n - 1)
}
