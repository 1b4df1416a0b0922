//! TDATTRIBUTES, the TD's 64-bit attribute field (TDX Module ABI, TD_PARAMS.ATTRIBUTES), as
//! it appears little-endian in the TD report. The bit positions are those of the TDX module
//! ABI specification, as Linux names them (`arch/x86/include/asm/shared/tdx.h`).
//!
//! Trust: the field is signed by the QE's attestation key with the rest of the TD report;
//! these constants only name its bits for the policy's required/forbidden masks.

/// TUD.DEBUG: the host VMM can read and write the TD's memory and registers.
pub const DEBUG: u64 = 1 << 0;
/// TUD.HGS_PLUS_PROF: host-side profiling of the TD through HGS+.
pub const HGS_PLUS_PROF: u64 = 1 << 4;
/// TUD.PERF_PROF: host-side performance profiling of the TD.
pub const PERF_PROF: u64 = 1 << 5;
/// TUD.PMT_PROF: host-side PMT profiling of the TD.
pub const PMT_PROF: u64 = 1 << 6;
/// SEC.ICSSD.
pub const ICSSD: u64 = 1 << 16;
/// SEC.LASS: linear address space separation enabled for the TD.
pub const LASS: u64 = 1 << 27;
/// SEC.SEPT_VE_DISABLE: EPT violations on pending private pages are not turned into #VE for
/// the guest, which closes a host-induced #VE channel (required by current Linux guests).
pub const SEPT_VE_DISABLE: u64 = 1 << 28;
/// SEC.MIGRATABLE: the TD may be migrated, i.e. its state exported through a migration TD.
pub const MIGRATABLE: u64 = 1 << 29;
/// SEC.PKS: the TD may use supervisor protection keys.
pub const PKS: u64 = 1 << 30;
/// SEC.KL: the TD may use Key Locker.
pub const KL: u64 = 1 << 31;
/// OTHER.TPA: TD partitioning (an L1 VMM inside the TD runs L2 guests).
pub const TPA: u64 = 1 << 62;
/// OTHER.PERFMON: the TD may use the performance monitoring unit.
pub const PERFMON: u64 = 1 << 63;

/// Every named bit with its name, lowest first.
pub const NAMED: [(u64, &str); 12] = [
    (DEBUG, "DEBUG"),
    (HGS_PLUS_PROF, "HGS_PLUS_PROF"),
    (PERF_PROF, "PERF_PROF"),
    (PMT_PROF, "PMT_PROF"),
    (ICSSD, "ICSSD"),
    (LASS, "LASS"),
    (SEPT_VE_DISABLE, "SEPT_VE_DISABLE"),
    (MIGRATABLE, "MIGRATABLE"),
    (PKS, "PKS"),
    (KL, "KL"),
    (TPA, "TPA"),
    (PERFMON, "PERFMON"),
];

/// The names of the bits set in `bits`, `|`-separated; an unnamed (reserved) bit is written
/// `bit<N>`.
pub fn names(bits: u64) -> String {
    (0..64)
        .map(|i| 1u64 << i)
        .filter(|bit| bits & bit != 0)
        .map(|bit| {
            NAMED.iter().find(|(b, _)| *b == bit).map_or_else(
                || format!("bit{}", bit.trailing_zeros()),
                |(_, n)| (*n).to_string(),
            )
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_named_and_reserved_bits() {
        assert_eq!(names(SEPT_VE_DISABLE), "SEPT_VE_DISABLE");
        assert_eq!(
            names(MIGRATABLE | PERFMON | (1 << 40)),
            "MIGRATABLE|bit40|PERFMON"
        );
        assert_eq!(names(0), "");
    }
}
