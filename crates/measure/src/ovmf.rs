//! What an OVMF image tells the VMM about an SEV guest: the GUIDed footer table at its end and
//! the SEV metadata (the pages the VMM adds to the guest besides the image itself).
//!
//! Layout (edk2 `OvmfPkg/ResetVector`): the image is mapped so that it ends at 4 GiB. Its last
//! 32 bytes are the reset vector; just before them lies the footer entry (`u16` total table
//! size, footer GUID), and before that the table's entries, each `data ‖ u16 size ‖ GUID`,
//! read backwards from the footer. The SEV metadata entry holds the offset from the end of the
//! image of an `ASEV` header followed by `(gpa, size, type)` section descriptors.
//!
//! Every field comes from the image, which may be malformed or hostile: each is checked, and
//! each problem is an [`OvmfError`] that names it.

use thiserror::Error;

use crate::guid::Guid;
use crate::read;
use crate::{FOUR_GIB, PAGE_SIZE};

/// The OVMF table footer: marks the GUIDed table that ends 32 bytes before the image's end.
pub const OVMF_TABLE_FOOTER_GUID: Guid = Guid::parse("96b582de-1fb2-45f7-baea-a366c55a082d");
/// The table entry whose first 4 bytes are the GPA of the SEV hashes table (kernel, initrd,
/// command line hashes, filled in by the VMM).
pub const SEV_HASH_TABLE_RV_GUID: Guid = Guid::parse("7255371f-3a3b-4b04-927b-1da6efa8d454");
/// The table entry whose first 4 bytes are the application processors' reset vector (EIP).
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::parse("00f771de-1a7e-4fcb-890e-68c77e2fb44e");
/// The table entry whose first 4 bytes are the offset, from the image's end, of the SEV metadata.
pub const OVMF_SEV_METADATA_GUID: Guid = Guid::parse("dc886566-984a-4798-a75e-5585a7bf67cc");

/// The footer entry ends this many bytes before the end of the image (the reset vector's space).
const FOOTER_GAP: usize = 32;
/// Each table entry's header: `u16` size (of the whole entry) and the GUID.
const ENTRY_HEADER_LEN: usize = 18;
/// The SEV metadata header: `"ASEV"`, `u32` size, `u32` version, `u32` number of sections.
const METADATA_HEADER_LEN: usize = 16;
/// One SEV metadata section descriptor: `u32` GPA, `u32` size, `u32` type.
const METADATA_SECTION_LEN: usize = 12;

/// The kinds of SEV metadata sections (edk2 `OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    /// Memory the firmware expects pre-validated (zero pages; unmeasured on GCE).
    SnpSecMem,
    /// The SNP secrets page.
    SnpSecrets,
    /// The CPUID page.
    Cpuid,
    /// The SVSM calling area (zero pages).
    SvsmCaa,
    /// The page that holds the SEV hashes table (kernel, initrd, command line).
    SnpKernelHashes,
}

impl SectionKind {
    fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::SnpSecMem),
            2 => Some(Self::SnpSecrets),
            3 => Some(Self::Cpuid),
            4 => Some(Self::SvsmCaa),
            0x10 => Some(Self::SnpKernelHashes),
            _ => None,
        }
    }

    /// The name edk2 gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::SnpSecMem => "SNP_SEC_MEM",
            Self::SnpSecrets => "SNP_SECRETS",
            Self::Cpuid => "CPUID",
            Self::SvsmCaa => "SVSM_CAA",
            Self::SnpKernelHashes => "SNP_KERNEL_HASHES",
        }
    }

    /// Whether the section's size counts (the secrets and CPUID sections are one page whatever
    /// their declared size).
    fn sized(self) -> bool {
        !matches!(self, Self::SnpSecrets | Self::Cpuid)
    }
}

impl std::fmt::Display for SectionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One SEV metadata section: guest-physical pages the VMM adds at launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataSection {
    pub gpa: u32,
    pub size: u32,
    pub kind: SectionKind,
}

/// What is wrong with an OVMF image.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum OvmfError {
    #[error("OVMF image is {len} bytes, too small to hold the OVMF footer table (at least {min})")]
    TooSmall { len: usize, min: usize },
    #[error("OVMF image is {len} bytes, not a whole number of 4096-byte pages")]
    NotPageMultiple { len: usize },
    #[error("OVMF image is {len} bytes, larger than the 4 GiB below which it is mapped")]
    TooLarge { len: usize },
    #[error(
        "no OVMF footer table (GUID {OVMF_TABLE_FOOTER_GUID}) 32 bytes before the end of the \
         image: not an OVMF image, or not one built for SEV (is it a VARS file?)"
    )]
    NoFooterTable,
    #[error("OVMF footer table declares {size} bytes, fewer than its own {ENTRY_HEADER_LEN}-byte header")]
    FooterTooShort { size: u16 },
    #[error("OVMF footer table declares {size} bytes, more than the image holds before it")]
    FooterOverrun { size: u16 },
    #[error("OVMF footer table entry {guid} declares {size} bytes, fewer than its {ENTRY_HEADER_LEN}-byte header")]
    EntryTooShort { guid: Guid, size: u16 },
    #[error("OVMF footer table entry {guid} declares {size} bytes, more than the {left} left in the table")]
    EntryOverrun { guid: Guid, size: u16, left: usize },
    #[error("OVMF footer table has more than one entry {guid}")]
    DuplicateEntry { guid: Guid },
    #[error("OVMF footer table has no {name} entry ({guid}){why}")]
    MissingEntry {
        name: &'static str,
        guid: Guid,
        why: &'static str,
    },
    #[error("OVMF footer table entry {name} holds {len} bytes, fewer than the {need} it must")]
    EntryDataTooShort {
        name: &'static str,
        len: usize,
        need: usize,
    },
    #[error("SEV metadata at {offset} bytes from the end lies outside the {len}-byte OVMF image")]
    MetadataOutsideImage { offset: u32, len: usize },
    #[error("SEV metadata signature is {found:02x?}, not \"ASEV\"")]
    BadMetadataSignature { found: [u8; 4] },
    #[error("SEV metadata version {0} is not supported (only version 1 is)")]
    UnsupportedMetadataVersion(u32),
    #[error(
        "SEV metadata declares {size} bytes for {sections} sections, which need {need} \
         (or runs past the end of the OVMF image)"
    )]
    MetadataTruncated { size: u32, sections: u32, need: u64 },
    #[error("SEV metadata section {index} has unknown type {raw:#x}")]
    UnknownSectionType { index: usize, raw: u32 },
    #[error("SEV metadata section {index} ({kind}) starts at {gpa:#x}, not on a page boundary")]
    UnalignedSection {
        index: usize,
        kind: SectionKind,
        gpa: u32,
    },
    #[error(
        "SEV metadata section {index} ({kind}) is {size:#x} bytes, not a whole number of pages"
    )]
    SectionNotPageMultiple {
        index: usize,
        kind: SectionKind,
        size: u32,
    },
    #[error("SEV metadata section {index} ({kind}) at {gpa:#x} ({size:#x} bytes) runs past 4 GiB")]
    SectionPastFourGib {
        index: usize,
        kind: SectionKind,
        gpa: u32,
        size: u32,
    },
}

/// One entry of the footer table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry<'a> {
    pub guid: Guid,
    pub data: &'a [u8],
}

/// A parsed OVMF image: the bytes, where they are mapped, the footer table and SEV metadata.
#[derive(Clone, Debug)]
pub struct Ovmf<'a> {
    data: &'a [u8],
    table: Vec<TableEntry<'a>>,
    sections: Vec<MetadataSection>,
    has_sev_metadata: bool,
}

impl<'a> Ovmf<'a> {
    /// Parses an OVMF image (the whole file, or its code part: the part that ends at 4 GiB).
    pub fn parse(data: &'a [u8]) -> Result<Self, OvmfError> {
        check_image_size(data)?;
        let table = parse_footer_table(data)?;
        let metadata = find(&table, OVMF_SEV_METADATA_GUID).copied();
        let sections = match &metadata {
            Some(entry) => {
                let offset = entry_u32(entry, "OVMF_SEV_METADATA")?;
                parse_sev_metadata(data, offset)?
            }
            None => Vec::new(),
        };
        Ok(Ovmf {
            data,
            table,
            sections,
            has_sev_metadata: metadata.is_some(),
        })
    }

    /// The image's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The guest-physical address of the image's first byte (it ends at 4 GiB).
    pub fn gpa(&self) -> u64 {
        // check_image_size: len <= 4 GiB.
        FOUR_GIB - self.data.len() as u64
    }

    /// The footer table's entries, in the order they lie in the image.
    pub fn table(&self) -> &[TableEntry<'a>] {
        &self.table
    }

    /// Whether the image has SEV metadata at all. An image without it declares no pages for the
    /// VMM to pre-validate: it was probably not built for SEV-SNP.
    pub fn has_sev_metadata(&self) -> bool {
        self.has_sev_metadata
    }

    /// The SEV metadata sections, in the order the VMM adds them.
    pub fn sections(&self) -> &[MetadataSection] {
        &self.sections
    }

    /// Whether the metadata has a section of this kind.
    pub fn has_section(&self, kind: SectionKind) -> bool {
        self.sections.iter().any(|s| s.kind == kind)
    }

    /// The application processors' reset vector (the first 4 bytes of the SEV-ES reset block).
    pub fn sev_es_reset_eip(&self) -> Result<u32, OvmfError> {
        let entry = find(&self.table, SEV_ES_RESET_BLOCK_GUID).ok_or(OvmfError::MissingEntry {
            name: "SEV_ES_RESET_BLOCK",
            guid: SEV_ES_RESET_BLOCK_GUID,
            why: ": the image does not support SEV-ES or SEV-SNP",
        })?;
        entry_u32(entry, "SEV_ES_RESET_BLOCK")
    }

    /// The guest-physical address of the SEV hashes table.
    pub fn sev_hashes_table_gpa(&self) -> Result<u32, OvmfError> {
        let entry = find(&self.table, SEV_HASH_TABLE_RV_GUID).ok_or(OvmfError::MissingEntry {
            name: "SEV_HASH_TABLE_RV",
            guid: SEV_HASH_TABLE_RV_GUID,
            why: ": the image cannot measure a kernel, initrd and command line",
        })?;
        entry_u32(entry, "SEV_HASH_TABLE_RV")
    }
}

/// The image must be whole pages, at most 4 GiB, and large enough for the footer.
fn check_image_size(data: &[u8]) -> Result<(), OvmfError> {
    let len = data.len();
    let min = FOOTER_GAP + ENTRY_HEADER_LEN;
    if len < min {
        return Err(OvmfError::TooSmall { len, min });
    }
    if !len.is_multiple_of(PAGE_SIZE) {
        return Err(OvmfError::NotPageMultiple { len });
    }
    if len as u64 > FOUR_GIB {
        return Err(OvmfError::TooLarge { len });
    }
    Ok(())
}

/// Reads an entry header (`u16` size, GUID) that ends at `end`.
fn entry_header(data: &[u8], end: usize) -> Option<(u16, Guid)> {
    let start = end.checked_sub(ENTRY_HEADER_LEN)?;
    let size = read::u16_le(data, start)?;
    let guid = Guid::from_bytes(read::array(data, start + 2)?);
    Some((size, guid))
}

/// Parses the GUIDed footer table, walking backwards from the footer entry.
fn parse_footer_table(data: &[u8]) -> Result<Vec<TableEntry<'_>>, OvmfError> {
    let footer_end = data.len() - FOOTER_GAP; // check_image_size: len >= FOOTER_GAP + header.
    let footer_start = footer_end - ENTRY_HEADER_LEN;
    let (size, guid) = entry_header(data, footer_end).ok_or(OvmfError::NoFooterTable)?;
    if guid != OVMF_TABLE_FOOTER_GUID {
        return Err(OvmfError::NoFooterTable);
    }
    let table_len = usize::from(size)
        .checked_sub(ENTRY_HEADER_LEN)
        .ok_or(OvmfError::FooterTooShort { size })?;
    let table_start = footer_start
        .checked_sub(table_len)
        .ok_or(OvmfError::FooterOverrun { size })?;
    let mut rest = &data[table_start..footer_start];
    let mut entries = Vec::new();
    // Whatever is left that cannot hold a header is slack, as edk2's readers treat it.
    while let Some((size, guid)) = entry_header(rest, rest.len()) {
        let entry_len = usize::from(size);
        if entry_len < ENTRY_HEADER_LEN {
            return Err(OvmfError::EntryTooShort { guid, size });
        }
        let entry_start = rest
            .len()
            .checked_sub(entry_len)
            .ok_or(OvmfError::EntryOverrun {
                guid,
                size,
                left: rest.len(),
            })?;
        if entries.iter().any(|e: &TableEntry<'_>| e.guid == guid) {
            return Err(OvmfError::DuplicateEntry { guid });
        }
        entries.push(TableEntry {
            guid,
            data: &rest[entry_start..rest.len() - ENTRY_HEADER_LEN],
        });
        rest = &rest[..entry_start];
    }
    entries.reverse();
    Ok(entries)
}

fn find<'t, 'a>(table: &'t [TableEntry<'a>], guid: Guid) -> Option<&'t TableEntry<'a>> {
    table.iter().find(|e| e.guid == guid)
}

/// The first 4 bytes of an entry's data, little-endian.
fn entry_u32(entry: &TableEntry<'_>, name: &'static str) -> Result<u32, OvmfError> {
    read::u32_le(entry.data, 0).ok_or(OvmfError::EntryDataTooShort {
        name,
        len: entry.data.len(),
        need: 4,
    })
}

/// Parses the SEV metadata that starts `offset` bytes before the end of the image.
fn parse_sev_metadata(data: &[u8], offset: u32) -> Result<Vec<MetadataSection>, OvmfError> {
    let outside = OvmfError::MetadataOutsideImage {
        offset,
        len: data.len(),
    };
    let start = usize::try_from(offset)
        .ok()
        .and_then(|o| data.len().checked_sub(o))
        .ok_or(outside.clone())?;
    let header = data
        .get(start..)
        .and_then(|h| h.get(..METADATA_HEADER_LEN))
        .ok_or(outside)?;
    let field = |at| read::u32_le(header, at).unwrap_or(0); // header is METADATA_HEADER_LEN long.
    let signature: [u8; 4] = read::array(header, 0).unwrap_or_default();
    if &signature != b"ASEV" {
        return Err(OvmfError::BadMetadataSignature { found: signature });
    }
    let (size, version, count) = (field(4), field(8), field(12));
    if version != 1 {
        return Err(OvmfError::UnsupportedMetadataVersion(version));
    }
    let need = METADATA_HEADER_LEN as u64 + METADATA_SECTION_LEN as u64 * u64::from(count);
    let truncated = OvmfError::MetadataTruncated {
        size,
        sections: count,
        need,
    };
    if u64::from(size) < need {
        return Err(truncated);
    }
    let body = usize::try_from(size)
        .ok()
        .and_then(|s| data.get(start..)?.get(METADATA_HEADER_LEN..s))
        .ok_or(truncated)?;
    body.chunks_exact(METADATA_SECTION_LEN)
        .take(count as usize) // size >= need: there are at least `count` chunks.
        .enumerate()
        .map(|(index, raw)| parse_section(index, raw))
        .collect()
}

/// Parses and checks one section descriptor.
fn parse_section(index: usize, raw: &[u8]) -> Result<MetadataSection, OvmfError> {
    let word = |at| read::u32_le(raw, at).unwrap_or(0); // raw is METADATA_SECTION_LEN long.
    let (gpa, size, raw_kind) = (word(0), word(4), word(8));
    let kind = SectionKind::from_raw(raw_kind).ok_or(OvmfError::UnknownSectionType {
        index,
        raw: raw_kind,
    })?;
    if !(gpa as usize).is_multiple_of(PAGE_SIZE) {
        return Err(OvmfError::UnalignedSection { index, kind, gpa });
    }
    let span = if kind.sized() {
        if !(size as usize).is_multiple_of(PAGE_SIZE) {
            return Err(OvmfError::SectionNotPageMultiple { index, kind, size });
        }
        u64::from(size)
    } else {
        PAGE_SIZE as u64
    };
    if u64::from(gpa) + span > FOUR_GIB {
        return Err(OvmfError::SectionPastFourGib {
            index,
            kind,
            gpa,
            size,
        });
    }
    Ok(MetadataSection { gpa, size, kind })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testimage::ImageBuilder;

    #[test]
    fn parses_a_well_formed_image() {
        let image = ImageBuilder::amd_sev().build();
        let ovmf = Ovmf::parse(&image).unwrap();
        assert_eq!(ovmf.gpa(), FOUR_GIB - image.len() as u64);
        assert!(ovmf.has_sev_metadata());
        assert_eq!(ovmf.sev_es_reset_eip().unwrap(), 0x0080_b004);
        assert_eq!(ovmf.sev_hashes_table_gpa().unwrap(), 0x0081_0c00);
        let kinds: Vec<_> = ovmf.sections().iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SectionKind::SnpSecMem,
                SectionKind::SnpSecrets,
                SectionKind::Cpuid,
                SectionKind::SvsmCaa,
                SectionKind::SnpKernelHashes,
                SectionKind::SnpSecMem,
            ]
        );
        assert!(ovmf.has_section(SectionKind::SnpKernelHashes));
        assert_eq!(ovmf.table().len(), 3);
    }

    #[test]
    fn an_image_without_metadata_parses_and_says_so() {
        let image = ImageBuilder::amd_sev().without_metadata().build();
        let ovmf = Ovmf::parse(&image).unwrap();
        assert!(!ovmf.has_sev_metadata());
        assert!(ovmf.sections().is_empty());
    }

    #[test]
    fn refuses_images_of_the_wrong_size() {
        assert_eq!(
            Ovmf::parse(&[]).unwrap_err(),
            OvmfError::TooSmall { len: 0, min: 50 }
        );
        let mut image = ImageBuilder::amd_sev().build();
        image.insert(0, 0);
        assert_eq!(
            Ovmf::parse(&image).unwrap_err(),
            OvmfError::NotPageMultiple { len: image.len() }
        );
    }

    #[test]
    fn refuses_an_image_without_the_footer() {
        assert_eq!(
            Ovmf::parse(&[0u8; 4096]).unwrap_err(),
            OvmfError::NoFooterTable
        );
        let mut image = ImageBuilder::amd_sev().build();
        let guid_at = image.len() - 32 - 16;
        image[guid_at] ^= 1;
        assert_eq!(Ovmf::parse(&image).unwrap_err(), OvmfError::NoFooterTable);
    }

    #[test]
    fn refuses_a_footer_size_outside_the_image() {
        let mut image = ImageBuilder::amd_sev().build();
        let at = image.len() - 32 - 18;
        image[at..at + 2].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            Ovmf::parse(&image).unwrap_err(),
            OvmfError::FooterTooShort { size: 3 }
        );
        // A footer that claims the whole 4 KiB and more.
        let mut small = image[image.len() - 4096..].to_vec();
        let at = small.len() - 32 - 18;
        small[at..at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(
            Ovmf::parse(&small).unwrap_err(),
            OvmfError::FooterOverrun { size: 0xffff }
        );
    }

    #[test]
    fn refuses_entries_that_do_not_fit() {
        let image = ImageBuilder::amd_sev().raw_entry(SEV_ES_RESET_BLOCK_GUID, 17, &[]);
        assert_eq!(
            Ovmf::parse(&image.build()).unwrap_err(),
            OvmfError::EntryTooShort {
                guid: SEV_ES_RESET_BLOCK_GUID,
                size: 17
            }
        );
        let image = ImageBuilder::amd_sev().raw_entry(SEV_ES_RESET_BLOCK_GUID, 4000, &[]);
        assert!(matches!(
            Ovmf::parse(&image.build()).unwrap_err(),
            OvmfError::EntryOverrun { size: 4000, .. }
        ));
    }

    #[test]
    fn refuses_duplicate_entries() {
        let image = ImageBuilder::amd_sev().entry(SEV_ES_RESET_BLOCK_GUID, &[0; 4]);
        assert_eq!(
            Ovmf::parse(&image.build()).unwrap_err(),
            OvmfError::DuplicateEntry {
                guid: SEV_ES_RESET_BLOCK_GUID
            }
        );
    }

    #[test]
    fn refuses_short_entry_data() {
        let image = ImageBuilder::amd_sev()
            .without_reset_block()
            .entry(SEV_ES_RESET_BLOCK_GUID, &[1, 2]);
        let bytes = image.build();
        let ovmf = Ovmf::parse(&bytes).unwrap();
        assert_eq!(
            ovmf.sev_es_reset_eip().unwrap_err(),
            OvmfError::EntryDataTooShort {
                name: "SEV_ES_RESET_BLOCK",
                len: 2,
                need: 4
            }
        );
    }

    #[test]
    fn reports_missing_entries() {
        let image = ImageBuilder::amd_sev()
            .without_reset_block()
            .without_hashes_table()
            .build();
        let ovmf = Ovmf::parse(&image).unwrap();
        assert!(matches!(
            ovmf.sev_es_reset_eip().unwrap_err(),
            OvmfError::MissingEntry {
                name: "SEV_ES_RESET_BLOCK",
                ..
            }
        ));
        assert!(matches!(
            ovmf.sev_hashes_table_gpa().unwrap_err(),
            OvmfError::MissingEntry {
                name: "SEV_HASH_TABLE_RV",
                ..
            }
        ));
    }

    /// Asserts that the standard image, changed by the builder calls given, fails to parse
    /// with an [`OvmfError`] matching the variant and field pattern (a macro, as a pattern
    /// cannot be an argument).
    macro_rules! assert_refused {
        ($($change:ident($($arg:expr),*)).+ => $variant:ident $($fields:tt)*) => {{
            let image = ImageBuilder::amd_sev()$(.$change($($arg),*))+.build();
            let err = Ovmf::parse(&image).unwrap_err();
            assert!(matches!(err, OvmfError::$variant $($fields)*), "{err:?}");
        }};
    }

    #[test]
    fn refuses_metadata_outside_the_image() {
        assert_refused!(metadata_offset(u32::MAX) => MetadataOutsideImage { .. });
        // Offset 8 from the end: the 16-byte header would run past it.
        assert_refused!(metadata_offset(8) => MetadataOutsideImage { offset: 8, .. });
    }

    #[test]
    fn refuses_bad_metadata_headers() {
        const ASEX: [u8; 4] = *b"ASEX";
        assert_refused!(metadata_signature(ASEX) => BadMetadataSignature { found: ASEX });
        assert_refused!(metadata_version(2) => UnsupportedMetadataVersion(2));
        assert_refused!(metadata_count(7) => MetadataTruncated { sections: 7, .. });
        assert_refused!(metadata_count(u32::MAX) => MetadataTruncated { .. });
        // A size that agrees with the count but runs past the end of the image.
        assert_refused!(metadata_size(0x7000_0000) => MetadataTruncated { .. });
    }

    #[test]
    fn refuses_bad_sections() {
        assert_refused!(section(0x90_0000, 0x1000, 9) => UnknownSectionType { index: 6, raw: 9 });
        assert_refused!(section(0x90_0010, 0x1000, 1) => UnalignedSection { index: 6, .. });
        assert_refused!(section(0x90_0000, 0x1001, 1) => SectionNotPageMultiple { index: 6, .. });
        assert_refused!(section(0xffff_f000, 0x2000, 4) => SectionPastFourGib { index: 6, .. });
        // The secrets and CPUID pages are one page whatever size they declare.
        let image = ImageBuilder::amd_sev().section(0x90_0000, 0x123, 2).build();
        assert!(Ovmf::parse(&image).is_ok());
    }

    #[test]
    fn every_truncation_and_every_byte_flip_of_the_tail_is_an_error_or_a_parse() {
        // No input may panic: cut the image short everywhere in its last page, and flip each
        // byte of its last page.
        let image = ImageBuilder::amd_sev().build();
        for cut in 0..image.len() {
            let _ = Ovmf::parse(&image[..cut]);
            let _ = Ovmf::parse(&image[cut..]);
        }
        for i in image.len() - 4096..image.len() {
            let mut flipped = image.clone();
            flipped[i] ^= 0xff;
            if let Ok(ovmf) = Ovmf::parse(&flipped) {
                let _ = ovmf.sev_es_reset_eip();
                let _ = ovmf.sev_hashes_table_gpa();
            }
        }
    }
}
