//! The AMD SEV-SNP launch digest (the attestation report's MEASUREMENT) of a guest launched
//! from an OVMF image, the way QEMU (or EC2's, or GCE's VMM) launches it:
//!
//! 1. the image's pages, as normal pages, mapped so that the image ends at 4 GiB;
//! 2. the pages the image's SEV metadata declares, in order: pre-validated memory (zero pages,
//!    unmeasured on GCE), the secrets page, the CPUID page (last of all on EC2), the SVSM
//!    calling area (zero pages), and the SEV hashes page (the kernel, initrd and command-line
//!    hashes for measured direct boot, or zero pages without a kernel);
//! 3. one VMSA page per vCPU: the bootstrap processor at the reset vector, the others at the
//!    image's SEV-ES AP reset vector.
//!
//! Each page extends the digest as [`crate::gctx`] describes. This is the computation of
//! sev-snp-measure 0.0.13 (`--mode snp`), checked against it in `tests/sev_snp_measure.rs`.

use std::fmt;

use thiserror::Error;

use crate::gctx::{Gctx, PageType, Sha384Digest};
use crate::hashes::KernelHashes;
use crate::ovmf::{MetadataSection, Ovmf, OvmfError, SectionKind};
use crate::vmsa::{vmsa_page, Vmm, BSP_EIP};
use crate::PAGE_SIZE;

/// The SEV features (VMSA SEV_FEATURES) a guest gets when none are named: SNP active only.
pub const DEFAULT_GUEST_FEATURES: u64 = 0x1;

/// The most vCPUs a KVM guest can have (KVM_MAX_VCPUS on x86).
pub const MAX_VCPUS: u32 = 4096;

/// How the guest is launched, besides its firmware image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnpLaunch {
    /// The number of vCPUs, each with a VMSA page.
    pub vcpus: u32,
    /// The hypervisor, which decides some initial register values.
    pub vmm: Vmm,
    /// The VMSA's SEV_FEATURES (bit 0: SNP active; see the SEV-SNP ABI for the others).
    pub guest_features: u64,
    /// The hashes of a kernel, initrd and command line booted directly (QEMU `-kernel`), which
    /// the firmware must have an SNP_KERNEL_HASHES section to receive.
    pub kernel_hashes: Option<KernelHashes>,
}

/// A launch digest: the 48 bytes of the attestation report's MEASUREMENT field.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LaunchDigest(pub Sha384Digest);

impl LaunchDigest {
    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 48] {
        &self.0
    }

    /// The 96 lower-case hex digits a report's MEASUREMENT is usually written as.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for LaunchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LaunchDigest({})", self.to_hex())
    }
}

/// Why no launch digest could be computed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SnpError {
    #[error(transparent)]
    Ovmf(#[from] OvmfError),
    #[error("a guest needs at least one vCPU")]
    NoVcpus,
    #[error("{0} vCPUs is more than a KVM guest can have ({MAX_VCPUS})")]
    TooManyVcpus(u32),
    #[error(
        "a kernel was given, but the OVMF image has no SNP_KERNEL_HASHES section, so it cannot \
         measure a kernel, initrd and command line (use an OVMF built from OvmfPkg/AmdSev)"
    )]
    NoKernelHashesSection,
    #[error(
        "the OVMF image's SNP_KERNEL_HASHES section at {gpa:#x} is {size:#x} bytes; \
         the hashes page it must hold is one page (0x1000)"
    )]
    KernelHashesSectionSize { gpa: u32, size: u32 },
    #[error(
        "the OVMF image puts the SEV hashes table at {gpa:#x}, where it does not fit in its page"
    )]
    HashesTableCrossesPage { gpa: u32 },
    #[error("the OVMF image's SEV-ES AP reset vector is 0: it cannot start more than one vCPU")]
    NoApResetVector,
}

/// Parses the OVMF image and computes the launch digest (see [`launch_digest`]).
pub fn snp_launch_digest(ovmf: &[u8], launch: &SnpLaunch) -> Result<LaunchDigest, SnpError> {
    launch_digest(&Ovmf::parse(ovmf)?, launch)
}

/// The launch digest of a guest launched from this image this way.
pub fn launch_digest(ovmf: &Ovmf<'_>, launch: &SnpLaunch) -> Result<LaunchDigest, SnpError> {
    check_vcpus(launch.vcpus)?;
    let ap_eip = ap_reset_eip(ovmf, launch.vcpus)?;
    let hashes_page = kernel_hashes_page(ovmf, launch.kernel_hashes.as_ref())?;
    let mut gctx = Gctx::default();
    gctx.update_normal_pages(ovmf.gpa(), ovmf.data());
    update_metadata_pages(&mut gctx, ovmf.sections(), launch.vmm, hashes_page.as_ref());
    update_vmsa_pages(&mut gctx, launch, ap_eip);
    Ok(LaunchDigest(gctx.digest()))
}

fn check_vcpus(vcpus: u32) -> Result<(), SnpError> {
    match vcpus {
        0 => Err(SnpError::NoVcpus),
        n if n > MAX_VCPUS => Err(SnpError::TooManyVcpus(n)),
        _ => Ok(()),
    }
}

/// The APs' reset vector. The image must name one (as sev-snp-measure requires, even for one
/// vCPU), and it must not be 0 when there are APs to start.
fn ap_reset_eip(ovmf: &Ovmf<'_>, vcpus: u32) -> Result<u32, SnpError> {
    let eip = ovmf.sev_es_reset_eip()?;
    if eip == 0 && vcpus > 1 {
        return Err(SnpError::NoApResetVector);
    }
    Ok(eip)
}

/// The SEV hashes page for the kernel hashes, if any, with its table where the image says.
fn kernel_hashes_page(
    ovmf: &Ovmf<'_>,
    hashes: Option<&KernelHashes>,
) -> Result<Option<[u8; PAGE_SIZE]>, SnpError> {
    let Some(hashes) = hashes else {
        return Ok(None);
    };
    let sections = ovmf.sections().iter();
    let mut kernel_sections = sections.filter(|s| s.kind == SectionKind::SnpKernelHashes);
    let Some(first) = kernel_sections.next() else {
        return Err(SnpError::NoKernelHashesSection);
    };
    for s in std::iter::once(first).chain(kernel_sections) {
        if s.size as usize != PAGE_SIZE {
            return Err(SnpError::KernelHashesSectionSize {
                gpa: s.gpa,
                size: s.size,
            });
        }
    }
    let gpa = ovmf.sev_hashes_table_gpa()?;
    let offset = gpa as usize % PAGE_SIZE;
    hashes
        .page(offset)
        .map(Some)
        .ok_or(SnpError::HashesTableCrossesPage { gpa })
}

/// The pages the SEV metadata declares, in its order; on EC2 the CPUID pages come last.
fn update_metadata_pages(
    gctx: &mut Gctx,
    sections: &[MetadataSection],
    vmm: Vmm,
    hashes_page: Option<&[u8; PAGE_SIZE]>,
) {
    for s in sections {
        update_section(gctx, s, vmm, hashes_page);
    }
    if vmm == Vmm::Ec2 {
        for s in sections.iter().filter(|s| s.kind == SectionKind::Cpuid) {
            gctx.update_empty_pages(PageType::Cpuid, s.gpa.into(), PAGE_SIZE as u64);
        }
    }
}

/// One SEV metadata section (sizes were checked when the image was parsed).
fn update_section(
    gctx: &mut Gctx,
    s: &MetadataSection,
    vmm: Vmm,
    hashes_page: Option<&[u8; PAGE_SIZE]>,
) {
    let (gpa, size) = (u64::from(s.gpa), u64::from(s.size));
    let one_page = PAGE_SIZE as u64;
    match s.kind {
        SectionKind::SnpSecMem if vmm == Vmm::Gce => {
            gctx.update_empty_pages(PageType::Unmeasured, gpa, size)
        }
        SectionKind::SnpSecMem | SectionKind::SvsmCaa => {
            gctx.update_empty_pages(PageType::Zero, gpa, size)
        }
        SectionKind::SnpSecrets => gctx.update_empty_pages(PageType::Secrets, gpa, one_page),
        SectionKind::Cpuid if vmm == Vmm::Ec2 => {} // Added after all the others.
        SectionKind::Cpuid => gctx.update_empty_pages(PageType::Cpuid, gpa, one_page),
        SectionKind::SnpKernelHashes => match hashes_page {
            Some(page) => gctx.update_normal_pages(gpa, page),
            None => gctx.update_empty_pages(PageType::Zero, gpa, size),
        },
    }
}

/// One VMSA page per vCPU: the BSP's, then the same AP page for each other vCPU.
fn update_vmsa_pages(gctx: &mut Gctx, launch: &SnpLaunch, ap_eip: u32) {
    gctx.update_vmsa_page(&vmsa_page(BSP_EIP, launch.guest_features, launch.vmm));
    if launch.vcpus > 1 {
        let ap = vmsa_page(ap_eip, launch.guest_features, launch.vmm);
        for _ in 1..launch.vcpus {
            gctx.update_vmsa_page(&ap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::CpuSignature;
    use crate::hashes::PADDED_TABLE_LEN;
    use crate::ovmf::SEV_HASH_TABLE_RV_GUID;
    use crate::testimage::ImageBuilder;

    const AMD_SEV: &[u8] = include_bytes!("../tests/fixtures/ovmf_AmdSev_suffix.bin");
    const OVMF_X64: &[u8] = include_bytes!("../tests/fixtures/ovmf_OvmfX64_suffix.bin");

    fn epyc_v4() -> Vmm {
        Vmm::Qemu {
            vcpu_sig: CpuSignature::from_vcpu_type("EPYC-v4").unwrap(),
        }
    }

    fn launch(vcpus: u32, vmm: Vmm, guest_features: u64, kernel: Option<&str>) -> SnpLaunch {
        SnpLaunch {
            vcpus,
            vmm,
            guest_features,
            // sev-snp-measure's tests boot /dev/null as kernel and initrd.
            kernel_hashes: kernel.map(|cmdline| KernelHashes::new(b"", b"", cmdline)),
        }
    }

    fn digest(image: &[u8], launch: &SnpLaunch) -> String {
        snp_launch_digest(image, launch).unwrap().to_hex()
    }

    /// The values sev-snp-measure's own tests (tests/test_guest.py) assert for its fixtures.
    #[test]
    fn published_vectors() {
        let cases: &[(&[u8], SnpLaunch, &str)] = &[
            (AMD_SEV, launch(1, Vmm::Ec2, 0x21, Some("")),
             "0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"),
            (AMD_SEV, launch(1, Vmm::Ec2, 0x1, Some("")),
             "0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056"),
            (AMD_SEV, launch(1, Vmm::Gce, 0x1, Some("")),
             "5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e"),
            (AMD_SEV, launch(4, Vmm::Gce, 0x1, Some("")),
             "5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"),
            (AMD_SEV, launch(1, epyc_v4(), 0x21, Some("console=ttyS0 loglevel=7")),
             "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
            (AMD_SEV, launch(1, epyc_v4(), 0x1, Some("console=ttyS0 loglevel=7")),
             "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
            (AMD_SEV, launch(1, epyc_v4(), 0x21, None),
             "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
            (AMD_SEV, launch(1, epyc_v4(), 0x1, None),
             "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"),
            (AMD_SEV, launch(4, epyc_v4(), 0x21, Some("")),
             "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
            (AMD_SEV, launch(4, epyc_v4(), 0x1, Some("")),
             "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
            (OVMF_X64, launch(1, epyc_v4(), 0x21, None),
             "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
            (OVMF_X64, launch(1, epyc_v4(), 0x1, None),
             "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"),
        ];
        for (i, (image, launch, want)) in cases.iter().enumerate() {
            assert_eq!(&digest(image, launch), want, "case {i}: {launch:?}");
        }
    }

    #[test]
    fn a_kernel_needs_a_kernel_hashes_section() {
        assert_eq!(
            snp_launch_digest(OVMF_X64, &launch(1, epyc_v4(), 0x21, Some(""))),
            Err(SnpError::NoKernelHashesSection)
        );
        let image = ImageBuilder::amd_sev()
            .without_kernel_hashes_section()
            .build();
        assert_eq!(
            snp_launch_digest(&image, &launch(2, Vmm::Ec2, 1, Some("ro"))),
            Err(SnpError::NoKernelHashesSection)
        );
        // Without a kernel, that image measures fine.
        assert!(snp_launch_digest(&image, &launch(2, Vmm::Ec2, 1, None)).is_ok());
    }

    #[test]
    fn kernel_hashes_page_is_measured_where_the_image_puts_the_table() {
        // A minimal image with only a hashes section: recompute by hand, step by step.
        let builder = ImageBuilder::amd_sev()
            .sections(&[(0x0081_0000, 0x1000, 0x10)])
            .hashes_table_gpa(0x0081_0c00);
        let image = builder.build();
        let hashes = KernelHashes::new(b"vmlinuz", b"initrd", "console=ttyS0");
        let got = snp_launch_digest(
            &image,
            &SnpLaunch {
                vcpus: 1,
                vmm: Vmm::Gce,
                guest_features: 1,
                kernel_hashes: Some(hashes),
            },
        )
        .unwrap();
        let mut g = Gctx::default();
        g.update_normal_pages(crate::FOUR_GIB - image.len() as u64, &image);
        let mut page = [0u8; PAGE_SIZE];
        page[0xc00..0xc00 + PADDED_TABLE_LEN].copy_from_slice(&hashes.table());
        g.update_normal_pages(0x0081_0000, &page);
        g.update_vmsa_page(&vmsa_page(BSP_EIP, 1, Vmm::Gce));
        assert_eq!(got.0, g.digest());
        // The same image without a kernel measures the page as a zero page instead.
        let without = snp_launch_digest(&image, &launch(1, Vmm::Gce, 1, None)).unwrap();
        let mut g = Gctx::default();
        g.update_normal_pages(crate::FOUR_GIB - image.len() as u64, &image);
        g.update_empty_pages(PageType::Zero, 0x0081_0000, 0x1000);
        g.update_vmsa_page(&vmsa_page(BSP_EIP, 1, Vmm::Gce));
        assert_eq!(without.0, g.digest());
        // Every input of the table counts.
        let other = |k: &[u8], i: &[u8], c: &str| {
            let mut l = launch(1, Vmm::Gce, 1, None);
            l.kernel_hashes = Some(KernelHashes::new(k, i, c));
            snp_launch_digest(&image, &l).unwrap()
        };
        let base = other(b"vmlinuz", b"initrd", "console=ttyS0");
        assert_eq!(base, got);
        assert_ne!(other(b"vmlinuz2", b"initrd", "console=ttyS0"), base);
        assert_ne!(other(b"vmlinuz", b"initrd2", "console=ttyS0"), base);
        assert_ne!(other(b"vmlinuz", b"initrd", "console=ttyS1"), base);
    }

    #[test]
    fn refuses_a_kernel_hashes_section_that_is_not_one_page() {
        let image = ImageBuilder::amd_sev()
            .sections(&[(0x0081_0000, 0x2000, 0x10)])
            .build();
        assert_eq!(
            snp_launch_digest(&image, &launch(1, Vmm::Gce, 1, Some(""))),
            Err(SnpError::KernelHashesSectionSize {
                gpa: 0x0081_0000,
                size: 0x2000
            })
        );
        // Without a kernel the section is just zero pages.
        assert!(snp_launch_digest(&image, &launch(1, Vmm::Gce, 1, None)).is_ok());
    }

    #[test]
    fn refuses_a_hashes_table_that_crosses_its_page() {
        let image = ImageBuilder::amd_sev()
            .hashes_table_gpa(0x0081_0f80)
            .build();
        assert_eq!(
            snp_launch_digest(&image, &launch(1, epyc_v4(), 1, Some(""))),
            Err(SnpError::HashesTableCrossesPage { gpa: 0x0081_0f80 })
        );
        let image = ImageBuilder::amd_sev()
            .hashes_table_gpa(0x0081_0f50)
            .build();
        assert!(snp_launch_digest(&image, &launch(1, epyc_v4(), 1, Some(""))).is_ok());
    }

    #[test]
    fn refuses_a_kernel_without_the_hashes_table_entry() {
        let image = ImageBuilder::amd_sev().without_hashes_table().build();
        assert!(matches!(
            snp_launch_digest(&image, &launch(1, epyc_v4(), 1, Some(""))),
            Err(SnpError::Ovmf(OvmfError::MissingEntry { guid, .. })) if guid == SEV_HASH_TABLE_RV_GUID
        ));
    }

    #[test]
    fn vcpu_counts() {
        let image = ImageBuilder::amd_sev().build();
        assert_eq!(
            snp_launch_digest(&image, &launch(0, epyc_v4(), 1, None)),
            Err(SnpError::NoVcpus)
        );
        assert_eq!(
            snp_launch_digest(&image, &launch(MAX_VCPUS + 1, epyc_v4(), 1, None)),
            Err(SnpError::TooManyVcpus(MAX_VCPUS + 1))
        );
        let one = digest(&image, &launch(1, epyc_v4(), 1, None));
        let two = digest(&image, &launch(2, epyc_v4(), 1, None));
        assert_ne!(one, two);
        let image = ImageBuilder::amd_sev().reset_eip(0).build();
        assert!(snp_launch_digest(&image, &launch(1, epyc_v4(), 1, None)).is_ok());
        assert_eq!(
            snp_launch_digest(&image, &launch(2, epyc_v4(), 1, None)),
            Err(SnpError::NoApResetVector)
        );
        let image = ImageBuilder::amd_sev().without_reset_block().build();
        assert!(matches!(
            snp_launch_digest(&image, &launch(1, epyc_v4(), 1, None)),
            Err(SnpError::Ovmf(OvmfError::MissingEntry {
                name: "SEV_ES_RESET_BLOCK",
                ..
            }))
        ));
    }

    #[test]
    fn ec2_adds_the_cpuid_page_last() {
        // With the CPUID section last, EC2's order and the in-order one coincide; EC2's VMSA
        // differs, so compare the metadata step alone.
        let sections = [
            MetadataSection {
                gpa: 0x1000,
                size: 0x1000,
                kind: SectionKind::Cpuid,
            },
            MetadataSection {
                gpa: 0x2000,
                size: 0x1000,
                kind: SectionKind::SnpSecMem,
            },
        ];
        let mut ec2 = Gctx::default();
        update_metadata_pages(&mut ec2, &sections, Vmm::Ec2, None);
        let mut qemu = Gctx::default();
        update_metadata_pages(&mut qemu, &[sections[1], sections[0]], epyc_v4(), None);
        assert_eq!(ec2.digest(), qemu.digest());
        let mut in_order = Gctx::default();
        update_metadata_pages(&mut in_order, &sections, epyc_v4(), None);
        assert_ne!(ec2.digest(), in_order.digest());
    }

    #[test]
    fn gce_leaves_pre_validated_memory_unmeasured() {
        let s = [MetadataSection {
            gpa: 0x2000,
            size: 0x2000,
            kind: SectionKind::SnpSecMem,
        }];
        let mut gce = Gctx::default();
        update_metadata_pages(&mut gce, &s, Vmm::Gce, None);
        let mut want = Gctx::default();
        want.update_empty_pages(PageType::Unmeasured, 0x2000, 0x2000);
        assert_eq!(gce.digest(), want.digest());
    }

    #[test]
    fn digest_text_forms() {
        let d = LaunchDigest([0xab; 48]);
        assert_eq!(d.to_string(), "ab".repeat(48));
        assert_eq!(d.to_hex().len(), 96);
        assert_eq!(d.as_bytes(), &[0xab; 48]);
    }
}
