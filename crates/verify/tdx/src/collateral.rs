//! DCAP collateral: the Intel-signed TCB info, QE identity and CRLs that let a verifier judge a
//! quote, in the JSON layout the host's collateral cache serves (the dcap-qvl layout).
//!
//! Trust: none. The host may serve anything here; [`Collateral::from_json`] only decodes the
//! envelope (hex, PEM, DER). The TCB info and QE identity stay as the exact bytes Intel signed
//! and are parsed by [`TcbInfo::parse`] / [`QeIdentity::parse`] only after `verify` has checked
//! their signatures.

use serde::Deserialize;
use sotto_verify_core::at_most;
use sotto_verify_core::crl::Crl;
use sotto_verify_core::x509::Cert;

use crate::tcb::TcbStatus;
use crate::TdxError;

/// Largest collateral document accepted. Real ones are 16–25 KiB; TCB info grows by a few
/// hundred bytes per TCB recovery, so 1 MiB leaves decades of headroom while bounding work.
pub const MAX_COLLATERAL_LEN: usize = 1024 * 1024;

/// The collateral for one platform (FMSPC), decoded but not yet verified.
#[derive(Clone, Debug)]
pub struct Collateral {
    pub(crate) root_ca_crl: Crl,
    pub(crate) pck_crl: Crl,
    pub(crate) tcb_info: SignedJson,
    pub(crate) qe_identity: SignedJson,
}

/// A collateral document as Intel signed it: the exact JSON bytes, the raw P-256 signature over
/// them and the chain of the certificate that made it.
#[derive(Clone, Debug)]
pub(crate) struct SignedJson {
    pub(crate) chain: Vec<Cert>,
    pub(crate) json: String,
    pub(crate) signature: [u8; 64],
}

/// The validity fields every signed collateral document carries, read from its JSON beside the
/// document's own type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Issuance {
    pub(crate) issue_date: String,
    pub(crate) next_update: String,
    pub(crate) tcb_evaluation_data_number: u32,
}

/// The JSON envelope. `pck_crl_issuer_chain` (and `pck_certificate_chain` where present) are
/// accepted but unused: the quote itself carries the PCK chain, whose intermediate is the PCK
/// CRL's issuer, so those copies add nothing a verifier could trust more.
#[derive(Deserialize)]
struct RawCollateral {
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
}

impl Collateral {
    pub fn from_json(bytes: &[u8]) -> Result<Collateral, TdxError> {
        at_most(bytes.len(), MAX_COLLATERAL_LEN, |len, max| {
            TdxError::CollateralTooLarge { len, max }
        })?;
        let raw: RawCollateral = serde_json::from_slice(bytes)
            .map_err(|e| TdxError::CollateralParse(format!("envelope: {e}")))?;
        let crl = |name: &str, hex_der: &str| {
            let der = hex::decode(hex_der)
                .map_err(|e| TdxError::CollateralParse(format!("{name}: hex: {e}")))?;
            Crl::from_der(&der).map_err(|e| TdxError::CollateralParse(format!("{name}: {e}")))
        };
        Ok(Collateral {
            root_ca_crl: crl("root_ca_crl", &raw.root_ca_crl)?,
            pck_crl: crl("pck_crl", &raw.pck_crl)?,
            tcb_info: SignedJson::decode(
                "tcb_info",
                &raw.tcb_info_issuer_chain,
                raw.tcb_info,
                &raw.tcb_info_signature,
            )?,
            qe_identity: SignedJson::decode(
                "qe_identity",
                &raw.qe_identity_issuer_chain,
                raw.qe_identity,
                &raw.qe_identity_signature,
            )?,
        })
    }
}

impl SignedJson {
    /// Decodes the envelope's `{name}_issuer_chain` (PEM) and `{name}_signature` (hex) beside
    /// the document `{name}` itself.
    fn decode(name: &str, chain_pem: &str, json: String, hex_sig: &str) -> Result<Self, TdxError> {
        let chain = Cert::from_pem_chain(chain_pem.as_bytes())
            .map_err(|e| TdxError::CollateralParse(format!("{name}_issuer_chain: {e}")))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(hex_sig, &mut signature).map_err(|e| {
            TdxError::CollateralParse(format!("{name}_signature: expected 64 bytes hex: {e}"))
        })?;
        Ok(SignedJson {
            chain,
            json,
            signature,
        })
    }
}

/// Intel's TCB info for TDX (`id` "TDX", version 3).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcbInfo {
    pub id: String,
    pub version: u32,
    pub issue_date: String,
    pub next_update: String,
    pub fmspc: String,
    pub pce_id: String,
    pub tcb_evaluation_data_number: u32,
    pub tdx_module: Option<TdxModule>,
    #[serde(default)]
    pub tdx_module_identities: Vec<TdxModuleIdentity>,
    pub tcb_levels: Vec<TcbLevel>,
}

/// Identity of the TDX 1.0 module (used when TEE_TCB_SVN's major version byte is 0).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TdxModule {
    pub mrsigner: String,
    pub attributes: String,
    pub attributes_mask: String,
}

/// Identity and TCB levels of one TDX module major version (`id` "TDX_<major as 2 hex>").
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TdxModuleIdentity {
    pub id: String,
    pub mrsigner: String,
    pub attributes: String,
    pub attributes_mask: String,
    pub tcb_levels: Vec<IsvTcbLevel>,
}

/// A TCB level keyed by one ISV SVN (QE identity levels and TDX module levels).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IsvTcbLevel {
    pub tcb: IsvSvn,
    pub tcb_date: String,
    pub tcb_status: TcbStatus,
    #[serde(default, rename = "advisoryIDs")]
    pub advisory_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct IsvSvn {
    pub isvsvn: u16,
}

/// A platform TCB level: SGX components and PCESVN (from the PCK certificate) and TDX
/// components (from TEE_TCB_SVN).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcbLevel {
    pub tcb: PlatformTcb,
    pub tcb_date: String,
    pub tcb_status: TcbStatus,
    #[serde(default, rename = "advisoryIDs")]
    pub advisory_ids: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PlatformTcb {
    pub sgxtcbcomponents: Vec<TcbComponent>,
    pub pcesvn: u16,
    pub tdxtcbcomponents: Vec<TcbComponent>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TcbComponent {
    pub svn: u16,
}

impl TcbInfo {
    /// Parses the TCB info JSON (the exact signed bytes).
    pub fn parse(json: &[u8]) -> Result<TcbInfo, TdxError> {
        let info: TcbInfo = document(json, "tcb_info")?;
        expect_identity("tcb_info", (&info.id, info.version), ("TDX", 3))?;
        for level in &info.tcb_levels {
            if level.tcb.sgxtcbcomponents.len() != 16 || level.tcb.tdxtcbcomponents.len() != 16 {
                return Err(TdxError::CollateralParse(
                    "tcb_info level without 16 SGX and 16 TDX components".into(),
                ));
            }
        }
        Ok(info)
    }
}

/// Intel's identity of the TD Quoting Enclave (`id` "TD_QE", version 2).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QeIdentity {
    pub id: String,
    pub version: u32,
    pub issue_date: String,
    pub next_update: String,
    pub tcb_evaluation_data_number: u32,
    pub miscselect: String,
    pub miscselect_mask: String,
    pub attributes: String,
    pub attributes_mask: String,
    pub mrsigner: String,
    pub isvprodid: u16,
    pub tcb_levels: Vec<IsvTcbLevel>,
}

impl QeIdentity {
    /// Parses the QE identity JSON (the exact signed bytes).
    pub fn parse(json: &[u8]) -> Result<QeIdentity, TdxError> {
        let id: QeIdentity = document(json, "qe_identity")?;
        expect_identity("qe_identity", (&id.id, id.version), ("TD_QE", 2))?;
        Ok(id)
    }
}

impl Issuance {
    /// Reads the validity fields of the signed collateral document `name`.
    pub(crate) fn parse(json: &[u8], name: &str) -> Result<Issuance, TdxError> {
        document(json, name)
    }
}

/// The signed collateral document `name`, as JSON.
fn document<T: serde::de::DeserializeOwned>(json: &[u8], name: &str) -> Result<T, TdxError> {
    serde_json::from_slice(json).map_err(|e| TdxError::CollateralParse(format!("{name}: {e}")))
}

/// Refuses a document `name` whose `id` and version are not the ones this verifier reads.
fn expect_identity(name: &str, found: (&str, u32), expected: (&str, u32)) -> Result<(), TdxError> {
    if found == expected {
        return Ok(());
    }
    let ((id, version), (want_id, want_version)) = (found, expected);
    Err(TdxError::CollateralParse(format!(
        "{name} is '{id}' version {version}, expected {want_id} version {want_version}"
    )))
}

/// Decodes a fixed-size hex field of a signed collateral document.
pub(crate) fn hex_field<const N: usize>(name: &str, s: &str) -> Result<[u8; N], TdxError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out)
        .map_err(|e| TdxError::CollateralParse(format!("{name}: expected {N} bytes hex: {e}")))?;
    Ok(out)
}

/// Parses the `YYYY-MM-DDTHH:MM:SSZ` timestamps Intel uses into Unix seconds.
pub fn parse_utc(s: &str) -> Result<u64, TdxError> {
    let bad = || TdxError::CollateralParse(format!("timestamp '{s}' is not YYYY-MM-DDTHH:MM:SSZ"));
    let b = s.as_bytes();
    if b.len() != 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || b.get(10) != Some(&b'T')
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b'Z')
    {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<u64, TdxError> {
        let part = s.get(from..to).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<u64>().map_err(|_| bad())
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = usize::try_from(month)
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| month_days.get(i))
        .ok_or_else(bad)?;
    if year < 1970 || day == 0 || day > *max_day || hour > 23 || min > 59 || sec > 59 {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), for
/// years >= 1970 as checked by the caller.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intel_timestamps() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z").ok(), Some(0));
        assert_eq!(parse_utc("2025-06-20T00:00:00Z").ok(), Some(1_750_377_600));
        assert_eq!(parse_utc("2024-02-29T12:34:56Z").ok(), Some(1_709_210_096));
        assert!(parse_utc("2025-02-29T00:00:00Z").is_err());
        assert!(parse_utc("2025-06-20T00:00:00").is_err());
        assert!(parse_utc("2025-06-20 00:00:00Z").is_err());
        assert!(parse_utc("+025-06-20T00:00:00Z").is_err());
    }
}
