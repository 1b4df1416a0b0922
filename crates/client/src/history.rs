//! Encrypted history: the fold over the server's change feed, and the writes that make it.
//!
//! [`Pull`] fetches every change since the last pull and opens it through the vault, which
//! refuses anything moved, replayed, rolled back or altered; one refused record refuses the
//! whole pull and leaves the history as it was, naming the record. The first pull opens
//! everything; later ones only what changed, deletion markers included (a conversation's key,
//! its header, or one message). Messages are append-only records with random ids, so two
//! devices writing to one conversation never conflict; headers are compare-and-swap writes
//! that [`EditHeader`] merges and retries on conflict.

use std::collections::{BTreeMap, VecDeque};

use sotto_api::{routes, Changes, Deleted, RecordOut};
use sotto_vault::{Header, Message, Opened, RecordName, Role};

use crate::account::Unlocked;
use crate::flow::{http, Answer, Step, VaultFlow};
use crate::http::{ClientError, Request};

/// One decrypted conversation. Holds the user's words: no Debug.
#[derive(Clone)]
pub struct Conversation {
    pub id: String,
    pub header: Option<Header>,
    pub header_version: u64,
    /// `(message id, message)`, ordered by (created_at, message id).
    pub messages: Vec<(String, Message)>,
}

impl Conversation {
    fn new(id: String) -> Self {
        Conversation {
            id,
            header: None,
            header_version: 0,
            messages: Vec::new(),
        }
    }

    pub fn title(&self) -> &str {
        self.header
            .as_ref()
            .map(|h| h.title.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("(untitled)")
    }

    pub fn folder(&self) -> &str {
        self.header
            .as_ref()
            .map(|h| h.folder.as_str())
            .unwrap_or("")
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

    /// The record id of one of this conversation's messages.
    pub fn message_record(&self, msg: &str) -> String {
        RecordName::Message {
            conv: self.id.clone(),
            msg: msg.to_owned(),
        }
        .id()
    }

    fn sort(&mut self) {
        self.messages
            .sort_by(|(ia, a), (ib, b)| (a.created_at, ia).cmp(&(b.created_at, ib)));
    }
}

/// The history as far as it has been pulled, and where the next pull starts.
#[derive(Clone, Default)]
pub struct History {
    conversations: BTreeMap<String, Conversation>,
    since: u64,
}

impl History {
    /// Every conversation, by id.
    pub fn conversations(&self) -> &BTreeMap<String, Conversation> {
        &self.conversations
    }

    pub fn get(&self, conv: &str) -> Option<&Conversation> {
        self.conversations.get(conv)
    }

    /// The one conversation whose id starts with `prefix`.
    pub fn find(&self, prefix: &str) -> Result<&Conversation, ClientError> {
        let mut hits = self
            .conversations
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        match (hits.next(), hits.next()) {
            (Some((_, c)), None) => Ok(c),
            (Some(_), Some(_)) if !prefix.is_empty() => {
                Err(ClientError::Ambiguous(prefix.to_owned()))
            }
            _ => Err(ClientError::NoConversation(prefix.to_owned())),
        }
    }

    /// Conversations, most recently updated first.
    pub fn by_recency(&self) -> Vec<&Conversation> {
        let mut v: Vec<&Conversation> = self.conversations.values().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.updated_at()));
        v
    }

    /// Applies opened records (conversation keys first, as `Vault::open_batch` orders them).
    fn apply(&mut self, opened: Vec<(u64, Opened)>) {
        let mut touched = Vec::new();
        for (version, item) in opened {
            match item {
                Opened::ConversationKey { conv } => {
                    self.conversations
                        .entry(conv.clone())
                        .or_insert_with(|| Conversation::new(conv));
                }
                Opened::Header { conv, header } => {
                    if let Some(c) = self.conversations.get_mut(&conv) {
                        c.header = Some(header);
                        c.header_version = version;
                    }
                }
                Opened::Message { conv, msg, message } => {
                    if let Some(c) = self.conversations.get_mut(&conv) {
                        c.messages.retain(|(id, _)| *id != msg);
                        c.messages.push((msg, message));
                        touched.push(conv);
                    }
                }
                Opened::Deleted { name, .. } => match name {
                    RecordName::ConversationKey { conv } => {
                        self.conversations.remove(&conv);
                    }
                    RecordName::ConversationHeader { conv } => {
                        if let Some(c) = self.conversations.get_mut(&conv) {
                            c.header = None;
                            c.header_version = version;
                        }
                    }
                    RecordName::Message { conv, msg } => {
                        if let Some(c) = self.conversations.get_mut(&conv) {
                            c.messages.retain(|(id, _)| *id != msg);
                        }
                    }
                    RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => {}
                },
                Opened::Wrap { .. } => {}
            }
        }
        for conv in touched {
            if let Some(c) = self.conversations.get_mut(&conv) {
                c.sort();
            }
        }
    }
}

/// Pulls every change since the last pull into [`Unlocked::history`], following pages, and
/// ends with the number of records that changed.
#[derive(Default)]
pub struct Pull {
    records: Vec<RecordOut>,
    next: Option<u64>,
}

impl Pull {
    pub fn new() -> Self {
        Pull::default()
    }
}

impl VaultFlow for Pull {
    type Output = usize;

    fn next(
        &mut self,
        u: &mut Unlocked,
        answer: Option<Answer>,
    ) -> Result<Step<usize>, ClientError> {
        let Some(since) = self.next else {
            self.next = Some(u.history.since);
            return Ok(Step::Send(u.session.changes(u.history.since)));
        };
        let page: Changes = http(answer)?.json()?;
        if page.next < since {
            return Err(ClientError::Protocol(
                "the server's change feed went backwards",
            ));
        }
        self.records.extend(page.records);
        self.next = Some(page.next);
        if page.more {
            return Ok(Step::Send(u.session.changes(page.next)));
        }
        let records = std::mem::take(&mut self.records);
        let mut opened = Vec::with_capacity(records.len());
        for (id, version, result) in u.vault.open_batch(&records) {
            opened.push((
                version,
                result.map_err(|reason| ClientError::Refused { id, reason })?,
            ));
        }
        let changed = opened.len();
        u.history.apply(opened);
        u.history.since = page.next;
        Ok(Step::Done(changed))
    }
}

/// Makes sure the vault holds a conversation's key, fetching and opening its record if this
/// session has not seen it.
pub struct EnsureKey {
    conv: String,
    asked: bool,
}

impl EnsureKey {
    pub fn new(conv: &str) -> Self {
        EnsureKey {
            conv: conv.to_owned(),
            asked: false,
        }
    }
}

impl VaultFlow for EnsureKey {
    type Output = ();

    fn next(&mut self, u: &mut Unlocked, answer: Option<Answer>) -> Result<Step<()>, ClientError> {
        if !self.asked {
            if u.vault.has_conversation(&self.conv) {
                return Ok(Step::Done(()));
            }
            self.asked = true;
            let id = RecordName::ConversationKey {
                conv: self.conv.clone(),
            }
            .id();
            return Ok(Step::Send(u.session.get(&id)));
        }
        let resp = http(answer)?;
        if resp.is_not_found() {
            return Err(ClientError::NoConversation(self.conv.clone()));
        }
        let record: RecordOut = resp.json()?;
        match u.vault.open(&record) {
            Ok(Opened::ConversationKey { conv }) if conv == self.conv => Ok(Step::Done(())),
            Ok(_) => Err(ClientError::NoConversation(self.conv.clone())),
            Err(reason) => Err(ClientError::Refused {
                id: record.id,
                reason,
            }),
        }
    }
}

/// How many times [`EditHeader`] re-reads and re-merges after losing a race.
pub const HEADER_ATTEMPTS: u32 = 8;

/// Sets a conversation's title and/or folder, merged over the server's latest header so a
/// concurrent edit of the other field on another device is kept; retried on a version
/// conflict. Ends with the header as saved.
pub struct EditHeader {
    conv: String,
    title: Option<String>,
    folder: Option<String>,
    now_ms: u64,
    attempts: u32,
    state: EditState,
}

enum EditState {
    Key(EnsureKey),
    Read,
    Write { header: Header, version: u64 },
    Spent,
}

impl EditHeader {
    pub fn new(conv: &str, title: Option<&str>, folder: Option<&str>, now_ms: u64) -> Self {
        EditHeader {
            conv: conv.to_owned(),
            title: title.map(str::to_owned),
            folder: folder.map(str::to_owned),
            now_ms,
            attempts: 0,
            state: EditState::Key(EnsureKey::new(conv)),
        }
    }

    fn header_id(&self) -> String {
        RecordName::ConversationHeader {
            conv: self.conv.clone(),
        }
        .id()
    }

    fn read(&mut self, u: &Unlocked) -> Step<Header> {
        self.state = EditState::Read;
        Step::Send(u.session.get(&self.header_id()))
    }
}

impl VaultFlow for EditHeader {
    type Output = Header;

    fn next(
        &mut self,
        u: &mut Unlocked,
        answer: Option<Answer>,
    ) -> Result<Step<Header>, ClientError> {
        match std::mem::replace(&mut self.state, EditState::Spent) {
            EditState::Key(mut key) => match key.next(u, answer)? {
                Step::Done(()) => Ok(self.read(u)),
                step => {
                    self.state = EditState::Key(key);
                    step.pending()
                }
            },
            EditState::Read => {
                let resp = http(answer)?;
                let (base, version) = if resp.is_not_found() {
                    (Header::new("", 0), 0)
                } else {
                    let record: RecordOut = resp.json()?;
                    match u.vault.open(&record) {
                        Ok(Opened::Header { header, .. }) => (header, record.version),
                        Ok(Opened::Deleted { .. }) => (Header::new("", 0), record.version),
                        Ok(_) => return Err(ClientError::NoConversation(self.conv.clone())),
                        Err(reason) => {
                            return Err(ClientError::Refused {
                                id: record.id,
                                reason,
                            })
                        }
                    }
                };
                let header = base.edit(self.title.as_deref(), self.folder.as_deref(), self.now_ms);
                let sealed = u.vault.seal_header(&self.conv, &header, version)?;
                self.state = EditState::Write { header, version };
                Ok(Step::Send(u.session.put(&sealed)?))
            }
            EditState::Write { header, version } => {
                let resp = http(answer)?;
                if resp.is_conflict() {
                    self.attempts += 1;
                    if self.attempts >= HEADER_ATTEMPTS {
                        return Err(ClientError::Contended(HEADER_ATTEMPTS));
                    }
                    return Ok(self.read(u));
                }
                resp.success()?;
                if let Some(c) = u.history.conversations.get_mut(&self.conv) {
                    c.header = Some(header.clone());
                    c.header_version = version + 1;
                }
                Ok(Step::Done(header))
            }
            EditState::Spent => Err(ClientError::State("the header edit is over")),
        }
    }
}

/// Writes sent one after another, each of which must succeed, ending with a result known
/// before the first was sent (the ids the writes create).
pub struct Writes<T> {
    queue: VecDeque<(Request, bool)>,
    waiting: Option<bool>,
    output: Option<T>,
}

impl<T> Writes<T> {
    fn new(output: T) -> Self {
        Writes {
            queue: VecDeque::new(),
            waiting: None,
            output: Some(output),
        }
    }

    fn then(mut self, request: Request) -> Self {
        self.queue.push_back((request, false));
        self
    }

    /// A delete whose record may already be gone.
    fn then_gone(mut self, request: Request) -> Self {
        self.queue.push_back((request, true));
        self
    }
}

/// The title a conversation gets from its first question.
fn title_of(question: &str) -> String {
    question.chars().take(60).collect()
}

impl Writes<(String, Vec<String>)> {
    /// Saves the messages of a turn, starting the conversation (its key, then a header titled
    /// with the first question) when there is none yet. Ends with the conversation id and the
    /// new messages' ids. For an existing conversation, run [`EnsureKey`] first.
    pub fn save_turn(
        u: &mut Unlocked,
        conv: Option<&str>,
        messages: &[(Role, &str, u64)],
    ) -> Result<Self, ClientError> {
        let mut requests = Vec::new();
        let conv = match conv {
            Some(c) => c.to_owned(),
            None => {
                let question = messages
                    .iter()
                    .find(|(role, _, _)| *role == Role::User)
                    .map(|(_, text, _)| *text)
                    .unwrap_or("");
                let at = messages.first().map(|m| m.2).unwrap_or(0);
                let (conv, key) = u.vault.new_conversation()?;
                requests.push(u.session.put(&key)?);
                let header =
                    u.vault
                        .seal_header(&conv, &Header::new(&title_of(question), at), 0)?;
                requests.push(u.session.put(&header)?);
                conv
            }
        };
        let mut ids = Vec::new();
        for (role, content, created_at) in messages {
            let message = Message {
                role: *role,
                content: (*content).to_owned(),
                created_at: *created_at,
            };
            let (msg, sealed) = u.vault.seal_message(&conv, &message)?;
            requests.push(u.session.put(&sealed)?);
            ids.push(msg);
        }
        Ok(requests
            .into_iter()
            .fold(Writes::new((conv, ids)), Writes::then))
    }
}

impl Writes<String> {
    /// Starts a conversation titled `title`: its key first, then its header. Ends with its id.
    pub fn start_conversation(
        u: &mut Unlocked,
        title: &str,
        now_ms: u64,
    ) -> Result<Self, ClientError> {
        let (conv, key) = u.vault.new_conversation()?;
        let header = u.vault.seal_header(&conv, &Header::new(title, now_ms), 0)?;
        let writes = Writes::new(conv).then(u.session.put(&key)?);
        Ok(writes.then(u.session.put(&header)?))
    }
}

/// Deletes one saved message (a regenerated answer replaces the old one); one already gone is
/// not an error.
pub fn delete_message(u: &Unlocked, conv: &str, msg: &str) -> Writes<()> {
    let id = RecordName::Message {
        conv: conv.to_owned(),
        msg: msg.to_owned(),
    }
    .id();
    Writes::new(()).then_gone(u.session.delete(routes::record(&id)))
}

/// Crypto-shreds a conversation: its key, header and messages go in one call. Ends with the
/// number of records the server removed.
pub struct DeleteConversation {
    conv: String,
    sent: bool,
}

impl DeleteConversation {
    pub fn new(conv: &str) -> Self {
        DeleteConversation {
            conv: conv.to_owned(),
            sent: false,
        }
    }
}

impl VaultFlow for DeleteConversation {
    type Output = u64;

    fn next(&mut self, u: &mut Unlocked, answer: Option<Answer>) -> Result<Step<u64>, ClientError> {
        if !self.sent {
            self.sent = true;
            return Ok(Step::Send(u.session.delete(routes::group(&self.conv))));
        }
        let deleted: Deleted = http(answer)?.json()?;
        u.history.conversations.remove(&self.conv);
        Ok(Step::Done(deleted.deleted))
    }
}

impl<T> VaultFlow for Writes<T> {
    type Output = T;

    fn next(&mut self, _: &mut Unlocked, answer: Option<Answer>) -> Result<Step<T>, ClientError> {
        if let Some(gone_ok) = self.waiting.take() {
            let resp = http(answer)?;
            if !(gone_ok && resp.is_not_found()) {
                resp.success()?;
            }
        }
        match self.queue.pop_front() {
            Some((request, gone_ok)) => {
                self.waiting = Some(gone_ok);
                Ok(Step::Send(request))
            }
            None => self
                .output
                .take()
                .map(Step::Done)
                .ok_or(ClientError::State("the writes are done")),
        }
    }
}
