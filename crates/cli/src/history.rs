//! Encrypted history: syncing, reading, writing and exporting conversations.
//!
//! Sync fetches every change and opens it through the vault, which refuses anything moved,
//! replayed, rolled back or altered; one refused record fails the whole sync (fail closed),
//! naming the record. Messages are append-only records with random ids, so two devices
//! writing to one conversation at once never conflict; headers are compare-and-swap writes
//! that merge and retry on conflict.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use sotto_vault::{Header, Message, Opened, RecordName, Role, VaultError};

use crate::account::{now_ms, AccountError, Unlocked};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("refusing the history: {0}")]
    Refused(VaultError),
    #[error("no conversation {0:?} (see `sotto history list`)")]
    NoConversation(String),
    #[error("conversation id {0:?} matches several conversations; give more characters")]
    Ambiguous(String),
    #[error(
        "could not save the conversation header after {0} attempts: other devices keep changing it"
    )]
    Contended(u32),
}

impl From<crate::api::ApiClientError> for HistoryError {
    fn from(e: crate::api::ApiClientError) -> Self {
        HistoryError::Account(e.into())
    }
}

impl From<VaultError> for HistoryError {
    fn from(e: VaultError) -> Self {
        HistoryError::Account(e.into())
    }
}

/// One decrypted conversation. Holds the user's words: no Debug.
pub struct Conversation {
    pub id: String,
    pub header: Option<Header>,
    pub header_version: u64,
    /// Ordered by (created_at, message id).
    pub messages: Vec<(String, Message)>,
}

impl Conversation {
    pub fn title(&self) -> &str {
        self.header
            .as_ref()
            .map(|h| h.title.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("(untitled)")
    }

    pub fn updated_at(&self) -> u64 {
        let last = self.messages.last().map(|(_, m)| m.created_at).unwrap_or(0);
        let head = self
            .header
            .as_ref()
            .map(|h| h.title_at.max(h.folder_at))
            .unwrap_or(0);
        last.max(head)
    }
}

#[derive(Default)]
pub struct History {
    pub conversations: BTreeMap<String, Conversation>,
}

impl History {
    pub fn find(&self, prefix: &str) -> Result<&Conversation, HistoryError> {
        let mut hits = self
            .conversations
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        match (hits.next(), hits.next()) {
            (Some((_, c)), None) => Ok(c),
            (Some(_), Some(_)) if !prefix.is_empty() => Err(HistoryError::Ambiguous(prefix.into())),
            _ => Err(HistoryError::NoConversation(prefix.into())),
        }
    }

    /// Conversations, most recently updated first.
    pub fn by_recency(&self) -> Vec<&Conversation> {
        let mut v: Vec<&Conversation> = self.conversations.values().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.updated_at()));
        v
    }
}

/// Fetches and opens every record of the account.
pub async fn sync(u: &mut Unlocked) -> Result<History, HistoryError> {
    let (records, _) = u.api.all_changes(0).await?;
    let mut history = History::default();
    for (_, version, opened) in u.vault.open_batch(&records) {
        match opened.map_err(HistoryError::Refused)? {
            Opened::ConversationKey { conv } => {
                history
                    .conversations
                    .entry(conv.clone())
                    .or_insert_with(|| Conversation {
                        id: conv,
                        header: None,
                        header_version: 0,
                        messages: Vec::new(),
                    });
            }
            Opened::Header { conv, header } => {
                if let Some(c) = history.conversations.get_mut(&conv) {
                    c.header = Some(header);
                    c.header_version = version;
                }
            }
            Opened::Message { conv, msg, message } => {
                if let Some(c) = history.conversations.get_mut(&conv) {
                    c.messages.push((msg, message));
                }
            }
            Opened::Deleted { name, .. } => {
                if let RecordName::ConversationKey { conv } = name {
                    history.conversations.remove(&conv);
                }
            }
            Opened::Wrap { .. } => {}
        }
    }
    for c in history.conversations.values_mut() {
        c.messages
            .sort_by(|(ia, a), (ib, b)| (a.created_at, ia).cmp(&(b.created_at, ib)));
    }
    Ok(history)
}

/// Starts a conversation: its key first, then its header.
pub async fn start(u: &mut Unlocked, title: &str) -> Result<String, HistoryError> {
    let (conv, key) = u.vault.new_conversation()?;
    u.api.put(&key.id, &key.put).await?;
    let header = u
        .vault
        .seal_header(&conv, &Header::new(title, now_ms()), 0)?;
    u.api.put(&header.id, &header.put).await?;
    Ok(conv)
}

/// Opens a conversation's key from the server if this session has not seen it yet.
async fn ensure_key(u: &mut Unlocked, conv: &str) -> Result<(), HistoryError> {
    if u.vault.has_conversation(conv) {
        return Ok(());
    }
    let record = match u.api.get(&format!("ck.{conv}")).await {
        Err(e) if e.is_not_found() => return Err(HistoryError::NoConversation(conv.into())),
        r => r?,
    };
    match u.vault.open(&record).map_err(HistoryError::Refused)? {
        Opened::ConversationKey { .. } => Ok(()),
        _ => Err(HistoryError::NoConversation(conv.into())),
    }
}

pub async fn append(
    u: &mut Unlocked,
    conv: &str,
    role: Role,
    content: &str,
) -> Result<String, HistoryError> {
    ensure_key(u, conv).await?;
    let message = Message {
        role,
        content: content.to_owned(),
        created_at: now_ms(),
    };
    let (msg, sealed) = u.vault.seal_message(conv, &message)?;
    u.api.put(&sealed.id, &sealed.put).await?;
    Ok(msg)
}

/// Changes the title and/or folder, merging with concurrent edits from other devices.
pub async fn edit_header(
    u: &mut Unlocked,
    conv: &str,
    title: Option<&str>,
    folder: Option<&str>,
) -> Result<(), HistoryError> {
    const ATTEMPTS: u32 = 8;
    ensure_key(u, conv).await?;
    let id = format!("ch.{conv}");
    for _ in 0..ATTEMPTS {
        let (base, version) = match u.api.get(&id).await {
            Ok(r) if r.ciphertext.is_some() => {
                match u.vault.open(&r).map_err(HistoryError::Refused)? {
                    Opened::Header { header, .. } => (header, r.version),
                    _ => return Err(HistoryError::NoConversation(conv.into())),
                }
            }
            Ok(r) => (Header::new("", 0), r.version),
            Err(e) if e.is_not_found() => (Header::new("", 0), 0),
            Err(e) => return Err(e.into()),
        };
        let merged = base.edit(title, folder, now_ms());
        let sealed = u.vault.seal_header(conv, &merged, version)?;
        match u.api.put(&sealed.id, &sealed.put).await {
            Ok(_) => return Ok(()),
            Err(e) if e.conflict().is_some() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(HistoryError::Contended(ATTEMPTS))
}

/// Deletes a conversation: its key record (crypto-shredding) and every record of it.
pub async fn delete(u: &Unlocked, conv: &str) -> Result<u64, HistoryError> {
    Ok(u.api.delete_group(conv).await?.deleted)
}

#[derive(Serialize)]
struct ExportMessage<'a> {
    role: Role,
    content: &'a str,
    created_at: u64,
}

#[derive(Serialize)]
struct ExportConversation<'a> {
    id: &'a str,
    title: &'a str,
    folder: &'a str,
    messages: Vec<ExportMessage<'a>>,
}

/// Plaintext export, for the user's own machine.
pub fn export_json(convs: &[&Conversation]) -> Result<String, HistoryError> {
    let out: Vec<ExportConversation<'_>> = convs
        .iter()
        .map(|c| ExportConversation {
            id: &c.id,
            title: c.title(),
            folder: c.header.as_ref().map(|h| h.folder.as_str()).unwrap_or(""),
            messages: c
                .messages
                .iter()
                .map(|(_, m)| ExportMessage {
                    role: m.role,
                    content: &m.content,
                    created_at: m.created_at,
                })
                .collect(),
        })
        .collect();
    serde_json::to_string_pretty(&out).map_err(|_| HistoryError::Refused(VaultError::Encode))
}

pub fn export_markdown(convs: &[&Conversation]) -> String {
    let mut out = String::new();
    for c in convs {
        let _ = writeln!(out, "# {}\n", c.title());
        for (_, m) in &c.messages {
            let who = match m.role {
                Role::System => "System",
                Role::User => "You",
                Role::Assistant => "Sotto",
            };
            let _ = writeln!(out, "**{who}:**\n\n{}\n", m.content);
        }
    }
    out
}
