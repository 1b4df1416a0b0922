//! vCPU signatures: the CPUID Fn0000_0001_EAX value (family, model, stepping) that QEMU puts in
//! RDX at reset, and so in every VMSA it measures.

use std::fmt;

use thiserror::Error;

/// A CPUID Fn0000_0001_EAX signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuSignature(pub u32);

/// QEMU's AMD EPYC models (`builtin_x86_defs`) and their signatures, as sev-snp-measure names
/// them.
pub const VCPU_TYPES: &[(&str, CpuSignature)] = &[
    ("EPYC", CpuSignature::of(23, 1, 2)),
    ("EPYC-v1", CpuSignature::of(23, 1, 2)),
    ("EPYC-v2", CpuSignature::of(23, 1, 2)),
    ("EPYC-IBPB", CpuSignature::of(23, 1, 2)),
    ("EPYC-v3", CpuSignature::of(23, 1, 2)),
    ("EPYC-v4", CpuSignature::of(23, 1, 2)),
    ("EPYC-Rome", CpuSignature::of(23, 49, 0)),
    ("EPYC-Rome-v1", CpuSignature::of(23, 49, 0)),
    ("EPYC-Rome-v2", CpuSignature::of(23, 49, 0)),
    ("EPYC-Rome-v3", CpuSignature::of(23, 49, 0)),
    ("EPYC-Milan", CpuSignature::of(25, 1, 1)),
    ("EPYC-Milan-v1", CpuSignature::of(25, 1, 1)),
    ("EPYC-Milan-v2", CpuSignature::of(25, 1, 1)),
    ("EPYC-Genoa", CpuSignature::of(25, 17, 0)),
    ("EPYC-Genoa-v1", CpuSignature::of(25, 17, 0)),
    ("EPYC-Turin", CpuSignature::of(26, 0, 0)),
];

/// A vCPU description that names no signature.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CpuSignatureError {
    #[error("unknown vCPU type {name:?} (known: {})", known_types())]
    UnknownType { name: String },
    #[error("vCPU family {0} is out of range (at most {max})", max = 0xf + 0xff)]
    FamilyOutOfRange(u32),
    #[error("vCPU model {0} is out of range (at most 255)")]
    ModelOutOfRange(u32),
    #[error("vCPU stepping {0} is out of range (at most 15)")]
    SteppingOutOfRange(u32),
}

fn known_types() -> String {
    VCPU_TYPES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl CpuSignature {
    /// The signature of a QEMU vCPU model, by the name sev-snp-measure gives it (`EPYC-Milan`).
    pub fn from_vcpu_type(name: &str) -> Result<Self, CpuSignatureError> {
        VCPU_TYPES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, sig)| *sig)
            .ok_or_else(|| CpuSignatureError::UnknownType {
                name: name.to_owned(),
            })
    }

    /// The signature for a family, model and stepping (AMD CPUID specification #25481,
    /// Fn0000_0001_EAX): families above 15 are 15 plus an extended family.
    pub fn from_family_model_stepping(
        family: u32,
        model: u32,
        stepping: u32,
    ) -> Result<Self, CpuSignatureError> {
        if family > 0xf + 0xff {
            return Err(CpuSignatureError::FamilyOutOfRange(family));
        }
        if model > 0xff {
            return Err(CpuSignatureError::ModelOutOfRange(model));
        }
        if stepping > 0xf {
            return Err(CpuSignatureError::SteppingOutOfRange(stepping));
        }
        Ok(Self::of(family, model, stepping))
    }

    /// The encoding itself, for values already in range.
    const fn of(family: u32, model: u32, stepping: u32) -> Self {
        let (family_low, family_high) = if family > 0xf {
            (0xf, (family - 0xf) & 0xff)
        } else {
            (family, 0)
        };
        CpuSignature(
            (family_high << 20)
                | (((model >> 4) & 0xf) << 16)
                | (family_low << 8)
                | ((model & 0xf) << 4)
                | (stepping & 0xf),
        )
    }
}

impl fmt::Display for CpuSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_signatures() {
        // Values as real EPYC parts report them in CPUID Fn0000_0001_EAX.
        let sig = |n| CpuSignature::from_vcpu_type(n).unwrap().0;
        assert_eq!(sig("EPYC"), 0x0080_0f12);
        assert_eq!(sig("EPYC-v4"), 0x0080_0f12);
        assert_eq!(sig("EPYC-Rome"), 0x0083_0f10);
        assert_eq!(sig("EPYC-Milan"), 0x00a0_0f11);
        assert_eq!(sig("EPYC-Genoa"), 0x00a1_0f10);
        assert_eq!(sig("EPYC-Turin"), 0x00b0_0f00);
    }

    #[test]
    fn family_model_stepping() {
        assert_eq!(
            CpuSignature::from_family_model_stepping(25, 1, 1).unwrap(),
            CpuSignature(0x00a0_0f11)
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(6, 0x55, 7).unwrap(),
            CpuSignature(0x0005_0657)
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(0, 0, 0).unwrap(),
            CpuSignature(0)
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(0x10f, 0, 0),
            Err(CpuSignatureError::FamilyOutOfRange(0x10f))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(25, 256, 0),
            Err(CpuSignatureError::ModelOutOfRange(256))
        );
        assert_eq!(
            CpuSignature::from_family_model_stepping(25, 1, 16),
            Err(CpuSignatureError::SteppingOutOfRange(16))
        );
    }

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let err = CpuSignature::from_vcpu_type("epyc").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("unknown vCPU type \"epyc\" (known: EPYC, EPYC-v1"));
        assert!(text.ends_with("EPYC-Turin)"));
    }
}
