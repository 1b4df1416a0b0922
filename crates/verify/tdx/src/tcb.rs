//! TCB status evaluation: which level of Intel's (already verified) TCB info the platform,
//! the TDX module and the Quoting Enclave reach, and the status they converge to. Follows the
//! TDX evaluation in Intel's Quote Verification Library (appendix "tdxEvaluateTCB"): SGX
//! components and PCESVN from the PCK certificate, TDX components from TEE_TCB_SVN (from index 2
//! when the module's major version byte is non-zero, the module itself being judged by its own
//! identity), then the TDX module's and QE's levels, each able to worsen the result.
//!
//! Trust: inputs have been authenticated by the caller (PCK extension under the Intel root,
//! TCB info and QE identity under Intel's TCB signing key, the TD report under the QE).

use serde::{Deserialize, Serialize};

use crate::collateral::{hex_field, IsvTcbLevel, QeIdentity, TcbInfo};
use crate::pck::PckPlatform;
use crate::quote::{EnclaveReport, TdReport};
use crate::TdxError;

/// A TCB status as Intel's collateral names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    Revoked,
}

impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The evaluated TCB of one quote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcbOutcome {
    pub status: TcbStatus,
    /// Platform advisories, then the QE's, then the TDX module's (Intel's order).
    pub advisory_ids: Vec<String>,
}

/// Status of the QE and the TDX module may only worsen the platform's: an out-of-date
/// component turns "up to date" into "out of date" (keeping a configuration-needed flag), and a
/// revoked one revokes everything.
fn converge(platform: TcbStatus, components: &[TcbStatus]) -> TcbStatus {
    use TcbStatus::*;
    if components.contains(&Revoked) {
        return Revoked;
    }
    if components.contains(&OutOfDate) {
        return match platform {
            UpToDate | SWHardeningNeeded => OutOfDate,
            ConfigurationNeeded | ConfigurationAndSWHardeningNeeded => OutOfDateConfigurationNeeded,
            other => other,
        };
    }
    platform
}

fn all_at_least(have: &[u16], need: impl Iterator<Item = u16>) -> bool {
    have.iter().zip(need).all(|(h, n)| *h >= n)
}

/// First level (Intel lists them newest first) whose ISV SVN the given SVN reaches.
fn isv_level(levels: &[IsvTcbLevel], isv_svn: u16) -> Option<&IsvTcbLevel> {
    levels.iter().find(|l| isv_svn >= l.tcb.isvsvn)
}

/// Checks the QE report against the QE identity and returns the QE's TCB level.
pub fn check_qe_identity<'a>(
    identity: &'a QeIdentity,
    qe: &EnclaveReport,
) -> Result<&'a IsvTcbLevel, TdxError> {
    let mismatch = |field: &'static str| TdxError::QeIdentityMismatch { field };
    let mrsigner: [u8; 32] = hex_field("qe_identity mrsigner", &identity.mrsigner)?;
    if qe.mr_signer != mrsigner {
        return Err(mismatch("MRSIGNER"));
    }
    if qe.isv_prod_id != identity.isvprodid {
        return Err(mismatch("ISVPRODID"));
    }
    let misc: [u8; 4] = hex_field("qe_identity miscselect", &identity.miscselect)?;
    let misc_mask: [u8; 4] = hex_field("qe_identity miscselectMask", &identity.miscselect_mask)?;
    // The JSON writes MISCSELECT as a big-endian hex number; the report stores it little-endian.
    let (misc, misc_mask) = (u32::from_be_bytes(misc), u32::from_be_bytes(misc_mask));
    if qe.misc_select & misc_mask != misc & misc_mask {
        return Err(mismatch("MISCSELECT"));
    }
    let attrs: [u8; 16] = hex_field("qe_identity attributes", &identity.attributes)?;
    let attrs_mask: [u8; 16] = hex_field("qe_identity attributesMask", &identity.attributes_mask)?;
    if !masked_eq(&qe.attributes, &attrs, &attrs_mask) {
        return Err(mismatch("ATTRIBUTES"));
    }
    isv_level(&identity.tcb_levels, qe.isv_svn).ok_or(TdxError::QeTcbLevelNotFound {
        isv_svn: qe.isv_svn,
    })
}

/// Whether `have` and `want` agree on every bit `mask` sets.
fn masked_eq(have: &[u8], want: &[u8], mask: &[u8]) -> bool {
    have.iter()
        .zip(want.iter().zip(mask))
        .all(|(have, (want, mask))| have & mask == want & mask)
}

/// Checks the TDX module's signer and attributes against the TCB info and returns its TCB
/// level, if the TCB info judges the module separately (major version > 0).
fn check_tdx_module<'a>(
    info: &'a TcbInfo,
    td: &TdReport,
) -> Result<Option<&'a IsvTcbLevel>, TdxError> {
    let [minor, major, ..] = td.tee_tcb_svn;
    let (mrsigner, attributes, mask, levels) = if major == 0 {
        let Some(module) = &info.tdx_module else {
            return Ok(None);
        };
        (
            &module.mrsigner,
            &module.attributes,
            &module.attributes_mask,
            None,
        )
    } else {
        let id = format!("TDX_{major:02X}");
        let identity = info
            .tdx_module_identities
            .iter()
            .find(|m| m.id.eq_ignore_ascii_case(&id))
            .ok_or(TdxError::TdxModuleIdentityNotFound { id })?;
        (
            &identity.mrsigner,
            &identity.attributes,
            &identity.attributes_mask,
            Some(&identity.tcb_levels),
        )
    };
    let mrsigner: [u8; 48] = hex_field("tdx module mrsigner", mrsigner)?;
    if td.mrsignerseam != mrsigner {
        return Err(TdxError::TdxModuleMismatch {
            field: "MRSIGNERSEAM",
        });
    }
    let attributes: [u8; 8] = hex_field("tdx module attributes", attributes)?;
    let mask: [u8; 8] = hex_field("tdx module attributesMask", mask)?;
    if !masked_eq(&td.seam_attributes, &attributes, &mask) {
        return Err(TdxError::TdxModuleMismatch {
            field: "SEAMATTRIBUTES",
        });
    }
    match levels {
        None => Ok(None),
        Some(levels) => isv_level(levels, u16::from(minor))
            .map(Some)
            .ok_or(TdxError::TdxModuleTcbLevelNotFound { major, minor }),
    }
}

/// Evaluates the quote's TCB against verified TCB info, given the QE's level from
/// [`check_qe_identity`].
pub fn evaluate(
    info: &TcbInfo,
    pck: &PckPlatform,
    td: &TdReport,
    qe_level: &IsvTcbLevel,
) -> Result<TcbOutcome, TdxError> {
    let tee_svns = td.tee_tcb_svn.map(u16::from);
    // With a module major version, TEE_TCB_SVN[0..2] are the module's own SVNs, judged through
    // its identity below rather than the platform level.
    let tdx_from = if td.tee_tcb_svn[1] > 0 { 2 } else { 0 };
    let platform = info
        .tcb_levels
        .iter()
        .find(|level| {
            all_at_least(
                &pck.tcb_components,
                level.tcb.sgxtcbcomponents.iter().map(|c| c.svn),
            ) && pck.pce_svn >= level.tcb.pcesvn
                && all_at_least(
                    tee_svns.get(tdx_from..).unwrap_or_default(),
                    level
                        .tcb
                        .tdxtcbcomponents
                        .iter()
                        .skip(tdx_from)
                        .map(|c| c.svn),
                )
        })
        .ok_or(TdxError::TcbLevelNotFound)?;

    let module = check_tdx_module(info, td)?;

    let mut components = vec![qe_level.tcb_status];
    components.extend(module.map(|m| m.tcb_status));
    let status = converge(platform.tcb_status, &components);

    let mut advisory_ids = platform.advisory_ids.clone();
    advisory_ids.extend(qe_level.advisory_ids.iter().cloned());
    advisory_ids.extend(
        module
            .into_iter()
            .flat_map(|m| m.advisory_ids.iter().cloned()),
    );
    Ok(TcbOutcome {
        status,
        advisory_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcbStatus::*;

    #[test]
    fn components_only_worsen_the_platform_status() {
        assert_eq!(converge(UpToDate, &[UpToDate, UpToDate]), UpToDate);
        assert_eq!(converge(UpToDate, &[OutOfDate]), OutOfDate);
        assert_eq!(converge(SWHardeningNeeded, &[OutOfDate]), OutOfDate);
        assert_eq!(
            converge(ConfigurationNeeded, &[OutOfDate]),
            OutOfDateConfigurationNeeded
        );
        assert_eq!(converge(OutOfDate, &[UpToDate]), OutOfDate);
        assert_eq!(converge(UpToDate, &[UpToDate, Revoked]), Revoked);
        assert_eq!(
            converge(ConfigurationNeeded, &[UpToDate]),
            ConfigurationNeeded
        );
    }
}
