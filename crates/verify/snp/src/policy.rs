//! What a verifier requires of a genuine report beyond its signature: guest policy, VMPL,
//! minimum TCB, expected measurements and bound data.
//!
//! Trust: a policy comes from the client's own configuration (code or a JSON file it ships
//! or the user wrote), never from the enclave or the host.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::TcbVersion;

/// The acceptance policy. [`Default`] is strict about the platform (no debug, no migration
/// agent) but accepts any measurement, VMPL and TCB: callers pin those for their release.
///
/// JSON form (all fields optional, byte strings in hex):
/// `{"allow_debug": false, "max_vmpl": 0, "minimum_tcb": {"bootloader": 3, "tee": 0,
/// "snp": 8, "microcode": 115}, "allowed_measurements": ["<96 hex>"],
/// "expected_report_data": "<128 hex>", "expected_host_data": "<64 hex>"}`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnpPolicy {
    /// Accept guests launched with the DEBUG policy bit (their memory is readable by the host).
    pub allow_debug: bool,
    /// Accept guests that allow a migration agent (it can export their state).
    pub allow_migration_agent: bool,
    /// Highest VMPL (least privilege) whose reports are accepted; `None` accepts any.
    pub max_vmpl: Option<u32>,
    /// Every component of the report's REPORTED_TCB must be at least this.
    pub minimum_tcb: Option<TcbVersion>,
    /// Launch measurements accepted; empty accepts any.
    #[serde(with = "hex_vec")]
    pub allowed_measurements: Vec<[u8; 48]>,
    /// REPORT_DATA must equal this exactly.
    #[serde(with = "hex_opt")]
    pub expected_report_data: Option<[u8; 64]>,
    /// HOST_DATA must equal this exactly.
    #[serde(with = "hex_opt")]
    pub expected_host_data: Option<[u8; 32]>,
}

fn hex_array<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let bytes = crate::parse_hex(text).map_err(|e| e.to_string())?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| format!("expected {N} bytes of hex, got {}", bytes.len()))
}

pub(crate) mod hex_opt {
    use super::*;

    pub fn serialize<const N: usize, S: Serializer>(
        value: &Option<[u8; N]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => s.serialize_some(&hex::encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, const N: usize, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; N]>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| hex_array(&text).map_err(de::Error::custom))
            .transpose()
    }
}

pub(crate) mod hex_vec {
    use super::*;

    pub fn serialize<const N: usize, S: Serializer>(
        value: &[[u8; N]],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(value.iter().map(hex::encode))
    }

    pub fn deserialize<'de, const N: usize, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<[u8; N]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| hex_array(text).map_err(de::Error::custom))
            .collect()
    }
}

/// Serializes a byte array as lowercase hex (for the verdict's JSON form).
pub(crate) fn ser_hex<const N: usize, S: Serializer>(
    bytes: &[u8; N],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}
