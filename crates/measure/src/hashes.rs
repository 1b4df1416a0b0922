//! The SEV hashes table: the SHA-256 of the kernel, initrd and command line that QEMU writes
//! into the firmware's SNP_KERNEL_HASHES page for measured direct boot (`-kernel`, `-initrd`,
//! `-append`), and OVMF checks before it runs them. It must be byte for byte what QEMU writes
//! (`target/i386/sev.c`, `SevHashTable`, padded to 16 bytes).

use sha2::{Digest, Sha256};

use crate::guid::Guid;
use crate::PAGE_SIZE;

const TABLE_HEADER_GUID: Guid = Guid::parse("9438d606-4f22-4cc9-b479-a793d411fd21");
const KERNEL_ENTRY_GUID: Guid = Guid::parse("4de79437-abd2-427f-b835-d5b172d2045b");
const INITRD_ENTRY_GUID: Guid = Guid::parse("44baf731-3a2f-4bd7-9af1-41e29169781d");
const CMDLINE_ENTRY_GUID: Guid = Guid::parse("97d02dd8-bd20-4c94-aa78-e7714d36ab2a");

/// One entry: GUID, `u16` length, SHA-256.
const ENTRY_LEN: usize = 16 + 2 + 32;
/// The table: GUID, `u16` length, then the command line, initrd and kernel entries.
const TABLE_LEN: usize = 16 + 2 + 3 * ENTRY_LEN;
/// QEMU pads the table to a multiple of 16 bytes.
pub(crate) const PADDED_TABLE_LEN: usize = (TABLE_LEN + 15) & !15;

/// The hashes of what QEMU boots directly: kernel, initrd and command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelHashes {
    pub kernel: [u8; 32],
    pub initrd: [u8; 32],
    pub cmdline: [u8; 32],
}

impl KernelHashes {
    /// Hashes the kernel image, the initrd (empty when there is none, as QEMU hashes it) and
    /// the command line (QEMU hashes it with its terminating NUL; an absent one is just NUL).
    pub fn new(kernel: &[u8], initrd: &[u8], cmdline: &str) -> Self {
        let mut with_nul = Sha256::new();
        with_nul.update(cmdline.as_bytes());
        with_nul.update([0]);
        KernelHashes {
            kernel: Sha256::digest(kernel).into(),
            initrd: Sha256::digest(initrd).into(),
            cmdline: with_nul.finalize().into(),
        }
    }

    /// The padded table as QEMU lays it out.
    pub(crate) fn table(&self) -> [u8; PADDED_TABLE_LEN] {
        let mut t = [0u8; PADDED_TABLE_LEN];
        t[..16].copy_from_slice(TABLE_HEADER_GUID.as_bytes());
        t[16..18].copy_from_slice(&(TABLE_LEN as u16).to_le_bytes());
        let entries = [
            (CMDLINE_ENTRY_GUID, &self.cmdline),
            (INITRD_ENTRY_GUID, &self.initrd),
            (KERNEL_ENTRY_GUID, &self.kernel),
        ];
        for (i, (guid, hash)) in entries.into_iter().enumerate() {
            let at = 18 + i * ENTRY_LEN;
            t[at..at + 16].copy_from_slice(guid.as_bytes());
            t[at + 16..at + 18].copy_from_slice(&(ENTRY_LEN as u16).to_le_bytes());
            t[at + 18..at + ENTRY_LEN].copy_from_slice(hash);
        }
        t
    }

    /// The hashes page: zero but for the table at `offset` in it; `None` if the table would
    /// not fit in the page there.
    pub(crate) fn page(&self, offset: usize) -> Option<[u8; PAGE_SIZE]> {
        let mut page = [0u8; PAGE_SIZE];
        page.get_mut(offset..offset.checked_add(PADDED_TABLE_LEN)?)?
            .copy_from_slice(&self.table());
        Some(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_layout() {
        let h = KernelHashes::new(b"kernel", b"", "console=ttyS0");
        let t = h.table();
        assert_eq!(TABLE_LEN, 168);
        assert_eq!(t.len(), 176);
        assert_eq!(
            TABLE_HEADER_GUID.to_string(),
            "9438d606-4f22-4cc9-b479-a793d411fd21"
        );
        assert_eq!(&t[16..18], &[168, 0]);
        assert_eq!(&t[18..34], CMDLINE_ENTRY_GUID.as_bytes());
        assert_eq!(&t[34..36], &[50, 0]);
        let cmdline: [u8; 32] = Sha256::digest(b"console=ttyS0\0").into();
        assert_eq!(&t[36..68], &cmdline);
        assert_eq!(&t[68..84], INITRD_ENTRY_GUID.as_bytes());
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert_eq!(&t[86..118], &empty);
        assert_eq!(&t[118..134], KERNEL_ENTRY_GUID.as_bytes());
        let kernel: [u8; 32] = Sha256::digest(b"kernel").into();
        assert_eq!(&t[136..168], &kernel);
        assert!(t[168..].iter().all(|&b| b == 0));
    }

    #[test]
    fn an_absent_command_line_is_a_lone_nul() {
        let h = KernelHashes::new(b"", b"", "");
        let nul: [u8; 32] = Sha256::digest([0u8]).into();
        assert_eq!(h.cmdline, nul);
    }

    #[test]
    fn page_places_the_table_or_refuses() {
        let h = KernelHashes::new(b"k", b"i", "c");
        let page = h.page(0xc00).unwrap();
        assert_eq!(&page[0xc00..0xc00 + PADDED_TABLE_LEN], &h.table());
        assert!(page[..0xc00].iter().all(|&b| b == 0));
        assert!(h.page(PAGE_SIZE - PADDED_TABLE_LEN).is_some());
        assert!(h.page(PAGE_SIZE - PADDED_TABLE_LEN + 1).is_none());
        assert!(h.page(usize::MAX).is_none());
    }
}
