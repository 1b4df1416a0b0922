//! The Intel DCAP quote format (versions 4 and 5, TDX only), parsed from untrusted bytes.
//!
//! Trust: nothing. Parsing only checks structure (lengths, types, versions); every signature and
//! every value is checked later by `verify`. Layout per Intel's "TDX DCAP Quoting Library API",
//! appendix A: a 48-byte header, the TD report body (v5 prefixes it with a 2-byte body type and a
//! 4-byte body size), a 4-byte signature-data length, then the ECDSA-256 signature data whose
//! certification data is type 6 (QE report certification data) wrapping type 5 (PCK chain, PEM).

use sotto_verify_core::at_most;

use crate::TdxError;

/// Largest quote accepted. Real TDX quotes are about 5 KiB (most of it the PEM chain); the bound
/// stops a hostile host from making a client parse megabytes.
pub const MAX_QUOTE_LEN: usize = 16 * 1024;

pub const HEADER_LEN: usize = 48;
pub const TD_REPORT10_LEN: usize = 584;
pub const TD_REPORT15_LEN: usize = 648;
/// TD report 1.5 "extended" (v5 body type 4): the 1.5 body plus VMID, TD_ID and further fields.
pub const TD_REPORT15EX_LEN: usize = 885;
pub const QE_REPORT_LEN: usize = 384;

const TEE_TYPE_TDX: u32 = 0x81;
const ATT_KEY_ECDSA_P256: u16 = 2;
const BODY_TYPE_TD10: u16 = 2;
const BODY_TYPE_TD15: u16 = 3;
const BODY_TYPE_TD15EX: u16 = 4;
const CERT_DATA_PCK_CHAIN: u16 = 5;
const CERT_DATA_QE_REPORT: u16 = 6;
/// Intel's QE vendor id (939A7233-F79C-4CA9-940A-0DB3957F0607).
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];

/// The 48-byte quote header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteHeader {
    pub version: u16,
    pub attestation_key_type: u16,
    pub tee_type: u32,
    pub qe_vendor_id: [u8; 16],
    pub user_data: [u8; 20],
}

/// Which TD report layout the quote carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum BodyKind {
    /// TDX 1.0 TD report (584 bytes): v4, or v5 body type 2.
    Td10,
    /// TDX 1.5 TD report (648 bytes): v5 body type 3.
    Td15,
    /// TDX 1.5 extended TD report (885 bytes): v5 body type 4.
    Td15Ex,
}

/// The TD report body: the TD's measurements and the TDX module's TCB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdReport {
    pub kind: BodyKind,
    pub tee_tcb_svn: [u8; 16],
    pub mrseam: [u8; 48],
    pub mrsignerseam: [u8; 48],
    pub seam_attributes: [u8; 8],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mrtd: [u8; 48],
    pub mrconfigid: [u8; 48],
    pub mrowner: [u8; 48],
    pub mrownerconfig: [u8; 48],
    pub rtmrs: [[u8; 48]; 4],
    pub report_data: [u8; 64],
    /// TEE_TCB_SVN2 and MRSERVICETD, present in TDX 1.5 bodies.
    pub td15: Option<Td15Fields>,
    /// The bytes a 1.5-extended body appends after the 1.5 fields (VMID, TD_ID, ...). They are
    /// covered by the quote signature; nothing here interprets them beyond [`TdReport::vmid`]
    /// and [`TdReport::td_id`].
    pub td15_ex: Option<Vec<u8>>,
}

/// The fields a TDX 1.5 body adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Td15Fields {
    pub tee_tcb_svn2: [u8; 16],
    pub mrservicetd: [u8; 48],
}

impl TdReport {
    /// TUD.DEBUG (bit 0 of TDATTRIBUTES): the host can read and alter the TD's state.
    pub fn debug(&self) -> bool {
        self.td_attributes[0] & 1 != 0
    }

    /// TDATTRIBUTES as the 64-bit value whose bits [`crate::attributes`] names (the report
    /// stores it little-endian).
    pub fn td_attributes_bits(&self) -> u64 {
        u64::from_le_bytes(self.td_attributes)
    }

    /// VMID of a 1.5-extended body.
    pub fn vmid(&self) -> Option<u8> {
        self.td15_ex.as_ref()?.first().copied()
    }

    /// TD_ID of a 1.5-extended body.
    pub fn td_id(&self) -> Option<[u8; 32]> {
        self.td15_ex.as_ref()?.get(1..33)?.try_into().ok()
    }
}

/// An SGX enclave report, here the Quoting Enclave's own report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveReport {
    pub cpu_svn: [u8; 16],
    pub misc_select: u32,
    pub attributes: [u8; 16],
    pub mr_enclave: [u8; 32],
    pub mr_signer: [u8; 32],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    pub report_data: [u8; 64],
}

/// The quote's ECDSA-256 signature data, structure only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureData {
    /// Raw `r || s` over header and body, by the attestation key.
    pub quote_signature: [u8; 64],
    /// Raw `x || y` of the P-256 attestation key.
    pub attestation_key: [u8; 64],
    /// The exact QE report bytes the PCK key signed.
    pub qe_report_raw: [u8; QE_REPORT_LEN],
    pub qe_report: EnclaveReport,
    /// Raw `r || s` over the QE report, by the PCK key.
    pub qe_report_signature: [u8; 64],
    pub qe_auth_data: Vec<u8>,
    /// The PCK certificate chain (leaf first), PEM, with the C-string terminator removed.
    pub pck_chain_pem: Vec<u8>,
}

/// A parsed TDX quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub header: QuoteHeader,
    pub body: TdReport,
    pub signature: SignatureData,
    /// Header and body exactly as signed by the attestation key.
    signed: Vec<u8>,
}

/// A bounds-checked reader over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TdxError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                TdxError::QuoteParse(format!(
                    "truncated: {what} needs {n} bytes at offset {}, {} left",
                    self.pos,
                    self.buf.len().saturating_sub(self.pos)
                ))
            })?;
        let out = self.buf.get(self.pos..end).ok_or(TdxError::QuoteParse(
            "internal: bounds already checked".into(),
        ))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TdxError> {
        let s = self.take(N, what)?;
        s.try_into()
            .map_err(|_| TdxError::QuoteParse(format!("{what}: length")))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, TdxError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, TdxError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

impl Quote {
    /// Parses a TDX quote (v4, or v5 with a TD 1.0 / 1.5 / 1.5-extended body).
    ///
    /// Bytes after the declared signature data must be zero: quote buffers handed out by the
    /// quote generation service are zero-padded, and anything else there would be unsigned
    /// data that a careless consumer might read.
    pub fn parse(bytes: &[u8]) -> Result<Quote, TdxError> {
        at_most(bytes.len(), MAX_QUOTE_LEN, |len, max| {
            TdxError::QuoteTooLarge { len, max }
        })?;
        let mut r = Reader::new(bytes);
        let header = parse_header(&mut r)?;
        let kind = match header.version {
            4 => BodyKind::Td10,
            5 => {
                let body_type = r.u16("body type")?;
                let body_size = r.u32("body size")?;
                let (kind, expected) = match body_type {
                    BODY_TYPE_TD10 => (BodyKind::Td10, TD_REPORT10_LEN),
                    BODY_TYPE_TD15 => (BodyKind::Td15, TD_REPORT15_LEN),
                    BODY_TYPE_TD15EX => (BodyKind::Td15Ex, TD_REPORT15EX_LEN),
                    other => return Err(TdxError::UnsupportedBodyType(other)),
                };
                if usize::try_from(body_size).ok() != Some(expected) {
                    return Err(TdxError::QuoteParse(format!(
                        "body type {body_type} declares {body_size} bytes, expected {expected}"
                    )));
                }
                kind
            }
            other => return Err(TdxError::UnsupportedVersion(other)),
        };
        let body = parse_body(&mut r, kind)?;
        let signed = bytes
            .get(..r.pos)
            .ok_or(TdxError::QuoteParse("internal: signed range".into()))?
            .to_vec();

        let sig_len = r.u32("signature data length")?;
        let sig_len = usize::try_from(sig_len)
            .map_err(|_| TdxError::QuoteParse("signature data length".into()))?;
        let sig_bytes = r.take(sig_len, "signature data")?;
        if r.rest().iter().any(|&b| b != 0) {
            return Err(TdxError::QuoteParse(
                "non-zero bytes after the signature data".into(),
            ));
        }
        let signature = parse_signature_data(sig_bytes)?;
        Ok(Quote {
            header,
            body,
            signature,
            signed,
        })
    }

    /// Header and body: the bytes the attestation key signed.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }
}

fn parse_header(r: &mut Reader<'_>) -> Result<QuoteHeader, TdxError> {
    let version = r.u16("version")?;
    let attestation_key_type = r.u16("attestation key type")?;
    let tee_type = r.u32("TEE type")?;
    let _reserved: [u8; 4] = r.array("reserved")?;
    let qe_vendor_id = r.array("QE vendor id")?;
    let user_data = r.array("user data")?;
    if version != 4 && version != 5 {
        return Err(TdxError::UnsupportedVersion(version));
    }
    if tee_type != TEE_TYPE_TDX {
        return Err(TdxError::UnsupportedTeeType(tee_type));
    }
    if attestation_key_type != ATT_KEY_ECDSA_P256 {
        return Err(TdxError::UnsupportedAttestationKeyType(
            attestation_key_type,
        ));
    }
    if qe_vendor_id != INTEL_QE_VENDOR_ID {
        return Err(TdxError::QuoteParse(format!(
            "QE vendor id {} is not Intel's",
            hex::encode(qe_vendor_id)
        )));
    }
    Ok(QuoteHeader {
        version,
        attestation_key_type,
        tee_type,
        qe_vendor_id,
        user_data,
    })
}

fn parse_body(r: &mut Reader<'_>, kind: BodyKind) -> Result<TdReport, TdxError> {
    let tee_tcb_svn = r.array("TEE_TCB_SVN")?;
    let mrseam = r.array("MRSEAM")?;
    let mrsignerseam = r.array("MRSIGNERSEAM")?;
    let seam_attributes = r.array("SEAMATTRIBUTES")?;
    let td_attributes = r.array("TDATTRIBUTES")?;
    let xfam = r.array("XFAM")?;
    let mrtd = r.array("MRTD")?;
    let mrconfigid = r.array("MRCONFIGID")?;
    let mrowner = r.array("MROWNER")?;
    let mrownerconfig = r.array("MROWNERCONFIG")?;
    let rtmrs = [
        r.array("RTMR0")?,
        r.array("RTMR1")?,
        r.array("RTMR2")?,
        r.array("RTMR3")?,
    ];
    let report_data = r.array("REPORTDATA")?;
    let td15 = match kind {
        BodyKind::Td10 => None,
        BodyKind::Td15 | BodyKind::Td15Ex => Some(Td15Fields {
            tee_tcb_svn2: r.array("TEE_TCB_SVN2")?,
            mrservicetd: r.array("MRSERVICETD")?,
        }),
    };
    let td15_ex = match kind {
        BodyKind::Td15Ex => Some(
            r.take(TD_REPORT15EX_LEN - TD_REPORT15_LEN, "TD 1.5 extension")?
                .to_vec(),
        ),
        BodyKind::Td10 | BodyKind::Td15 => None,
    };
    Ok(TdReport {
        kind,
        tee_tcb_svn,
        mrseam,
        mrsignerseam,
        seam_attributes,
        td_attributes,
        xfam,
        mrtd,
        mrconfigid,
        mrowner,
        mrownerconfig,
        rtmrs,
        report_data,
        td15,
        td15_ex,
    })
}

/// A certification data entry: its `u16` type, which must be `expected`, then its data, `u32`
/// sized. `names` names the type, the size and the data for a truncation error.
fn certification_data<'a>(
    r: &mut Reader<'a>,
    expected: u16,
    names: [&'static str; 3],
) -> Result<&'a [u8], TdxError> {
    let found = r.u16(names[0])?;
    if found != expected {
        return Err(TdxError::UnsupportedCertificationData(found));
    }
    let size = r.u32(names[1])?;
    r.take(len(size)?, names[2])
}

/// Parses the signature data; every nested length must account for its bytes exactly.
fn parse_signature_data(bytes: &[u8]) -> Result<SignatureData, TdxError> {
    let mut r = Reader::new(bytes);
    let quote_signature = r.array("quote signature")?;
    let attestation_key = r.array("attestation key")?;
    let outer = certification_data(
        &mut r,
        CERT_DATA_QE_REPORT,
        [
            "certification data type",
            "certification data size",
            "certification data",
        ],
    )?;
    exhausted(&r, "signature data")?;

    let mut r = Reader::new(outer);
    let qe_report_raw: [u8; QE_REPORT_LEN] = r.array("QE report")?;
    let qe_report = parse_enclave_report(&qe_report_raw)?;
    let qe_report_signature = r.array("QE report signature")?;
    let auth_len = r.u16("QE auth data size")?;
    let qe_auth_data = r.take(usize::from(auth_len), "QE auth data")?.to_vec();
    let pem = certification_data(
        &mut r,
        CERT_DATA_PCK_CHAIN,
        [
            "PCK certification data type",
            "PCK certification data size",
            "PCK certificate chain",
        ],
    )?;
    exhausted(&r, "QE report certification data")?;

    // The QE writes the chain as a C string; the terminator is not PEM.
    let end = pem.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let pck_chain_pem = pem.get(..end).unwrap_or_default().to_vec();
    Ok(SignatureData {
        quote_signature,
        attestation_key,
        qe_report_raw,
        qe_report,
        qe_report_signature,
        qe_auth_data,
        pck_chain_pem,
    })
}

fn len(v: u32) -> Result<usize, TdxError> {
    usize::try_from(v).map_err(|_| TdxError::QuoteParse("length overflows usize".into()))
}

fn exhausted(r: &Reader<'_>, what: &'static str) -> Result<(), TdxError> {
    if r.rest().is_empty() {
        Ok(())
    } else {
        Err(TdxError::QuoteParse(format!(
            "{} unexpected bytes at the end of the {what}",
            r.rest().len()
        )))
    }
}

/// Parses a 384-byte SGX enclave report.
pub fn parse_enclave_report(bytes: &[u8; QE_REPORT_LEN]) -> Result<EnclaveReport, TdxError> {
    let mut r = Reader::new(bytes);
    let cpu_svn = r.array("QE CPUSVN")?;
    let misc_select = r.u32("QE MISCSELECT")?;
    r.take(28, "QE reserved")?;
    let attributes = r.array("QE ATTRIBUTES")?;
    let mr_enclave = r.array("QE MRENCLAVE")?;
    r.take(32, "QE reserved")?;
    let mr_signer = r.array("QE MRSIGNER")?;
    r.take(96, "QE reserved")?;
    let isv_prod_id = r.u16("QE ISVPRODID")?;
    let isv_svn = r.u16("QE ISVSVN")?;
    r.take(60, "QE reserved")?;
    let report_data = r.array("QE REPORTDATA")?;
    Ok(EnclaveReport {
        cpu_svn,
        misc_select,
        attributes,
        mr_enclave,
        mr_signer,
        isv_prod_id,
        isv_svn,
        report_data,
    })
}
