//! Launch measurements recomputed from the images a release boots.
//!
//! Trust: the firmware and kernel images given here are the release builder's own inputs; this
//! crate only computes what the hardware will measure when it launches them. Pure: bytes in,
//! digests out.
//!
//! - [`snp`]: the AMD SEV-SNP launch digest (MEASUREMENT) of a guest booted from OVMF, as
//!   sev-snp-measure computes it: [`snp_launch_digest`].
//! - [`ovmf`]: the OVMF footer table and SEV metadata that computation reads, checked field by
//!   field (a malformed or hostile image is an [`OvmfError`], never a panic).
//!
//! Intel TDX's MRTD is not computed here yet: it needs a TDVF image and an independent
//! reference to check it against, which the project's machines do not have so far.

pub mod cpu;
mod gctx;
pub mod guid;
pub mod hashes;
pub mod ovmf;
mod read;
pub mod snp;
#[cfg(test)]
mod testimage;
pub mod vmsa;

pub use cpu::{CpuSignature, CpuSignatureError, VCPU_TYPES};
pub use hashes::KernelHashes;
pub use ovmf::{Ovmf, OvmfError};
pub use snp::{
    launch_digest, snp_launch_digest, LaunchDigest, SnpError, SnpLaunch, DEFAULT_GUEST_FEATURES,
    MAX_VCPUS,
};
pub use vmsa::Vmm;

/// Guest pages are 4 KiB.
pub(crate) const PAGE_SIZE: usize = 4096;

/// OVMF is mapped so that it ends here.
pub(crate) const FOUR_GIB: u64 = 1 << 32;
