//! The SEV-SNP guest context's launch digest, as the AMD secure processor extends it on each
//! SNP_LAUNCH_UPDATE (SEV-SNP firmware ABI, "PAGE_INFO"):
//!
//! `LD' = SHA-384(PAGE_INFO)`, where PAGE_INFO (0x70 bytes) is
//! `LD ‖ CONTENTS (48) ‖ LENGTH u16 = 0x70 ‖ PAGE_TYPE u8 ‖ IMI_PAGE u8 ‖ VMPL3/2/1_PERMS u8×3 ‖
//! reserved u8 ‖ GPA u64`, all little-endian. CONTENTS is the SHA-384 of the page for normal and
//! VMSA pages, and zero for the other page types.

use sha2::{Digest, Sha384};

use crate::PAGE_SIZE;

/// A SHA-384 digest.
pub type Sha384Digest = [u8; 48];

const PAGE_INFO_LEN: u16 = 0x70;

/// The GPA a VMSA page is recorded at: (u64)-1, page aligned, bits above 51 cleared.
const VMSA_GPA: u64 = 0x0000_FFFF_FFFF_F000;

/// The page types of SNP_LAUNCH_UPDATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PageType {
    Normal = 0x01,
    Vmsa = 0x02,
    Zero = 0x03,
    Unmeasured = 0x04,
    Secrets = 0x05,
    Cpuid = 0x06,
}

/// The launch digest being built, starting from zero.
#[derive(Clone, Debug)]
pub(crate) struct Gctx {
    ld: Sha384Digest,
}

impl Default for Gctx {
    fn default() -> Self {
        Gctx { ld: [0; 48] }
    }
}

impl Gctx {
    /// The digest so far.
    pub(crate) fn digest(&self) -> Sha384Digest {
        self.ld
    }

    /// One PAGE_INFO extension.
    fn update(&mut self, page_type: PageType, gpa: u64, contents: &Sha384Digest) {
        let mut info = [0u8; PAGE_INFO_LEN as usize];
        info[..48].copy_from_slice(&self.ld);
        info[48..96].copy_from_slice(contents);
        info[96..98].copy_from_slice(&PAGE_INFO_LEN.to_le_bytes());
        info[98] = page_type as u8;
        // 99: IMI_PAGE = 0; 100..103: VMPL3, VMPL2, VMPL1 permissions = 0; 103: reserved.
        info[104..112].copy_from_slice(&gpa.to_le_bytes());
        self.ld = Sha384::digest(info).into();
    }

    /// Measured pages with these contents, starting at `gpa`. A trailing partial page is not
    /// measured: callers pass whole pages.
    pub(crate) fn update_normal_pages(&mut self, gpa: u64, data: &[u8]) {
        for (i, page) in data.chunks_exact(PAGE_SIZE).enumerate() {
            let digest: Sha384Digest = Sha384::digest(page).into();
            self.update(PageType::Normal, gpa + (i * PAGE_SIZE) as u64, &digest);
        }
    }

    /// One VMSA page (a vCPU's initial state).
    pub(crate) fn update_vmsa_page(&mut self, page: &[u8; PAGE_SIZE]) {
        let digest: Sha384Digest = Sha384::digest(page).into();
        self.update(PageType::Vmsa, VMSA_GPA, &digest);
    }

    /// `size / 4096` pages of one of the content-less types, starting at `gpa`.
    pub(crate) fn update_empty_pages(&mut self, page_type: PageType, gpa: u64, size: u64) {
        let mut offset = 0;
        while offset < size {
            self.update(page_type, gpa + offset, &[0; 48]);
            offset += PAGE_SIZE as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_info_layout() {
        // One update by hand: PAGE_INFO laid out byte by byte.
        let mut g = Gctx::default();
        g.update(PageType::Cpuid, 0x0080_e000, &[0; 48]);
        let mut info = vec![0u8; 96];
        info.extend_from_slice(&[0x70, 0x00, 0x06, 0, 0, 0, 0, 0]);
        info.extend_from_slice(&0x0080_e000u64.to_le_bytes());
        assert_eq!(info.len(), 0x70);
        let want: Sha384Digest = Sha384::digest(&info).into();
        assert_eq!(g.digest(), want);
    }

    #[test]
    fn empty_pages_are_one_update_per_page() {
        let mut a = Gctx::default();
        a.update_empty_pages(PageType::Zero, 0x1000, 0x3000);
        let mut b = Gctx::default();
        for gpa in [0x1000, 0x2000, 0x3000] {
            b.update(PageType::Zero, gpa, &[0; 48]);
        }
        assert_eq!(a.digest(), b.digest());
        let mut none = Gctx::default();
        none.update_empty_pages(PageType::Unmeasured, 0x1000, 0);
        assert_eq!(none.digest(), [0; 48]);
    }
}
