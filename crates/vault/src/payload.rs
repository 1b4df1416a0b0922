//! What records contain once opened: conversation headers and messages. These hold the user's
//! words, so they zeroize on drop and have no Debug or Display.
//!
//! Headers are small mutable documents edited from several devices; each field carries the time
//! it was last set and [`Header::merge`] keeps the later one (ties broken by value), so two
//! concurrent edits converge to the same header on every device whatever order they arrive in.
//! Messages are immutable: each is its own record, written once, so concurrent appends from
//! two devices never conflict; [`crate::chain`] links them into a per-conversation chain.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Header {
    pub title: String,
    pub title_at: u64,
    /// Empty: not in a folder.
    pub folder: String,
    pub folder_at: u64,
    pub created_at: u64,
}

impl Header {
    pub fn new(title: &str, now_ms: u64) -> Self {
        Header {
            title: title.to_owned(),
            title_at: now_ms,
            folder: String::new(),
            folder_at: now_ms,
            created_at: now_ms,
        }
    }

    /// This header with a new title and/or folder, stamped later than what it replaces even if
    /// the device's clock is behind, so the edit wins the merge against the version it saw.
    pub fn edit(&self, title: Option<&str>, folder: Option<&str>, now_ms: u64) -> Header {
        let mut edit = self.clone();
        if let Some(t) = title {
            edit.title = t.to_owned();
            edit.title_at = now_ms.max(self.title_at.saturating_add(1));
        }
        if let Some(f) = folder {
            edit.folder = f.to_owned();
            edit.folder_at = now_ms.max(self.folder_at.saturating_add(1));
        }
        self.merge(&edit)
    }

    pub fn merge(&self, other: &Header) -> Header {
        let (title, title_at) = later((&self.title, self.title_at), (&other.title, other.title_at));
        let (folder, folder_at) = later(
            (&self.folder, self.folder_at),
            (&other.folder, other.folder_at),
        );
        Header {
            title: title.clone(),
            title_at,
            folder: folder.clone(),
            folder_at,
            created_at: self.created_at.min(other.created_at),
        }
    }
}

fn later<'a>(a: (&'a String, u64), b: (&'a String, u64)) -> (&'a String, u64) {
    if (b.1, b.0) > (a.1, a.0) {
        b
    } else {
        a
    }
}

pub use sotto_api::Role;

/// Why a saved answer is not the whole answer the model would have given.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Incomplete {
    /// Generation stopped at a length limit (the request's `max_tokens`, the enclave's cap, or
    /// a full context) before the model ended its answer.
    Length,
    /// The stream stopped mid-answer: the user stopped it, or the connection broke.
    Interrupted,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Message {
    #[zeroize(skip)]
    pub role: Role,
    pub content: String,
    /// Milliseconds since the epoch on the writing device; orders concurrent messages of a
    /// conversation (after the chain's own order, see [`crate::chain`]).
    pub created_at: u64,
    /// Set on an answer that was cut short, so every device shows it as such; sealed with the
    /// text, so the server can neither see nor change it.
    #[zeroize(skip)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
}

impl Message {
    /// A whole message.
    pub fn new(role: Role, content: &str, created_at: u64) -> Self {
        Message {
            role,
            content: content.to_owned(),
            created_at,
            incomplete: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_header_edits_converge() {
        let base = Header::new("draft", 10);
        let mut a = base.clone();
        a.title = "from laptop".into();
        a.title_at = 20;
        let mut b = base.clone();
        b.folder = "work".into();
        b.folder_at = 21;
        let ab = a.merge(&b);
        let ba = b.merge(&a);
        assert!(ab == ba);
        assert_eq!(ab.title, "from laptop");
        assert_eq!(ab.folder, "work");
        let mut c = base.clone();
        c.title = "other".into();
        c.title_at = 20;
        assert!(a.merge(&c) == c.merge(&a));
    }

    #[test]
    fn an_edit_wins_over_what_it_saw_even_with_a_slow_clock() {
        let seen = Header::new("old", 1_000);
        let edited = seen.edit(Some("new"), None, 10);
        assert_eq!(edited.title, "new");
        assert_eq!(edited.title_at, 1_001);
        assert_eq!(edited.folder, seen.folder);
        assert!(edited.merge(&seen) == edited);
    }
}
