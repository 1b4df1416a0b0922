//! Parser for the NVIDIA GPU attestation report: an SPDM 1.1 `GET_MEASUREMENTS` request
//! followed by the GPU's signed `MEASUREMENTS` response, exactly as the driver returns it.
//!
//! Trust: none. The bytes come from the untrusted host. This module only proves that they are
//! well formed (every length bounds-checked, nothing after the signature but at most
//! [`MAX_TRAILING_ZERO_PADDING`] zero bytes, no duplicate indices or opaque fields) and exposes
//! the fields; whether the GPU really signed them is decided in `verify`.

use sha2::{Digest, Sha256};
use sotto_verify_core::at_most;

/// Largest report accepted. A Hopper report is about 4 KiB (64 blocks of SHA-384 plus ~400
/// bytes of opaque data); this leaves room for larger digests and newer opaque fields while
/// keeping a hostile input from costing more than a few pages of memory.
pub const MAX_REPORT_LEN: usize = 128 * 1024;

/// SPDM 1.1, the only version NVIDIA's Hopper GSP speaks for attestation.
pub const SPDM_VERSION_1_1: u8 = 0x11;
/// `GET_MEASUREMENTS` request code.
pub const GET_MEASUREMENTS: u8 = 0xE0;
/// `MEASUREMENTS` response code.
pub const MEASUREMENTS: u8 = 0x60;
/// Request length: version, code, param1, param2, 32-byte nonce, slot id.
pub const REQUEST_LEN: usize = 37;
/// ECDSA P-384 signature, raw `r || s`.
pub const SIGNATURE_LEN: usize = 96;
/// Most zero bytes accepted after the signature. A genuine Hopper report captured through
/// Confidential Containers carries one (its buffer is handed over with a zero byte after the
/// response), and NVIDIA's and CoCo's verifiers ignore it. The bound is one 64-bit word: more
/// than any alignment of the driver's buffer adds. The padding is outside the signed bytes
/// and the signature (both located by the response's own lengths), so it changes nothing
/// that is verified; a non-zero byte there is refused.
pub const MAX_TRAILING_ZERO_PADDING: usize = 8;
/// DMTF measurement specification (bit 0 of MeasurementSpecification).
const DMTF_SPEC: u8 = 0x01;
/// Request param1 bit 0: the requester asked for a signature.
const PARAM1_SIGNATURE_REQUESTED: u8 = 0x01;
/// Request param2 0xFF: all measurement blocks.
const ALL_MEASUREMENTS: u8 = 0xFF;

/// NVIDIA opaque-data field types (little-endian u16 tags) this crate interprets.
pub mod field {
    pub const DRIVER_VERSION: u16 = 3;
    pub const GPU_INFO: u16 = 4;
    pub const VBIOS_VERSION: u16 = 6;
    pub const NVDEC0_STATUS: u16 = 11;
    pub const MSRSCNT: u16 = 12;
    pub const BOARD_ID: u16 = 14;
    pub const CHIP_SKU: u16 = 15;
    pub const CHIP_SKU_MOD: u16 = 16;
    pub const PROJECT: u16 = 17;
    pub const PROJECT_SKU: u16 = 18;
    pub const PROJECT_SKU_MOD: u16 = 19;
    pub const FWID: u16 = 20;
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    pub const SWITCH_PDI: u16 = 22;
    pub const FEATURE_FLAG: u16 = 36;
}

/// Why a report was refused as malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdmError {
    #[error("report is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("report ends inside {field} (needs {needed} bytes at offset {offset}, has {len})")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
        len: usize,
    },
    #[error("{count} unexpected bytes after the signature (not all zero)")]
    TrailingBytes { count: usize },
    #[error("{count} zero bytes after the signature, more than the {max} of padding accepted")]
    TrailingPaddingTooLong { count: usize, max: usize },
    #[error("hex input is malformed: {0}")]
    Hex(String),
    #[error("{message} has SPDM version {found:#04x}, only 1.1 (0x11) is accepted")]
    WrongVersion { message: &'static str, found: u8 },
    #[error("request code is {found:#04x}, expected GET_MEASUREMENTS (0xE0)")]
    WrongRequestCode { found: u8 },
    #[error("response code is {found:#04x}, expected MEASUREMENTS (0x60)")]
    WrongResponseCode { found: u8 },
    #[error("request param1 {param1:#04x} does not ask for a signature")]
    SignatureNotRequested { param1: u8 },
    #[error("request param2 {param2:#04x} does not ask for all measurement blocks (0xFF)")]
    NotAllMeasurements { param2: u8 },
    #[error("response slot {response} differs from requested slot {request}")]
    SlotMismatch { request: u8, response: u8 },
    #[error("response holds no measurement blocks")]
    NoMeasurementBlocks,
    #[error("response declares {declared} measurement blocks but the record holds {found}")]
    BlockCountMismatch { declared: u8, found: usize },
    #[error("measurement block index {index} is invalid or repeated")]
    BadBlockIndex { index: u8 },
    #[error("measurement block {index} uses specification {spec:#04x}, not DMTF")]
    NotDmtf { index: u8, spec: u8 },
    #[error("measurement block {index} size {block} does not match its DMTF value size {value}")]
    DmtfSizeMismatch {
        index: u8,
        block: usize,
        value: usize,
    },
    #[error("opaque field at offset {offset} overruns the opaque data")]
    OpaqueTruncated { offset: usize },
    #[error("opaque field type {field_type} appears twice")]
    DuplicateOpaqueField { field_type: u16 },
    #[error("opaque field type {field_type} is malformed: {reason}")]
    OpaqueFieldInvalid {
        field_type: u16,
        reason: &'static str,
    },
}

/// One DMTF measurement block of the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// SPDM block index (1-based; NVIDIA's RIM index is this minus one).
    pub index: u8,
    /// DMTFSpecMeasurementValueType (bit 7: raw bit stream rather than digest).
    pub value_type: u8,
    pub value: Vec<u8>,
}

/// One TLV of NVIDIA's opaque data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpaqueField {
    pub field_type: u16,
    pub value: Vec<u8>,
}

/// A parsed, structurally valid attestation report (not yet authenticated).
#[derive(Debug, Clone)]
pub struct SpdmEvidence {
    raw: Vec<u8>,
    /// Length of `request || response`, signature included: where the padding starts.
    end: usize,
    pub request_param1: u8,
    pub request_param2: u8,
    pub request_nonce: [u8; 32],
    pub slot_id: u8,
    pub response_param1: u8,
    pub response_param2: u8,
    pub blocks: Vec<MeasurementBlock>,
    pub responder_nonce: [u8; 32],
    pub opaque: Vec<OpaqueField>,
    pub signature: [u8; SIGNATURE_LEN],
}

/// A bounds-checked reader over the report bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SpdmError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.bytes.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(SpdmError::Truncated {
                field,
                offset: self.pos,
                needed: n,
                len: self.bytes.len(),
            }),
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SpdmError> {
        let b = self.take(1, field)?;
        Ok(b.first().copied().unwrap_or_default())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SpdmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn le(&mut self, n: usize, field: &'static str) -> Result<usize, SpdmError> {
        Ok(self
            .take(n, field)?
            .iter()
            .rev()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The header every SPDM message starts with: SPDMVersion (1.1 here), the request or
    /// response code (`code`, else `wrong_code`), param1 and param2, which it returns. `fields`
    /// names the four bytes for a truncation error.
    fn header(
        &mut self,
        message: &'static str,
        fields: [&'static str; 4],
        code: u8,
        wrong_code: fn(u8) -> SpdmError,
    ) -> Result<[u8; 2], SpdmError> {
        let version = self.u8(fields[0])?;
        if version != SPDM_VERSION_1_1 {
            return Err(SpdmError::WrongVersion {
                message,
                found: version,
            });
        }
        let found = self.u8(fields[1])?;
        if found != code {
            return Err(wrong_code(found));
        }
        Ok([self.u8(fields[2])?, self.u8(fields[3])?])
    }
}

fn too_large(len: usize, max: usize) -> SpdmError {
    SpdmError::TooLarge { len, max }
}

impl SpdmEvidence {
    /// Parses `request || response` as the NVIDIA driver returns it.
    pub fn parse(bytes: &[u8]) -> Result<Self, SpdmError> {
        at_most(bytes.len(), MAX_REPORT_LEN, too_large)?;
        let mut r = Reader { bytes, pos: 0 };

        let [request_param1, request_param2] = r.header(
            "request",
            [
                "request SPDMVersion",
                "request code",
                "request param1",
                "request param2",
            ],
            GET_MEASUREMENTS,
            |found| SpdmError::WrongRequestCode { found },
        )?;
        let request_nonce = r.array::<32>("request nonce")?;
        let slot_id = r.u8("request slot id")?;
        if request_param1 & PARAM1_SIGNATURE_REQUESTED == 0 {
            return Err(SpdmError::SignatureNotRequested {
                param1: request_param1,
            });
        }
        if request_param2 != ALL_MEASUREMENTS {
            return Err(SpdmError::NotAllMeasurements {
                param2: request_param2,
            });
        }

        let [response_param1, response_param2] = r.header(
            "response",
            [
                "response SPDMVersion",
                "response code",
                "response param1",
                "response param2",
            ],
            MEASUREMENTS,
            |found| SpdmError::WrongResponseCode { found },
        )?;
        // SPDM 1.1: param2 bits 0..3 carry the slot of the key that signed.
        if response_param2 & 0x0F != slot_id & 0x0F {
            return Err(SpdmError::SlotMismatch {
                request: slot_id,
                response: response_param2,
            });
        }
        let declared_blocks = r.u8("NumberOfBlocks")?;
        let record_len = r.le(3, "MeasurementRecordLength")?;
        let record = r.take(record_len, "measurement record")?;
        let blocks = parse_record(record, declared_blocks)?;
        let responder_nonce = r.array::<32>("responder nonce")?;
        let opaque_len = r.le(2, "OpaqueLength")?;
        let opaque = parse_opaque(r.take(opaque_len, "opaque data")?)?;
        let signature = r.array::<SIGNATURE_LEN>("signature")?;
        let end = r.pos;
        let padding = bytes.get(end..).unwrap_or_default();
        if padding.iter().any(|&b| b != 0) {
            return Err(SpdmError::TrailingBytes {
                count: padding.len(),
            });
        }
        if padding.len() > MAX_TRAILING_ZERO_PADDING {
            return Err(SpdmError::TrailingPaddingTooLong {
                count: padding.len(),
                max: MAX_TRAILING_ZERO_PADDING,
            });
        }

        Ok(SpdmEvidence {
            raw: bytes.to_vec(),
            end,
            request_param1,
            request_param2,
            request_nonce,
            slot_id,
            response_param1,
            response_param2,
            blocks,
            responder_nonce,
            opaque,
            signature,
        })
    }

    /// Parses the hex text form (as NVIDIA's tools write it); surrounding whitespace is ignored.
    pub fn parse_hex(text: &str) -> Result<Self, SpdmError> {
        Self::parse(&decode_report_hex(text)?)
    }

    /// The exact bytes parsed: `request || response`, and the zero padding after it if any
    /// (the bytes as presented, which [`crate::gpu_evidence_digest`] commits to).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// `request || response`, signature included, without trailing padding.
    pub fn unpadded(&self) -> &[u8] {
        self.raw.get(..self.end).unwrap_or_default()
    }

    /// How many unsigned zero bytes followed the signature (at most
    /// [`MAX_TRAILING_ZERO_PADDING`]).
    pub fn trailing_padding(&self) -> usize {
        self.raw.len().saturating_sub(self.end)
    }

    /// The bytes the GPU signed: the request and the response up to (not including) the
    /// signature. Located by the response's lengths, so trailing padding is never part of it.
    pub fn signed_bytes(&self) -> &[u8] {
        let end = self.end.saturating_sub(SIGNATURE_LEN);
        self.raw.get(..end).unwrap_or_default()
    }

    /// SHA-256 of the raw report, padding included.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.raw).into()
    }

    pub fn block(&self, index: u8) -> Option<&MeasurementBlock> {
        self.blocks.iter().find(|b| b.index == index)
    }

    /// The raw value of an opaque field, if the GPU sent it.
    pub fn opaque_field(&self, field_type: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|f| f.field_type == field_type)
            .map(|f| f.value.as_slice())
    }

    /// Driver version, e.g. `550.90.07`.
    pub fn driver_version(&self) -> Option<String> {
        self.opaque_field(field::DRIVER_VERSION).and_then(c_string)
    }

    /// VBIOS version in NVIDIA's dotted form, e.g. `96.00.9F.00.01`.
    pub fn vbios_version(&self) -> Option<String> {
        let v: [u8; 8] = self.opaque_field(field::VBIOS_VERSION)?.try_into().ok()?;
        // Two little-endian u32 words: the low word prints as four dotted bytes, the low byte
        // of the high word as the fifth (NVIDIA's own rendering).
        let low = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        let high = u32::from_le_bytes([v[4], v[5], v[6], v[7]]);
        let [a, b, c, d] = low.to_be_bytes();
        Some(format!(
            "{a:02X}.{b:02X}.{c:02X}.{d:02X}.{:02X}",
            high & 0xFF
        ))
    }

    pub fn chip_sku(&self) -> Option<String> {
        self.opaque_field(field::CHIP_SKU).and_then(c_string)
    }

    pub fn project(&self) -> Option<String> {
        self.opaque_field(field::PROJECT).and_then(c_string)
    }

    pub fn project_sku(&self) -> Option<String> {
        self.opaque_field(field::PROJECT_SKU).and_then(c_string)
    }

    /// The firmware identity digest the GSP reports (matches the leaf certificate's FWID).
    pub fn fwid(&self) -> Option<&[u8]> {
        self.opaque_field(field::FWID)
    }

    /// NVIDIA's multi-GPU confidential-computing feature flag (little-endian), when present.
    pub fn feature_flag(&self) -> Option<u64> {
        self.opaque_field(field::FEATURE_FLAG).map(le_u64)
    }

    /// NVDEC0 status byte (0xAA enabled, 0x55 disabled).
    pub fn nvdec0_status(&self) -> Option<u8> {
        self.opaque_field(field::NVDEC0_STATUS)
            .and_then(|v| v.first().copied())
    }
}

/// Decodes the hex text of a report, bounding the size before decoding.
pub fn decode_report_hex(text: &str) -> Result<Vec<u8>, SpdmError> {
    let text = text.trim();
    at_most(text.len() / 2, MAX_REPORT_LEN, too_large)?;
    hex::decode(text).map_err(|e| SpdmError::Hex(e.to_string()))
}

fn parse_record(record: &[u8], declared: u8) -> Result<Vec<MeasurementBlock>, SpdmError> {
    if declared == 0 {
        return Err(SpdmError::NoMeasurementBlocks);
    }
    let mut r = Reader {
        bytes: record,
        pos: 0,
    };
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(declared));
    while r.remaining() > 0 {
        let index = r.u8("measurement block index")?;
        if index == 0 || index == 0xFF || blocks.iter().any(|b| b.index == index) {
            return Err(SpdmError::BadBlockIndex { index });
        }
        let spec = r.u8("measurement specification")?;
        if spec != DMTF_SPEC {
            return Err(SpdmError::NotDmtf { index, spec });
        }
        let size = r.le(2, "measurement size")?;
        let mut m = Reader {
            bytes: r.take(size, "measurement")?,
            pos: 0,
        };
        let value_type = m.u8("DMTF value type")?;
        let value_size = m.le(2, "DMTF value size")?;
        if value_size.checked_add(3) != Some(size) {
            return Err(SpdmError::DmtfSizeMismatch {
                index,
                block: size,
                value: value_size,
            });
        }
        let value = m.take(value_size, "DMTF value")?.to_vec();
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value,
        });
    }
    if blocks.len() != usize::from(declared) {
        return Err(SpdmError::BlockCountMismatch {
            declared,
            found: blocks.len(),
        });
    }
    Ok(blocks)
}

fn parse_opaque(data: &[u8]) -> Result<Vec<OpaqueField>, SpdmError> {
    let mut r = Reader {
        bytes: data,
        pos: 0,
    };
    let mut fields: Vec<OpaqueField> = Vec::new();
    while r.remaining() > 0 {
        let offset = r.pos;
        let truncated = |_| SpdmError::OpaqueTruncated { offset };
        let field_type = u16::try_from(r.le(2, "opaque type").map_err(truncated)?)
            .map_err(|_| SpdmError::OpaqueTruncated { offset })?;
        let size = r.le(2, "opaque size").map_err(truncated)?;
        let value = r.take(size, "opaque value").map_err(truncated)?;
        if fields.iter().any(|f| f.field_type == field_type) {
            return Err(SpdmError::DuplicateOpaqueField { field_type });
        }
        check_field(field_type, value)?;
        fields.push(OpaqueField {
            field_type,
            value: value.to_vec(),
        });
    }
    Ok(fields)
}

/// Shape checks for the fields whose meaning this crate relies on; other fields are kept raw
/// so that newer firmware with more fields still parses.
fn check_field(field_type: u16, value: &[u8]) -> Result<(), SpdmError> {
    let invalid = |reason| SpdmError::OpaqueFieldInvalid { field_type, reason };
    match field_type {
        field::DRIVER_VERSION
        | field::CHIP_SKU
        | field::CHIP_SKU_MOD
        | field::PROJECT
        | field::PROJECT_SKU
        | field::PROJECT_SKU_MOD
            if c_string(value).is_none() =>
        {
            return Err(invalid("not a printable ASCII string"))
        }
        field::VBIOS_VERSION if value.len() != 8 => return Err(invalid("must be 8 bytes")),
        field::NVDEC0_STATUS | field::PROTECTED_PCIE_STATUS if value.len() != 1 => {
            return Err(invalid("must be 1 byte"))
        }
        field::MSRSCNT if !value.len().is_multiple_of(4) => {
            return Err(invalid("length is not a multiple of 4"))
        }
        field::SWITCH_PDI if !value.len().is_multiple_of(8) => {
            return Err(invalid("length is not a multiple of 8"))
        }
        field::FWID if value.is_empty() || value.len() > 64 => {
            return Err(invalid("must be 1 to 64 bytes"))
        }
        field::FEATURE_FLAG if value.is_empty() || value.len() > 8 => {
            return Err(invalid("must be 1 to 8 bytes"))
        }
        _ => {}
    }
    Ok(())
}

/// A NUL-padded ASCII string; `None` when it holds anything but printable ASCII before the
/// padding (or NULs followed by more text).
fn c_string(value: &[u8]) -> Option<String> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    let (text, pad) = value.split_at(end);
    if pad.iter().any(|&b| b != 0) || !text.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return None;
    }
    String::from_utf8(text.to_vec()).ok()
}

fn le_u64(v: &[u8]) -> u64 {
    v.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}
