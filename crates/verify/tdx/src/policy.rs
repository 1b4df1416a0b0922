//! What a relying party requires of a verified TD beyond Intel's signatures ([`TdxPolicy`]),
//! and what a successful verification reports ([`TdxVerdict`]).
//!
//! Trust: the policy is the relying party's own configuration (e.g. a JSON file it ships);
//! the verdict is built only from checked evidence.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
///   "expected_mrtd": "<96 hex chars>",
///   "expected_rtmrs": [null, "<96 hex chars>", null, null],
///   "expected_mrconfigid": null,
///   "expected_report_data": "<128 hex chars>"
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TdxPolicy {
    /// TCB statuses accepted. `Revoked` is refused whatever this says.
    pub accepted_tcb_statuses: Vec<TcbStatus>,
    /// Accept a TD whose TUD.DEBUG attribute is set (its memory is open to the host).
    pub allow_debug: bool,
    #[serde(deserialize_with = "de_opt_hex")]
    pub expected_mrtd: Option<[u8; 48]>,
    #[serde(deserialize_with = "de_rtmrs")]
    pub expected_rtmrs: [Option<[u8; 48]>; 4],
    #[serde(deserialize_with = "de_opt_hex")]
    pub expected_mrconfigid: Option<[u8; 48]>,
    #[serde(deserialize_with = "de_opt_hex")]
    pub expected_report_data: Option<[u8; 64]>,
}

impl TdxPolicy {
    /// Only `UpToDate`, no debug, no measurement expectations: the caller adds those.
    pub fn strict() -> Self {
        TdxPolicy {
            accepted_tcb_statuses: vec![TcbStatus::UpToDate],
            allow_debug: false,
            expected_mrtd: None,
            expected_rtmrs: [None; 4],
            expected_mrconfigid: None,
            expected_report_data: None,
        }
    }

    /// Accepts every status except `Revoked` (reported in the verdict for the caller to
    /// weigh); still no debug.
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

fn de_rtmrs<'de, D: Deserializer<'de>>(d: D) -> Result<[Option<[u8; 48]>; 4], D::Error> {
    let raw = <[Option<String>; 4]>::deserialize(d)?;
    let mut out = [None; 4];
    for (slot, s) in out.iter_mut().zip(raw) {
        *slot = s.map(|s| parse_hex(&s)).transpose()?;
    }
    Ok(out)
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
    /// The checks that passed, in order.
    pub checks: Vec<&'static str>,
}
