//! Encrypted history: syncing, reading, writing and exporting conversations.
//!
//! Sync fetches every change and opens it through the vault, which refuses anything moved,
//! replayed, rolled back or altered, and checks each conversation's chain, which refuses a
//! message dropped, withheld or out of order; one refused record fails the whole sync (fail
//! closed), naming the record (and for a chain, the conversation and the position). Messages
//! are append-only records with random ids, so two devices writing to one conversation at
//! once never conflict; headers are compare-and-swap writes that merge and retry on conflict.

use std::fmt::Write as _;

use serde::Serialize;
use sotto_client::{
    ClientError, Conversation, DeleteConversation, EditHeader, EnsureKey, Pull, Writes,
};
use sotto_vault::{Incomplete, Message, Role, VaultError};

pub use sotto_client::History;

use crate::account::{drive_vault, now_ms, AccountError, Unlocked};

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

impl From<ClientError> for HistoryError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { reason, .. } => HistoryError::Refused(reason),
            ClientError::NoConversation(c) => HistoryError::NoConversation(c),
            ClientError::Ambiguous(c) => HistoryError::Ambiguous(c),
            ClientError::Contended(n) => HistoryError::Contended(n),
            e => HistoryError::Account(e.into()),
        }
    }
}

/// Pulls every change since the last sync of this session (all of it, the first time) and
/// returns the history as it now stands.
pub async fn sync(u: &mut Unlocked) -> Result<History, HistoryError> {
    drive_vault(None, u, Pull::new()).await.map_err(refused)?;
    Ok(u.client.history.clone())
}

/// A refusal inside the core reaches the CLI as an account error; name it as a history one.
fn refused(e: AccountError) -> HistoryError {
    match e {
        AccountError::Client(c) => c.into(),
        e => HistoryError::Account(e),
    }
}

/// Starts a conversation: its key first, then its header.
pub async fn start(u: &mut Unlocked, title: &str) -> Result<String, HistoryError> {
    let writes = Writes::start_conversation(&mut u.client, title, now_ms())?;
    drive_vault(None, u, writes).await.map_err(refused)
}

/// Appends a whole message to a conversation; returns its message id.
pub async fn append(
    u: &mut Unlocked,
    conv: &str,
    role: Role,
    content: &str,
) -> Result<String, HistoryError> {
    append_message(u, conv, Message::new(role, content, now_ms())).await
}

/// Appends a message, following the conversation's messages this session knows of.
pub async fn append_message(
    u: &mut Unlocked,
    conv: &str,
    message: Message,
) -> Result<String, HistoryError> {
    drive_vault(None, u, EnsureKey::new(conv))
        .await
        .map_err(refused)?;
    let writes = Writes::save_turn(&mut u.client, Some(conv), vec![message])?;
    let (_, mut ids) = drive_vault(None, u, writes).await.map_err(refused)?;
    ids.pop()
        .ok_or(HistoryError::Account(AccountError::Protocol(
            "no message was saved",
        )))
}

/// Changes the title and/or folder, merging with concurrent edits from other devices.
pub async fn edit_header(
    u: &mut Unlocked,
    conv: &str,
    title: Option<&str>,
    folder: Option<&str>,
) -> Result<(), HistoryError> {
    let flow = EditHeader::new(conv, title, folder, now_ms());
    drive_vault(None, u, flow).await.map_err(refused)?;
    Ok(())
}

/// Deletes a conversation: its key record (crypto-shredding) and every record of it.
pub async fn delete(u: &mut Unlocked, conv: &str) -> Result<u64, HistoryError> {
    drive_vault(None, u, DeleteConversation::new(conv))
        .await
        .map_err(refused)
}

#[derive(Serialize)]
struct ExportMessage<'a> {
    role: Role,
    content: &'a str,
    created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    incomplete: Option<Incomplete>,
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
            folder: c.folder(),
            messages: c
                .messages()
                .map(|(_, m)| ExportMessage {
                    role: m.role,
                    content: &m.content,
                    created_at: m.created_at,
                    incomplete: m.incomplete,
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
        for (_, m) in c.messages() {
            let who = match m.role {
                Role::System => "System",
                Role::User => "You",
                Role::Assistant => "Sotto",
            };
            let cut = match m.incomplete {
                None => "",
                Some(Incomplete::Length) => " (incomplete: stopped at the length limit)",
                Some(Incomplete::Interrupted) => " (incomplete: interrupted)",
            };
            let _ = writeln!(out, "**{who}:**{cut}\n\n{}\n", m.content);
        }
    }
    out
}
