//! What a relying party requires of a verified TD beyond Intel's signatures ([`TdxPolicy`]),
//! and what a successful verification reports ([`TdxVerdict`]).
//!
//! Trust: the policy is the relying party's own configuration (e.g. a JSON file it ships);
//! the verdict is built only from checked evidence.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attributes;
use crate::quote::BodyKind;
use crate::tcb::TcbStatus;

/// Requirements applied after the quote and collateral have verified.
///
/// JSON form (every field optional; missing fields take the [`Default`], which is
/// [`TdxPolicy::strict`]):
///
/// ```json
/// {
///   "accepted_tcb_statuses": ["UpToDate", "SWHardeningNeeded"],
///   "allow_debug": false,
///   "td_attributes_required": "0x0000000010000000",
///   "td_attributes_forbidden": "0xffffffffeffffffe",
///   "minimum_tcb_evaluation_data_number": 17,
///   "expected_mrtd": "<96 hex chars>",
///   "expected_rtmrs": [null, "<96 hex chars>", null, null],
///   "expected_mrconfigid": null,
///   "expected_report_data": "<128 hex chars>"
/// }
/// ```
///
/// The attribute masks are 64-bit TDATTRIBUTES values (bit positions in
/// [`crate::attributes`]), written as a JSON number or a `0x`-prefixed hex string (a string
/// keeps bit 63 exact in JavaScript, whose numbers stop at 2^53).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TdxPolicy {
    /// TCB statuses accepted. `Revoked` is refused whatever this says.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// Accept a TD whose TUD.DEBUG attribute is set (its memory is open to the host).
    pub allow_debug: bool,
    /// TDATTRIBUTES bits that must all be set. Strict default: SEPT_VE_DISABLE (bit 28),
    /// which every real quote in the test vectors carries.
    #[serde(serialize_with = "ser_mask", deserialize_with = "de_mask")]
    pub td_attributes_required: u64,
    /// TDATTRIBUTES bits that must all be clear. Strict default: every bit except DEBUG
    /// (governed by `allow_debug`; put bit 0 here to refuse debug TDs whatever it says) and
    /// SEPT_VE_DISABLE, so MIGRATABLE, PKS, KL, PERFMON, TPA, the host profiling bits, LASS,
    /// ICSSD and every reserved bit are refused. A release whose TD runs with one of them
    /// clears that bit from this mask.
    #[serde(serialize_with = "ser_mask", deserialize_with = "de_mask")]
    pub td_attributes_forbidden: u64,
    /// Refuse TCB info and QE identity whose `tcbEvaluationDataNumber` is below this: Intel
    /// keeps signing fresh copies of older evaluation data, in which a platform that missed a
    /// later TCB recovery may still look up to date. Strict default: 17, the oldest number in
    /// the real collateral of the test vectors (17, 18 and 20); releases raise it.
    pub minimum_tcb_evaluation_data_number: Option<u32>,
    #[serde(serialize_with = "ser_opt_hex", deserialize_with = "de_opt_hex")]
    pub expected_mrtd: Option<[u8; 48]>,
    #[serde(serialize_with = "ser_opt_rtmrs", deserialize_with = "de_rtmrs")]
    pub expected_rtmrs: [Option<[u8; 48]>; 4],
    #[serde(serialize_with = "ser_opt_hex", deserialize_with = "de_opt_hex")]
    pub expected_mrconfigid: Option<[u8; 48]>,
    #[serde(serialize_with = "ser_opt_hex", deserialize_with = "de_opt_hex")]
    pub expected_report_data: Option<[u8; 64]>,
}

impl TdxPolicy {
    /// TDATTRIBUTES bits [`TdxPolicy::strict`] requires: SEPT_VE_DISABLE.
    pub const STRICT_TD_ATTRIBUTES_REQUIRED: u64 = attributes::SEPT_VE_DISABLE;
    /// TDATTRIBUTES bits [`TdxPolicy::strict`] forbids: all but DEBUG and SEPT_VE_DISABLE.
    pub const STRICT_TD_ATTRIBUTES_FORBIDDEN: u64 =
        !(attributes::DEBUG | attributes::SEPT_VE_DISABLE);
    /// The `tcbEvaluationDataNumber` floor of [`TdxPolicy::strict`].
    pub const STRICT_MINIMUM_TCB_EVALUATION_DATA_NUMBER: u32 = 17;

    /// Only `UpToDate`, no debug, SEPT_VE_DISABLE set and no other TD attribute, collateral
    /// from evaluation data number 17 on, no measurement expectations: the caller adds those.
    pub fn strict() -> Self {
        TdxPolicy {
            accepted_tcb_statuses: vec![TcbStatus::UpToDate],
            allow_debug: false,
            td_attributes_required: Self::STRICT_TD_ATTRIBUTES_REQUIRED,
            td_attributes_forbidden: Self::STRICT_TD_ATTRIBUTES_FORBIDDEN,
            minimum_tcb_evaluation_data_number: Some(
                Self::STRICT_MINIMUM_TCB_EVALUATION_DATA_NUMBER,
            ),
            expected_mrtd: None,
            expected_rtmrs: [None; 4],
            expected_mrconfigid: None,
            expected_report_data: None,
        }
    }

    /// Accepts every status except `Revoked` (reported in the verdict for the caller to
    /// weigh); still no debug, and the same TD attributes and evaluation floor as
    /// [`TdxPolicy::strict`].
    pub fn permissive() -> Self {
        use TcbStatus::*;
        TdxPolicy {
            accepted_tcb_statuses: vec![
                UpToDate,
                SWHardeningNeeded,
                ConfigurationNeeded,
                ConfigurationAndSWHardeningNeeded,
                OutOfDate,
                OutOfDateConfigurationNeeded,
            ],
            ..Self::strict()
        }
    }
}

impl Default for TdxPolicy {
    fn default() -> Self {
        Self::strict()
    }
}

fn parse_hex<const N: usize, E: serde::de::Error>(s: &str) -> Result<[u8; N], E> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|e| E::custom(format!("expected {} hex characters: {e}", 2 * N)))?;
    Ok(out)
}

fn de_opt_hex<'de, D: Deserializer<'de>, const N: usize>(
    d: D,
) -> Result<Option<[u8; N]>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_hex(&s))
        .transpose()
}

fn de_mask<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Mask {
        Number(u64),
        Hex(String),
    }
    match Mask::deserialize(d)? {
        Mask::Number(n) => Ok(n),
        Mask::Hex(s) => s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .filter(|h| (1..=16).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "expected a TD attribute mask as a number or \"0x\" and 1 to 16 hex digits, got {s:?}"
                ))
            }),
    }
}

fn de_rtmrs<'de, D: Deserializer<'de>>(d: D) -> Result<[Option<[u8; 48]>; 4], D::Error> {
    let raw = <[Option<String>; 4]>::deserialize(d)?;
    let mut out = [None; 4];
    for (slot, s) in out.iter_mut().zip(raw) {
        *slot = s.map(|s| parse_hex(&s)).transpose()?;
    }
    Ok(out)
}

/// A TD attribute mask as `"0x"` and 16 hex digits, which JavaScript reads without rounding.
fn ser_mask<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#018x}"))
}

fn ser_opt_hex<S: Serializer, const N: usize>(
    v: &Option<[u8; N]>,
    s: S,
) -> Result<S::Ok, S::Error> {
    v.as_ref().map(hex::encode).serialize(s)
}

fn ser_opt_rtmrs<S: Serializer>(v: &[Option<[u8; 48]>; 4], s: S) -> Result<S::Ok, S::Error> {
    v.iter()
        .map(|r| r.as_ref().map(hex::encode))
        .collect::<Vec<_>>()
        .serialize(s)
}

fn ser_hex<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

fn ser_hex_rtmrs<S: Serializer>(v: &[[u8; 48]; 4], s: S) -> Result<S::Ok, S::Error> {
    v.iter().map(hex::encode).collect::<Vec<_>>().serialize(s)
}

/// What a successful verification established. Byte fields serialize as lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TdxVerdict {
    pub quote_version: u16,
    /// Always "TDX" (0x81): SGX quotes are refused.
    pub tee_type: &'static str,
    pub body: BodyKind,
    pub tcb_status: TcbStatus,
    pub advisory_ids: Vec<String>,
    #[serde(serialize_with = "ser_hex")]
    pub fmspc: [u8; 6],
    #[serde(serialize_with = "ser_hex")]
    pub tee_tcb_svn: [u8; 16],
    /// TDATTRIBUTES as the report stores it (8 bytes, little-endian; bit names in
    /// [`crate::attributes`]).
    #[serde(serialize_with = "ser_hex")]
    pub td_attributes: [u8; 8],
    #[serde(serialize_with = "ser_hex")]
    pub mrtd: [u8; 48],
    #[serde(serialize_with = "ser_hex_rtmrs")]
    pub rtmrs: [[u8; 48]; 4],
    #[serde(serialize_with = "ser_hex")]
    pub mrconfigid: [u8; 48],
    #[serde(serialize_with = "ser_hex")]
    pub report_data: [u8; 64],
    /// `tcbEvaluationDataNumber` of the TCB info the platform was judged by.
    pub tcb_info_evaluation_data_number: u32,
    /// `tcbEvaluationDataNumber` of the QE identity the Quoting Enclave was judged by.
    pub qe_identity_evaluation_data_number: u32,
    /// The checks that passed, in order.
    pub checks: Vec<&'static str>,
}
