//! Synthetic OVMF images for the unit tests: a few pages of patterned bytes ending with an
//! OVMF footer table and SEV metadata laid out as edk2 lays them out, with knobs to break each
//! field.

use crate::guid::Guid;
use crate::ovmf::{
    OVMF_SEV_METADATA_GUID, OVMF_TABLE_FOOTER_GUID, SEV_ES_RESET_BLOCK_GUID, SEV_HASH_TABLE_RV_GUID,
};
use crate::PAGE_SIZE;

/// Where the metadata lies: this many bytes before the end of the image.
const METADATA_OFFSET: u32 = 0x800;

struct Entry {
    guid: Guid,
    data: Vec<u8>,
    size: Option<u16>,
}

pub(crate) struct ImageBuilder {
    pages: usize,
    entries: Vec<Entry>,
    metadata: bool,
    signature: [u8; 4],
    version: u32,
    count: Option<u32>,
    size: Option<u32>,
    sections: Vec<(u32, u32, u32)>,
}

impl ImageBuilder {
    /// Like edk2's AmdSev build: reset block, hashes table, metadata with every section kind.
    pub(crate) fn amd_sev() -> Self {
        ImageBuilder {
            pages: 4,
            entries: vec![
                Entry {
                    guid: SEV_HASH_TABLE_RV_GUID,
                    data: [0x0081_0c00u32.to_le_bytes(), 0x400u32.to_le_bytes()].concat(),
                    size: None,
                },
                Entry {
                    guid: SEV_ES_RESET_BLOCK_GUID,
                    data: 0x0080_b004u32.to_le_bytes().to_vec(),
                    size: None,
                },
                Entry {
                    guid: OVMF_SEV_METADATA_GUID,
                    data: METADATA_OFFSET.to_le_bytes().to_vec(),
                    size: None,
                },
            ],
            metadata: true,
            signature: *b"ASEV",
            version: 1,
            count: None,
            size: None,
            sections: vec![
                (0x0080_0000, 0x9000, 1),
                (0x0080_d000, 0x1000, 2),
                (0x0080_e000, 0x1000, 3),
                (0x0080_f000, 0x1000, 4),
                (0x0081_0000, 0x1000, 0x10),
                (0x0081_1000, 0xf000, 1),
            ],
        }
    }

    fn without(mut self, guid: Guid) -> Self {
        self.entries.retain(|e| e.guid != guid);
        self
    }

    pub(crate) fn without_metadata(mut self) -> Self {
        self.metadata = false;
        self.without(OVMF_SEV_METADATA_GUID)
    }

    pub(crate) fn without_reset_block(self) -> Self {
        self.without(SEV_ES_RESET_BLOCK_GUID)
    }

    pub(crate) fn without_hashes_table(self) -> Self {
        self.without(SEV_HASH_TABLE_RV_GUID)
    }

    pub(crate) fn without_kernel_hashes_section(mut self) -> Self {
        self.sections.retain(|s| s.2 != 0x10);
        self
    }

    fn set(mut self, guid: Guid, value: u32) -> Self {
        for e in self.entries.iter_mut().filter(|e| e.guid == guid) {
            e.data[..4].copy_from_slice(&value.to_le_bytes());
        }
        self
    }

    pub(crate) fn reset_eip(self, eip: u32) -> Self {
        self.set(SEV_ES_RESET_BLOCK_GUID, eip)
    }

    pub(crate) fn hashes_table_gpa(self, gpa: u32) -> Self {
        self.set(SEV_HASH_TABLE_RV_GUID, gpa)
    }

    /// The offset the metadata entry names (the metadata itself stays where it is).
    pub(crate) fn metadata_offset(self, offset: u32) -> Self {
        self.set(OVMF_SEV_METADATA_GUID, offset)
    }

    /// One more entry, nearest the footer (so the first one read).
    pub(crate) fn entry(mut self, guid: Guid, data: &[u8]) -> Self {
        self.entries.push(Entry {
            guid,
            data: data.to_vec(),
            size: None,
        });
        self
    }

    /// One more entry that declares `size` whatever its data.
    pub(crate) fn raw_entry(mut self, guid: Guid, size: u16, data: &[u8]) -> Self {
        self.entries.push(Entry {
            guid,
            data: data.to_vec(),
            size: Some(size),
        });
        self
    }

    pub(crate) fn metadata_signature(mut self, signature: [u8; 4]) -> Self {
        self.signature = signature;
        self
    }

    pub(crate) fn metadata_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    pub(crate) fn metadata_count(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    pub(crate) fn metadata_size(mut self, size: u32) -> Self {
        self.size = Some(size);
        self
    }

    /// One more section `(gpa, size, type)`.
    pub(crate) fn section(mut self, gpa: u32, size: u32, kind: u32) -> Self {
        self.sections.push((gpa, size, kind));
        self
    }

    /// These sections instead of the default ones.
    pub(crate) fn sections(mut self, sections: &[(u32, u32, u32)]) -> Self {
        self.sections = sections.to_vec();
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let len = self.pages * PAGE_SIZE;
        let mut image: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
        // The reset vector's 32 bytes, then the footer, then the entries before it.
        let mut end = len - 32;
        let entries_len: usize = self.entries.iter().map(|e| e.data.len() + 18).sum();
        let footer_size = (entries_len + 18) as u16;
        end = put_entry(&mut image, end, OVMF_TABLE_FOOTER_GUID, &[], footer_size);
        for e in self.entries.iter().rev() {
            let size = e.size.unwrap_or((e.data.len() + 18) as u16);
            end = put_entry(&mut image, end, e.guid, &e.data, size);
        }
        if self.metadata {
            let start = len - METADATA_OFFSET as usize;
            let count = self.count.unwrap_or(self.sections.len() as u32);
            let size = self.size.unwrap_or(16 + 12 * self.sections.len() as u32);
            let mut m = self.signature.to_vec();
            for word in [size, self.version, count] {
                m.extend_from_slice(&word.to_le_bytes());
            }
            for &(gpa, size, kind) in &self.sections {
                for word in [gpa, size, kind] {
                    m.extend_from_slice(&word.to_le_bytes());
                }
            }
            image[start..start + m.len()].copy_from_slice(&m);
        }
        image
    }
}

/// Writes `data ‖ size ‖ guid` so that it ends at `end`; returns where it starts.
fn put_entry(image: &mut [u8], end: usize, guid: Guid, data: &[u8], size: u16) -> usize {
    let start = end - 18 - data.len();
    image[start..start + data.len()].copy_from_slice(data);
    image[end - 18..end - 16].copy_from_slice(&size.to_le_bytes());
    image[end - 16..end].copy_from_slice(guid.as_bytes());
    start
}
