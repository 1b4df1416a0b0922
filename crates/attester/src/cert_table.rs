//! The SEV-SNP extended report's certificate table, as configfs-tsm hands it over in `auxblob`.
//!
//! Layout (GHCB specification v2, section 4.1.8.1, MSG_REPORT_REQ): a sequence of 24-byte
//! entries — a 16-byte GUID in the byte order its text form is written (as `uuid_parse`
//! produces it), then a little-endian u32 offset and u32 length, both relative to the start of
//! the table — ended by an all-zero entry, followed by the certificates the offsets point at.
//!
//! Trust: the table is filled in by the untrusted hypervisor. Nothing here believes it beyond
//! bounds: a certificate that is not what it claims fails later, in the client's verifier,
//! against AMD's pinned root. This parser only has to never panic and to refuse a table that
//! does not make sense, so that garbage is reported here rather than relayed.

use thiserror::Error;

const ENTRY_LEN: usize = 24;

/// The AMD-defined table keys (GHCB specification, table of certificate GUIDs).
pub const VCEK_GUID: [u8; 16] = guid(0x63da758d, 0xe664, 0x4564, 0xadc5, 0xf4b93be8accd);
pub const VLEK_GUID: [u8; 16] = guid(0xa8074bc2, 0xa25a, 0x483e, 0xaae6, 0x39c045a0b8a1);
pub const ASK_GUID: [u8; 16] = guid(0x4ab7b379, 0xbbac, 0x4fe4, 0xa02f, 0x05aef327c782);
pub const ARK_GUID: [u8; 16] = guid(0xc0b406a4, 0xa803, 0x4952, 0x9743, 0x3fb6014cd0ae);

/// Builds the wire bytes of a GUID from its five textual groups, most significant byte first.
const fn guid(a: u32, b: u16, c: u16, d: u16, e: u64) -> [u8; 16] {
    let a = a.to_be_bytes();
    let b = b.to_be_bytes();
    let c = c.to_be_bytes();
    let d = d.to_be_bytes();
    let e = e.to_be_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], e[2], e[3], e[4], e[5], e[6],
        e[7],
    ]
}

/// Why a certificate table was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertTableError {
    #[error("table of {len} bytes ends before its all-zero terminating entry")]
    Unterminated { len: usize },
    #[error(
        "entry {index} points at bytes {offset}..{offset}+{length}, outside the {len}-byte blob"
    )]
    OutOfBounds {
        index: usize,
        offset: u32,
        length: u32,
        len: usize,
    },
    #[error(
        "entry {index} points into the table itself (offset {offset}, table ends at {table_end})"
    )]
    OverlapsTable {
        index: usize,
        offset: u32,
        table_end: usize,
    },
    #[error("entry {index} has an empty certificate")]
    EmptyCertificate { index: usize },
    #[error("GUID {guid} appears more than once")]
    DuplicateGuid { guid: String },
    #[error("table carries both a VCEK and a VLEK: which one signed the report is ambiguous")]
    AmbiguousEndorsement,
    #[error("table carries neither a VCEK nor a VLEK")]
    NoEndorsement,
}

/// One certificate named in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEntry<'a> {
    pub guid: [u8; 16],
    pub der: &'a [u8],
}

/// The certificates the SNP evidence needs, picked out of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpCerts {
    /// The VCEK or VLEK that signed the report.
    pub endorsement_der: Vec<u8>,
    /// The intermediate and root the host attached, in that order, those it had.
    pub chain_der: Vec<Vec<u8>>,
}

/// Splits a certificate table into its entries, in table order.
///
/// An empty blob, or one whose first entry is the terminator, is a table with no entries: the
/// kernel hands over an empty `auxblob` when the host attached no certificates.
pub fn parse(blob: &[u8]) -> Result<Vec<CertEntry<'_>>, CertTableError> {
    if blob.is_empty() {
        return Ok(Vec::new());
    }
    let mut raw = Vec::new();
    let mut index = 0usize;
    let table_end = loop {
        let start = index.saturating_mul(ENTRY_LEN);
        let entry = start
            .checked_add(ENTRY_LEN)
            .and_then(|end| blob.get(start..end))
            .ok_or(CertTableError::Unterminated { len: blob.len() })?;
        let (guid_bytes, rest) = entry.split_at(16);
        let (offset_bytes, length_bytes) = rest.split_at(4);
        let guid: [u8; 16] = guid_bytes
            .try_into()
            .map_err(|_| CertTableError::Unterminated { len: blob.len() })?;
        let offset = u32::from_le_bytes(
            offset_bytes
                .try_into()
                .map_err(|_| CertTableError::Unterminated { len: blob.len() })?,
        );
        let length = u32::from_le_bytes(
            length_bytes
                .try_into()
                .map_err(|_| CertTableError::Unterminated { len: blob.len() })?,
        );
        if guid == [0u8; 16] && offset == 0 && length == 0 {
            break start.saturating_add(ENTRY_LEN);
        }
        raw.push((guid, offset, length));
        index = index.saturating_add(1);
    };

    let mut entries: Vec<CertEntry<'_>> = Vec::with_capacity(raw.len());
    for (index, (guid, offset, length)) in raw.into_iter().enumerate() {
        let out_of_bounds = CertTableError::OutOfBounds {
            index,
            offset,
            length,
            len: blob.len(),
        };
        let start = usize::try_from(offset).map_err(|_| out_of_bounds.clone())?;
        let len = usize::try_from(length).map_err(|_| out_of_bounds.clone())?;
        if len == 0 {
            return Err(CertTableError::EmptyCertificate { index });
        }
        if start < table_end {
            return Err(CertTableError::OverlapsTable {
                index,
                offset,
                table_end,
            });
        }
        let der = start
            .checked_add(len)
            .and_then(|end| blob.get(start..end))
            .ok_or(out_of_bounds)?;
        if entries.iter().any(|e| e.guid == guid) {
            return Err(CertTableError::DuplicateGuid {
                guid: guid_text(&guid),
            });
        }
        entries.push(CertEntry { guid, der });
    }
    Ok(entries)
}

/// Picks the endorsement key's certificate and its chain out of a table's entries. Entries
/// with other GUIDs (revocation lists, vendor extensions) are not evidence and are left out.
pub fn snp_certs(entries: &[CertEntry<'_>]) -> Result<SnpCerts, CertTableError> {
    let find = |g: &[u8; 16]| entries.iter().find(|e| &e.guid == g).map(|e| e.der);
    let endorsement = match (find(&VCEK_GUID), find(&VLEK_GUID)) {
        (Some(_), Some(_)) => return Err(CertTableError::AmbiguousEndorsement),
        (Some(der), None) | (None, Some(der)) => der,
        (None, None) => return Err(CertTableError::NoEndorsement),
    };
    let chain_der = [find(&ASK_GUID), find(&ARK_GUID)]
        .into_iter()
        .flatten()
        .map(<[u8]>::to_vec)
        .collect();
    Ok(SnpCerts {
        endorsement_der: endorsement.to_vec(),
        chain_der,
    })
}

/// The canonical text form of a GUID in wire order, for error messages.
pub fn guid_text(g: &[u8; 16]) -> String {
    let hex: String = g.iter().map(|b| format!("{b:02x}")).collect();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or_default().to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

/// Serialises a table in the kernel's layout: the inverse of [`parse`], used by tests that
/// stand in for the hypervisor.
#[cfg(test)]
pub(crate) fn build(certs: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let table_len = (certs.len() + 1) * ENTRY_LEN;
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (guid, der) in certs {
        let offset = u32::try_from(table_len + data.len()).unwrap_or(u32::MAX);
        table.extend_from_slice(guid);
        table.extend_from_slice(&offset.to_le_bytes());
        table.extend_from_slice(&u32::try_from(der.len()).unwrap_or(u32::MAX).to_le_bytes());
        data.extend_from_slice(der);
    }
    table.extend_from_slice(&[0u8; ENTRY_LEN]);
    table.extend_from_slice(&data);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_match_their_text_form() {
        assert_eq!(
            guid_text(&VCEK_GUID),
            "63da758d-e664-4564-adc5-f4b93be8accd"
        );
        assert_eq!(
            guid_text(&VLEK_GUID),
            "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
        );
        assert_eq!(guid_text(&ASK_GUID), "4ab7b379-bbac-4fe4-a02f-05aef327c782");
        assert_eq!(guid_text(&ARK_GUID), "c0b406a4-a803-4952-9743-3fb6014cd0ae");
        assert_eq!(
            VCEK_GUID,
            [
                0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8,
                0xac, 0xcd
            ]
        );
    }

    #[test]
    fn round_trip_and_selection() {
        let blob = build(&[
            (ARK_GUID, b"ark".as_slice()),
            (VCEK_GUID, b"vcek".as_slice()),
            (ASK_GUID, b"ask".as_slice()),
        ]);
        let entries = parse(&blob).unwrap();
        assert_eq!(entries.len(), 3);
        let certs = snp_certs(&entries).unwrap();
        assert_eq!(certs.endorsement_der, b"vcek");
        assert_eq!(certs.chain_der, vec![b"ask".to_vec(), b"ark".to_vec()]);
    }

    #[test]
    fn vlek_alone_is_the_endorsement_and_unknown_guids_are_skipped() {
        let crl = guid(0x92f81bc3, 0x5811, 0x4d3d, 0x97ff, 0xd19f88dc67ea);
        let blob = build(&[(crl, b"crl".as_slice()), (VLEK_GUID, b"vlek".as_slice())]);
        let certs = snp_certs(&parse(&blob).unwrap()).unwrap();
        assert_eq!(certs.endorsement_der, b"vlek");
        assert!(certs.chain_der.is_empty());
    }

    #[test]
    fn empty_table_has_no_entries_but_no_endorsement() {
        assert_eq!(parse(&[]).unwrap(), vec![]);
        assert_eq!(parse(&[0u8; 24]).unwrap(), vec![]);
        assert_eq!(snp_certs(&[]), Err(CertTableError::NoEndorsement));
    }

    #[test]
    fn malformed_tables_are_refused() {
        let good = build(&[(VCEK_GUID, b"vcek".as_slice())]);

        let mut unterminated = good.clone();
        unterminated.truncate(24);
        assert_eq!(
            parse(&unterminated),
            Err(CertTableError::Unterminated { len: 24 })
        );

        // The table with the first entry's offset (16) and length (20) set.
        let with = |fields: &[(usize, u32)]| {
            let mut table = good.clone();
            for &(at, value) in fields {
                table[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
            table
        };
        let past_end = with(&[(20, 1000)]);
        assert!(matches!(
            parse(&past_end),
            Err(CertTableError::OutOfBounds { index: 0, .. })
        ));
        assert!(parse(&with(&[(16, u32::MAX), (20, u32::MAX)])).is_err());
        let into_table = with(&[(16, 0)]);
        assert!(matches!(
            parse(&into_table),
            Err(CertTableError::OverlapsTable { index: 0, .. })
        ));
        assert_eq!(
            parse(&with(&[(20, 0)])),
            Err(CertTableError::EmptyCertificate { index: 0 })
        );

        let dup = build(&[(VCEK_GUID, b"a".as_slice()), (VCEK_GUID, b"b".as_slice())]);
        assert!(matches!(
            parse(&dup),
            Err(CertTableError::DuplicateGuid { .. })
        ));

        let both = build(&[(VCEK_GUID, b"a".as_slice()), (VLEK_GUID, b"b".as_slice())]);
        assert_eq!(
            snp_certs(&parse(&both).unwrap()),
            Err(CertTableError::AmbiguousEndorsement)
        );
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A small deterministic generator keeps this reproducible without a fuzzing harness;
        // each input is also mutated from a valid table so the deep branches are reached.
        let valid = build(&[
            (VCEK_GUID, b"vcek-bytes".as_slice()),
            (ASK_GUID, b"ask".as_slice()),
        ]);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut input = if round % 2 == 0 {
                valid.clone()
            } else {
                let len = (next() % 200) as usize;
                (0..len).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if input.is_empty() {
                    break;
                }
                let at = (next() as usize) % input.len();
                input[at] = next() as u8;
            }
            if let Ok(entries) = parse(&input) {
                for e in &entries {
                    assert!(!e.der.is_empty());
                }
                let _ = snp_certs(&entries);
            }
        }
    }
}
