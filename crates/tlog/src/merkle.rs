//! RFC 6962 (and RFC 9162 §2.1) Merkle trees over SHA-256.
//!
//! Leaves are hashed as `SHA-256(0x00 || entry)`, interior nodes as
//! `SHA-256(0x01 || left || right)`; a tree of `n` leaves splits at the largest power of two
//! below `n`. Proofs are made from the leaf hashes of the whole tree (the log has them all) and
//! checked with nothing but the proof, the sizes and the roots (RFC 9162's algorithms).

use sha2::{Digest, Sha256};

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// The most hashes an inclusion or consistency proof of a tree of at most 2^63 leaves needs.
pub const MAX_PROOF_HASHES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the old tree size {old} is larger than the new one {new}")]
    SizesReversed { old: u64, new: u64 },
    #[error("the proof has the wrong number of hashes for these tree sizes")]
    WrongLength,
    #[error("the proof does not lead to the signed root hash")]
    RootMismatch,
    #[error("the proof does not lead to the earlier root hash")]
    OldRootMismatch,
}

/// The root hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The hash of one log entry.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

fn to_index(v: u64) -> Result<usize, ProofError> {
    usize::try_from(v).map_err(|_| ProofError::WrongLength)
}

/// The audit path of leaf `index` in the tree of the first `size` leaves (RFC 6962 PATH).
pub fn prove_inclusion(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size || size > leaves.len() as u64 {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(to_index(index)?, &leaves[..to_index(size)?], &mut out);
    Ok(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(m, &d[..k], out);
        out.push(root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(root(&d[..k]));
    }
}

/// The consistency proof from the tree of the first `old` leaves to the tree of the first
/// `new` (RFC 6962 PROOF). Empty when `old` is 0 or equal to `new`.
pub fn prove_consistency(leaves: &[Hash], old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed { old, new });
    }
    if new > leaves.len() as u64 {
        return Err(ProofError::IndexOutOfRange {
            index: new,
            size: leaves.len() as u64,
        });
    }
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(to_index(old)?, &leaves[..to_index(new)?], true, &mut out);
    }
    Ok(out)
}

fn subproof(m: usize, d: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !whole {
            out.push(root(d));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &d[..k], whole, out);
        out.push(root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(root(&d[..k]));
    }
}

/// Checks that `leaf` is the leaf at `index` of the tree of `size` leaves whose root is `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::WrongLength);
    }
    let mut r = *leaf;
    walk_proof(index, size - 1, proof, |p, left| {
        r = if left {
            node_hash(p, &r)
        } else {
            node_hash(&r, p)
        };
    })?;
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root` (RFC 9162 §2.1.4.2). The empty tree is a prefix of every tree
/// and needs an empty proof; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::SizesReversed { old, new });
    }
    if old == 0 || old == new {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if old == new && old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        if old == 0 && old_root != &empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        return Ok(());
    }
    if proof.is_empty() || proof.len() > MAX_PROOF_HASHES {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    walk_proof(fnode, snode, &path[1..], |c, left| {
        if left {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
        } else {
            sr = node_hash(&sr, c);
        }
    })?;
    if &fr != old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Walks a proof up from node `fnode` of a tree whose last node at that level is `snode`
/// (RFC 9162 §2.1.3.2 and §2.1.4.2 share this loop), telling `step` for each proof hash whether
/// it is the left sibling. The proof must end exactly at the root.
fn walk_proof(
    mut fnode: u64,
    mut snode: u64,
    proof: &[Hash],
    mut step: impl FnMut(&Hash, bool),
) -> Result<(), ProofError> {
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        let left = fnode & 1 == 1 || fnode == snode;
        step(p, left);
        if left {
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    Ok(())
}

/// The right edge of a tree: the roots of its maximal complete subtrees, largest first. A
/// verifier that trusts a tree of `size` leaves grows it leaf by leaf and compares the new root
/// with a signed one, which proves both that the new leaves are included and that the new tree
/// extends the old one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    /// The compact range of a whole tree.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut range = Self::new();
        for leaf in leaves {
            range.push(*leaf);
        }
        range
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            if let Some(left) = self.nodes.pop() {
                h = node_hash(&left, &h);
            }
            s >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// The tree head of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn rfc6962_shapes() {
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(root(&[]), empty_root());
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn compact_range_matches_root() {
        let l = leaves(70);
        let mut range = CompactRange::new();
        for (i, leaf) in l.iter().enumerate() {
            assert_eq!(range.root(), root(&l[..i]));
            range.push(*leaf);
        }
        assert_eq!(range.root(), root(&l));
        assert_eq!(range.size(), 70);
    }

    #[test]
    fn every_inclusion_proof_verifies_and_a_changed_one_does_not() {
        let l = leaves(33);
        for size in 1..=33u64 {
            let r = root(&l[..size as usize]);
            for index in 0..size {
                let p = prove_inclusion(&l, index, size).unwrap();
                verify_inclusion(index, size, &l[index as usize], &p, &r).unwrap();
                let other = (index + 1) % size;
                if other != index {
                    assert!(verify_inclusion(other, size, &l[index as usize], &p, &r).is_err());
                }
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(index, size, &l[index as usize], &bad, &r).is_err());
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_a_fork_does_not() {
        let l = leaves(33);
        for new in 0..=33u64 {
            let new_root = root(&l[..new as usize]);
            for old in 0..=new {
                let old_root = root(&l[..old as usize]);
                let p = prove_consistency(&l, old, new).unwrap();
                verify_consistency(old, new, &old_root, &new_root, &p).unwrap();
                if old > 0 && old < new {
                    let mut forked = l.clone();
                    forked[old as usize - 1] = leaf_hash(b"forked");
                    let forked_old = root(&forked[..old as usize]);
                    assert!(verify_consistency(old, new, &forked_old, &new_root, &p).is_err());
                    assert!(verify_consistency(old, new, &old_root, &new_root, &p[1..]).is_err());
                }
            }
        }
        assert_eq!(
            verify_consistency(5, 4, &empty_root(), &empty_root(), &[]),
            Err(ProofError::SizesReversed { old: 5, new: 4 })
        );
    }
}
