//! The per-conversation chain: every message record commits to the messages before it, so a
//! server that drops, withholds or reorders a message is caught by the first later message a
//! client holds.
//!
//! Each message record (`m.<conv>.<msg>`) seals an *entry*: its position, the links to the
//! entries its writer knew as the conversation's heads (those no other entry followed yet),
//! and a body: a message, or a *removal* of earlier messages (deleting a message). A link is
//! `(message id, position, digest)`, the digest being SHA-256 of the linked record's id and
//! sealed plaintext, which holds that entry's own links: a hash chain. All of it is inside
//! the AEAD, so the server sees none of it and can forge none of it.
//!
//! Positions: an entry is one past the highest entry it follows (0 for a first message), so
//! positions only grow along links and order a conversation whatever order records arrive in.
//!
//! Forks: two devices that append at once both follow the same heads; the conversation then
//! has two entries at one position. That is not an error: both are kept, shown in the order
//! of their times (after everything they follow), and the next entry either device writes
//! follows both heads, which joins the fork. Nothing is lost and no writer has to retry.
//!
//! Deletion: deleting a message writes a removal entry naming it (by link) before the
//! message's record is deleted. A link to a message that is absent is accepted only when a
//! removal the client holds names that very message; a server that deletes a message on its
//! own (a deletion marker carries no ciphertext, so it can forge one) leaves a link nothing
//! accounts for, and is caught. A message that is present but removed is hidden: between the
//! removal's write and the record's deletion that is the honest state, and afterwards a
//! server that restores the record gains nothing.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::keys::framed;
use crate::payload::Message;
use crate::VaultError;

/// SHA-256 of one entry's record id and sealed plaintext. A hash of the user's words, so it
/// never leaves a sealed record, and has no Debug or Display that could put it in a log.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text).map_err(D::Error::custom)?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| D::Error::custom("a digest is 32 bytes"))?;
        Ok(Digest(bytes))
    }
}

/// A reference to one entry of the same conversation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The entry's message id (the `<msg>` of `m.<conv>.<msg>`).
    pub msg: String,
    pub position: u64,
    pub digest: Digest,
}

/// What an entry says.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    Message(Message),
    /// The user deleted these messages (a regenerated answer replaces the old one).
    Removal {
        removes: Vec<Link>,
    },
}

/// One entry of a conversation's chain, authenticated: only [`crate::Vault`] makes these,
/// by sealing or by opening a record, so its link is the record's true one.
#[derive(Clone)]
pub struct Entry {
    link: Link,
    after: Vec<Link>,
    body: Body,
}

impl Entry {
    /// The link a later entry uses to follow (or remove) this one.
    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn msg(&self) -> &str {
        &self.link.msg
    }

    pub fn position(&self) -> u64 {
        self.link.position
    }

    /// The entries this one follows.
    pub fn after(&self) -> &[Link] {
        &self.after
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The message this entry carries, if it is not a removal.
    pub fn message(&self) -> Option<&Message> {
        match &self.body {
            Body::Message(m) => Some(m),
            Body::Removal { .. } => None,
        }
    }

    /// What orders this entry among those ready to be placed. A removal is never shown, so
    /// it takes no time of its own: placed as soon as what it follows is, it lets its followers
    /// come by their own times.
    fn created_at(&self) -> u64 {
        match &self.body {
            Body::Message(m) => m.created_at,
            Body::Removal { .. } => 0,
        }
    }
}

/// The sealed plaintext of a message record.
#[derive(Serialize)]
struct PlainRef<'a> {
    position: u64,
    after: &'a [Link],
    body: &'a Body,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    position: u64,
    after: Vec<Link>,
    body: Body,
}

fn digest(record_id: &str, plaintext: &[u8]) -> Digest {
    Digest(
        Sha256::digest(framed(&[
            b"sotto/chain/v1",
            record_id.as_bytes(),
            plaintext,
        ]))
        .into(),
    )
}

/// The position of an entry that follows `after`: one past the highest, 0 after nothing.
fn position_after(after: &[Link]) -> Option<u64> {
    match after.iter().map(|l| l.position).max() {
        Some(p) => p.checked_add(1),
        None => Some(0),
    }
}

/// A new entry following `after` and its plaintext to seal under `record_id`.
pub(crate) fn new_entry(
    msg: String,
    record_id: &str,
    mut after: Vec<Link>,
    body: Body,
) -> Result<(Entry, Zeroizing<Vec<u8>>), VaultError> {
    after.sort_by(|a, b| (a.position, &a.msg).cmp(&(b.position, &b.msg)));
    after.dedup_by(|a, b| a.msg == b.msg);
    let position = position_after(&after).ok_or(VaultError::Encode)?;
    let plain = PlainRef {
        position,
        after: &after,
        body: &body,
    };
    let bytes = Zeroizing::new(serde_json::to_vec(&plain).map_err(|_| VaultError::Encode)?);
    let link = Link {
        msg,
        position,
        digest: digest(record_id, &bytes),
    };
    Ok((Entry { link, after, body }, bytes))
}

/// The entry an opened record's plaintext holds, or `None` if it is not one.
pub(crate) fn open_entry(msg: String, record_id: &str, plaintext: &[u8]) -> Option<Entry> {
    let plain: Plain = serde_json::from_slice(plaintext).ok()?;
    let link = Link {
        msg,
        position: plain.position,
        digest: digest(record_id, plaintext),
    };
    Some(Entry {
        link,
        after: plain.after,
        body: plain.body,
    })
}

/// What is wrong with a conversation's chain. Each names the conversation and the position
/// of the message concerned, which is what a user can find again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("conversation {conv}: the message at position {position} is missing: a later message follows it, and no deletion by you accounts for it, so the server dropped or withheld it")]
    Missing { conv: String, position: u64 },
    #[error("conversation {conv}: the message at position {position} is out of order: its place does not follow the messages it comes after")]
    OutOfOrder { conv: String, position: u64 },
    #[error("conversation {conv}: the message at position {position} was deleted, and the server served it again")]
    Replayed { conv: String, position: u64 },
    #[error("conversation {conv}: the message at position {position} is not the one the messages after it name")]
    Substituted { conv: String, position: u64 },
}

/// A chain check that failed: the error, and the message id of the entry that showed it.
pub struct Broken {
    pub msg: String,
    pub error: ChainError,
}

/// Checks a conversation's chain over the entries a client holds (by message id) and returns
/// the ids of the messages to show, in order: every entry after everything it follows,
/// concurrent ones by time, then position, then id. Removals and the messages they remove
/// are not shown.
///
/// Every link must name an entry held at that position with that digest, or a message a held
/// removal names with the same link. Entries are checked in position order, so of several
/// gaps the first one is named.
pub fn verify<'a>(
    conv: &str,
    entries: &'a BTreeMap<String, Entry>,
) -> Result<Vec<&'a str>, Broken> {
    let fail = |at: &Entry, problem: Problem, position: u64| Broken {
        msg: at.link.msg.clone(),
        error: problem.at(conv, position),
    };
    let mut in_order: Vec<&Entry> = entries.values().collect();
    in_order.sort_by(|a, b| (a.position(), a.msg()).cmp(&(b.position(), b.msg())));

    let mut removed: BTreeMap<&str, &Link> = BTreeMap::new();
    for e in &in_order {
        let Body::Removal { removes, .. } = &e.body else {
            continue;
        };
        for r in removes {
            // A removal is written by a device that holds what it removes: it comes later.
            if r.position >= e.position() {
                return Err(fail(e, Problem::OutOfOrder, e.position()));
            }
            if removed.insert(&r.msg, r).is_some_and(|seen| seen != r) {
                return Err(fail(e, Problem::Substituted, r.position));
            }
        }
    }
    for e in &in_order {
        if position_after(&e.after) != Some(e.position()) {
            return Err(fail(e, Problem::OutOfOrder, e.position()));
        }
        for l in &e.after {
            match entries.get(&l.msg) {
                Some(p) if p.position() != l.position => {
                    return Err(fail(e, Problem::OutOfOrder, l.position))
                }
                Some(p) if p.link.digest != l.digest => {
                    return Err(fail(e, Problem::Substituted, l.position))
                }
                Some(_) => {}
                None if removed.get(l.msg.as_str()).is_some_and(|r| *r == l) => {}
                None => return Err(fail(e, Problem::Missing, l.position)),
            }
        }
    }
    for (msg, r) in &removed {
        if let Some(p) = entries.get(*msg) {
            if p.link != **r {
                return Err(fail(p, Problem::Substituted, r.position));
            }
        }
    }
    Ok(display_order(&in_order, entries, &removed))
}

/// Kahn's topological order over the entries held, the ready entry with the earliest
/// (time, position, id) first; positions grow along every link (checked before), so there is
/// no cycle and every entry comes out. Only messages not removed are returned.
fn display_order<'a>(
    in_order: &[&'a Entry],
    entries: &BTreeMap<String, Entry>,
    removed: &BTreeMap<&str, &Link>,
) -> Vec<&'a str> {
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut followers: BTreeMap<&str, Vec<&'a Entry>> = BTreeMap::new();
    for &e in in_order {
        let mut held = 0;
        for l in e.after.iter().filter(|l| entries.contains_key(&l.msg)) {
            followers.entry(l.msg.as_str()).or_default().push(e);
            held += 1;
        }
        waiting.insert(e.msg(), held);
    }
    let mut ready: BinaryHeap<Ready<'a>> = in_order
        .iter()
        .filter(|e| waiting.get(e.msg()) == Some(&0))
        .map(|&e| Ready(e))
        .collect();
    let mut shown = Vec::new();
    while let Some(Ready(e)) = ready.pop() {
        if e.message().is_some() && !removed.contains_key(e.msg()) {
            shown.push(e.msg());
        }
        for &f in followers.get(e.msg()).into_iter().flatten() {
            if let Some(n) = waiting.get_mut(f.msg()) {
                *n -= 1;
                if *n == 0 {
                    ready.push(Ready(f));
                }
            }
        }
    }
    shown
}

#[derive(Clone, Copy)]
enum Problem {
    Missing,
    OutOfOrder,
    Substituted,
}

impl Problem {
    fn at(self, conv: &str, position: u64) -> ChainError {
        let conv = conv.to_owned();
        match self {
            Problem::Missing => ChainError::Missing { conv, position },
            Problem::OutOfOrder => ChainError::OutOfOrder { conv, position },
            Problem::Substituted => ChainError::Substituted { conv, position },
        }
    }
}

/// An entry whose predecessors have all been placed; the heap's top is the earliest.
struct Ready<'a>(&'a Entry);

impl Ready<'_> {
    fn key(&self) -> Reverse<(u64, u64, &str)> {
        Reverse((self.0.created_at(), self.0.position(), self.0.msg()))
    }
}

impl PartialEq for Ready<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Ready<'_> {}

impl PartialOrd for Ready<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ready<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The heads of a conversation: the entries no other held entry follows. A new entry follows
/// all of them, which joins any fork.
pub fn heads(entries: &BTreeMap<String, Entry>) -> Vec<Link> {
    let followed: std::collections::BTreeSet<&str> = entries
        .values()
        .flat_map(|e| e.after.iter().map(|l| l.msg.as_str()))
        .collect();
    entries
        .values()
        .filter(|e| !followed.contains(e.msg()))
        .map(|e| e.link.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Role;

    const CONV: &str = "c0nv";

    fn add(entries: &mut BTreeMap<String, Entry>, msg: &str, after: Vec<Link>, body: Body) -> Link {
        let id = format!("m.{CONV}.{msg}");
        let (entry, _) = new_entry(msg.to_owned(), &id, after, body).unwrap();
        let link = entry.link.clone();
        entries.insert(msg.to_owned(), entry);
        link
    }

    fn said(text: &str, at: u64) -> Body {
        Body::Message(Message::new(Role::User, text, at))
    }

    fn texts(entries: &BTreeMap<String, Entry>) -> Vec<String> {
        verify(CONV, entries)
            .unwrap_or_else(|b| panic!("{}", b.error))
            .into_iter()
            .map(|m| entries[m].message().unwrap().content.clone())
            .collect()
    }

    /// The `ChainError` variant named, for [`CONV`] at `position`.
    macro_rules! broken_at {
        ($variant:ident, $position:expr) => {
            ChainError::$variant {
                conv: CONV.into(),
                position: $position,
            }
        };
    }

    fn error(entries: &BTreeMap<String, Entry>) -> ChainError {
        match verify(CONV, entries) {
            Ok(_) => panic!("accepted"),
            Err(b) => b.error,
        }
    }

    #[test]
    fn a_line_shows_in_chain_order_whatever_the_clocks_say() {
        let mut e = BTreeMap::new();
        let a = add(&mut e, "a", vec![], said("one", 30));
        let b = add(&mut e, "b", vec![a], said("two", 20));
        add(&mut e, "c", vec![b.clone()], said("three", 10));
        assert_eq!(texts(&e), ["one", "two", "three"]);
        assert_eq!(heads(&e).len(), 1);
        assert_eq!(e["c"].position(), 2);
    }

    #[test]
    fn a_fork_keeps_both_sides_and_the_next_entry_joins_it() {
        let mut e = BTreeMap::new();
        let q = add(&mut e, "q", vec![], said("question", 1));
        let l = add(&mut e, "l", vec![q.clone()], said("laptop", 3));
        let p = add(&mut e, "p", vec![q], said("phone", 2));
        assert_eq!(texts(&e), ["question", "phone", "laptop"]);
        let heads = heads(&e);
        assert_eq!(heads.len(), 2);
        add(&mut e, "j", heads, said("joined", 4));
        assert!(e["j"].after() == [l, p]);
        assert_eq!(texts(&e), ["question", "phone", "laptop", "joined"]);
        // Dropping either side is now caught.
        for gone in ["l", "p"] {
            let mut dropped = e.clone();
            dropped.remove(gone);
            assert_eq!(error(&dropped), broken_at!(Missing, 1));
        }
    }

    #[test]
    fn a_gap_is_named_by_its_position() {
        let mut e = BTreeMap::new();
        let mut last = vec![];
        for (i, m) in ["a", "b", "c", "d"].into_iter().enumerate() {
            last = vec![add(&mut e, m, last, said(m, i as u64))];
        }
        e.remove("b");
        assert_eq!(error(&e), broken_at!(Missing, 1));
        // The last message withheld leaves nothing to notice: the one gap a chain cannot see.
        let mut tail = BTreeMap::new();
        let a = add(&mut tail, "a", vec![], said("a", 1));
        add(&mut tail, "b", vec![a], said("b", 2));
        tail.remove("b");
        assert_eq!(texts(&tail), ["a"]);
    }

    #[test]
    fn a_removal_accounts_for_the_message_it_names_and_hides_it() {
        let mut e = BTreeMap::new();
        let q = add(&mut e, "q", vec![], said("question", 1));
        let old = add(&mut e, "old", vec![q], said("old answer", 2));
        let new = add(&mut e, "new", vec![old.clone()], said("new answer", 3));
        let removal = Body::Removal { removes: vec![old] };
        add(&mut e, "r", vec![new], removal);
        // Before the old record is deleted, and after.
        assert_eq!(texts(&e), ["question", "new answer"]);
        e.remove("old");
        assert_eq!(texts(&e), ["question", "new answer"]);
        // Without the removal, the deleted message is a gap.
        e.remove("r");
        assert_eq!(error(&e), broken_at!(Missing, 1));
    }

    #[test]
    fn a_removal_names_one_message_exactly() {
        let mut e = BTreeMap::new();
        let q = add(&mut e, "q", vec![], said("question", 1));
        let a = add(&mut e, "a", vec![q.clone()], said("answer", 2));
        let mut wrong = a.clone();
        wrong.digest = q.digest;
        let removal = Body::Removal {
            removes: vec![wrong],
        };
        add(&mut e, "r", vec![a], removal);
        assert_eq!(error(&e), broken_at!(Substituted, 1));
    }

    #[test]
    fn links_that_contradict_the_entries_held_are_refused() {
        let mut e = BTreeMap::new();
        let a = add(&mut e, "a", vec![], said("a", 1));
        let b = add(&mut e, "b", vec![a.clone()], said("b", 2));
        // A writer that puts the first message at another position than its own.
        let mut misplaced = a.clone();
        misplaced.position = 5;
        let mut bad = e.clone();
        add(&mut bad, "x", vec![misplaced], said("x", 3));
        assert_eq!(error(&bad), broken_at!(OutOfOrder, 5));
        // A link to the right id and position with another message's digest.
        let mut swapped = a.clone();
        swapped.digest = b.digest;
        let mut bad = e.clone();
        add(&mut bad, "y", vec![swapped], said("y", 3));
        assert_eq!(error(&bad), broken_at!(Substituted, 0));
        // An entry whose own position does not follow its links.
        let mut bad = e.clone();
        let (mut entry, _) = new_entry("z".into(), "m.c0nv.z", vec![b], said("z", 3)).unwrap();
        entry.link.position = 1;
        bad.insert("z".into(), entry);
        assert_eq!(error(&bad), broken_at!(OutOfOrder, 1));
    }

    #[test]
    fn the_digest_covers_the_record_id_and_every_byte() {
        let (entry, bytes) = new_entry("m".into(), "m.c.m", vec![], said("hi", 1)).unwrap();
        let opened = open_entry("m".into(), "m.c.m", &bytes).unwrap();
        assert!(opened.link == entry.link);
        let elsewhere = open_entry("m".into(), "m.d.m", &bytes).unwrap();
        assert!(elsewhere.link.digest != entry.link.digest);
        let mut changed = bytes.to_vec();
        let at = changed.iter().position(|&b| b == b'h').unwrap();
        changed[at] = b'H';
        assert!(
            open_entry("m".into(), "m.c.m", &changed)
                .unwrap()
                .link
                .digest
                != entry.link.digest
        );
        assert!(open_entry("m".into(), "m.c.m", b"{\"role\":\"user\"}").is_none());
    }
}
