//! c2sp.org/tlog-tiles: where each piece of a tiled log lives, and what it holds.
//!
//! A tile at level `L`, index `N` and width `W` holds the `W` hashes
//! `MTH(D[(N·256+i)·256^L .. (N·256+i+1)·256^L])`; level 0 holds leaf hashes. The entry bundle
//! with index `N` holds entries `N·256 ..` as big-endian u16 length-prefixed records.

use crate::merkle::{root, Hash};

/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// The largest entry an entry bundle can carry (its length prefix is a u16).
pub const MAX_ENTRY: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("not a tile path: {0}")]
    Path(&'static str),
    #[error("tile {path} should hold {want} bytes, it holds {got}")]
    Size {
        path: String,
        want: usize,
        got: usize,
    },
    #[error("entry bundle is malformed: {0}")]
    Bundle(&'static str),
    #[error("entry bundle {path} should hold {want} entries, it holds {got}")]
    BundleCount {
        path: String,
        want: usize,
        got: usize,
    },
    #[error("an entry of {0} bytes does not fit an entry bundle (at most 65535)")]
    EntryTooLarge(usize),
    #[error("the tree does not have the leaves this tile covers")]
    Beyond,
}

/// One hash tile (`level` ≥ 0) or entry bundle, full (`width` 256) or partial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    pub kind: TileKind,
    pub index: u64,
    /// 1..=256; 256 is a full tile.
    pub width: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl Tile {
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The path below the log's prefix, e.g. `tile/0/x001/234` or `tile/entries/000.p/5`.
    pub fn path(&self) -> String {
        let level = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_string(),
        };
        let mut p = format!("tile/{level}/{}", encode_index(self.index));
        if !self.is_full() {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parses a path made by [`Tile::path`]; anything else is refused.
    pub fn parse_path(path: &str) -> Result<Tile, TileError> {
        let rest = path
            .strip_prefix("tile/")
            .ok_or(TileError::Path("does not start with tile/"))?;
        let (level, rest) = rest.split_once('/').ok_or(TileError::Path("no level"))?;
        let kind = if level == "entries" {
            TileKind::Entries
        } else {
            if level.is_empty() || (level.len() > 1 && level.starts_with('0')) {
                return Err(TileError::Path("level has leading zeroes"));
            }
            let level: u8 = level.parse().map_err(|_| TileError::Path("bad level"))?;
            if level > 63 {
                return Err(TileError::Path("level above 63"));
            }
            TileKind::Hashes { level }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(TileError::Path("bad partial width"));
                }
                let w: u16 = w
                    .parse()
                    .map_err(|_| TileError::Path("bad partial width"))?;
                if !(1..TILE_WIDTH as u16).contains(&w) {
                    return Err(TileError::Path("partial width outside 1..=255"));
                }
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let groups: Vec<&str> = index_part.split('/').collect();
        let mut index: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x')
                    .ok_or(TileError::Path("index group without x"))?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TileError::Path("index group is not 3 digits"));
            }
            let v: u64 = digits.parse().map_err(|_| TileError::Path("bad index"))?;
            index = index
                .checked_mul(1000)
                .and_then(|x| x.checked_add(v))
                .ok_or(TileError::Path("index too large"))?;
        }
        let tile = Tile { kind, index, width };
        // One spelling per tile: refuse e.g. `x000/005` for index 5.
        if tile.path() != path {
            return Err(TileError::Path("not in canonical form"));
        }
        Ok(tile)
    }
}

fn pow256(level: u8) -> Option<u64> {
    1u64.checked_shl(8 * u32::from(level))
}

/// Every hash tile a tree of `size` leaves is served as (partial ones at the right edge).
pub fn hash_tiles(size: u64) -> Vec<Tile> {
    let mut out = Vec::new();
    for level in 0u8..=7 {
        let Some(unit) = pow256(level) else { break };
        let hashes = size / unit;
        if hashes == 0 {
            break;
        }
        for index in 0..hashes / TILE_WIDTH {
            out.push(Tile {
                kind: TileKind::Hashes { level },
                index,
                width: TILE_WIDTH as u16,
            });
        }
        let rest = (hashes % TILE_WIDTH) as u16;
        if rest > 0 {
            out.push(Tile {
                kind: TileKind::Hashes { level },
                index: hashes / TILE_WIDTH,
                width: rest,
            });
        }
    }
    out
}

/// The entry bundles that hold entries `from..size` of a tree of `size` leaves.
pub fn entry_bundles(from: u64, size: u64) -> Vec<Tile> {
    if from >= size {
        return Vec::new();
    }
    (from / TILE_WIDTH..=(size - 1) / TILE_WIDTH)
        .map(|index| Tile {
            kind: TileKind::Entries,
            index,
            width: (size - index * TILE_WIDTH).min(TILE_WIDTH) as u16,
        })
        .collect()
}

/// Every entry bundle of a tree of `size` leaves.
pub fn all_entry_bundles(size: u64) -> Vec<Tile> {
    entry_bundles(0, size)
}

/// The contents of a hash tile, computed from all the tree's leaf hashes.
pub fn hash_tile_bytes(leaves: &[Hash], tile: &Tile) -> Result<Vec<u8>, TileError> {
    let TileKind::Hashes { level } = tile.kind else {
        return Err(TileError::Path("an entry bundle is not a hash tile"));
    };
    let unit = pow256(level).ok_or(TileError::Beyond)?;
    let unit = usize::try_from(unit).map_err(|_| TileError::Beyond)?;
    let first = usize::try_from(tile.index * TILE_WIDTH).map_err(|_| TileError::Beyond)?;
    let mut out = Vec::with_capacity(usize::from(tile.width) * 32);
    for i in 0..usize::from(tile.width) {
        let start = (first + i).checked_mul(unit).ok_or(TileError::Beyond)?;
        let end = start.checked_add(unit).ok_or(TileError::Beyond)?;
        let span = leaves.get(start..end).ok_or(TileError::Beyond)?;
        out.extend_from_slice(&root(span));
    }
    Ok(out)
}

/// Splits a hash tile's bytes into its hashes, checking its size against its path.
pub fn parse_hash_tile(tile: &Tile, bytes: &[u8]) -> Result<Vec<Hash>, TileError> {
    let want = usize::from(tile.width) * 32;
    if bytes.len() != want {
        return Err(TileError::Size {
            path: tile.path(),
            want,
            got: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

/// Encodes entries as an entry bundle.
pub fn encode_bundle<E: AsRef<[u8]>>(entries: &[E]) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for e in entries {
        let e = e.as_ref();
        let len = u16::try_from(e.len()).map_err(|_| TileError::EntryTooLarge(e.len()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decodes an entry bundle; it must hold exactly the tile's width of entries.
pub fn decode_bundle<'a>(tile: &Tile, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, TileError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or(TileError::Bundle("truncated length prefix"))?;
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            return Err(TileError::Bundle("truncated entry"));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
        if out.len() > usize::from(tile.width) {
            break;
        }
    }
    if out.len() != usize::from(tile.width) {
        return Err(TileError::BundleCount {
            path: tile.path(),
            want: usize::from(tile.width),
            got: out.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn paths_follow_the_spec() {
        let t = |level, index, width| Tile {
            kind: TileKind::Hashes { level },
            index,
            width,
        };
        assert_eq!(t(0, 1234067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(t(1, 5, 17).path(), "tile/1/005.p/17");
        assert_eq!(
            Tile {
                kind: TileKind::Entries,
                index: 1000,
                width: 3
            }
            .path(),
            "tile/entries/x001/000.p/3"
        );
        for p in [
            "tile/0/x001/x234/067",
            "tile/entries/000.p/5",
            "tile/2/000",
            "tile/63/x999/999",
        ] {
            assert_eq!(Tile::parse_path(p).unwrap().path(), p);
        }
        for bad in [
            "tile/0/x000/005",
            "tile/00/000",
            "tile/0/5",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/05",
            "tile/64/000",
            "tile/0/../000",
            "tile/0/001/002",
            "checkpoint",
        ] {
            assert!(Tile::parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_spec_example_of_70000_leaves() {
        let tiles = hash_tiles(70_000);
        let at = |level: u8| -> Vec<&Tile> {
            tiles
                .iter()
                .filter(|t| t.kind == TileKind::Hashes { level })
                .collect()
        };
        assert_eq!(at(0).len(), 274);
        assert_eq!(at(0).last().unwrap().width, 112);
        assert_eq!(at(1).len(), 2);
        assert_eq!(at(1).last().unwrap().width, 17);
        assert_eq!(at(2).len(), 1);
        assert_eq!(at(2)[0].width, 1);
        assert!(at(3).is_empty());
        let size256 = hash_tiles(256);
        assert_eq!(size256.len(), 2);
        assert_eq!(size256[1].width, 1);
    }

    #[test]
    fn bundles_round_trip_and_refuse_bad_shapes() {
        let entries: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8; i * 10]).collect();
        let bytes = encode_bundle(&entries).unwrap();
        let tile = entry_bundles(0, 5)[0];
        assert_eq!(tile.width, 5);
        let back = decode_bundle(&tile, &bytes).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back[4], entries[4].as_slice());
        assert!(decode_bundle(&tile, &bytes[..bytes.len() - 1]).is_err());
        let narrower = Tile { width: 4, ..tile };
        assert!(decode_bundle(&narrower, &bytes).is_err());
        assert!(encode_bundle(&[vec![0u8; 70_000]]).is_err());
    }

    #[test]
    fn hash_tiles_hold_subtree_roots() {
        let leaves: Vec<Hash> = (0..600u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let level1 = Tile {
            kind: TileKind::Hashes { level: 1 },
            index: 0,
            width: 2,
        };
        let bytes = hash_tile_bytes(&leaves, &level1).unwrap();
        assert_eq!(&bytes[..32], &root(&leaves[..256]));
        assert_eq!(&bytes[32..], &root(&leaves[256..512]));
        let too_wide = Tile { width: 3, ..level1 };
        assert_eq!(hash_tile_bytes(&leaves, &too_wide), Err(TileError::Beyond));
        assert_eq!(entry_bundles(300, 600).len(), 2);
        assert_eq!(entry_bundles(300, 600)[1].width, 88);
        assert!(entry_bundles(5, 5).is_empty());
    }
}
