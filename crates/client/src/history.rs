//! Encrypted history: the fold over the server's change feed, and the writes that make it.
//!
//! [`Pull`] fetches every change since the last pull and opens it through the vault, which
//! refuses anything moved, replayed, rolled back or altered; then every conversation the pull
//! changed has its chain checked ([`sotto_vault::chain`]), which refuses a message dropped,
//! withheld or out of order. One refused record or broken chain refuses the whole pull and
//! leaves the history as it was, naming the record (and for a chain, the conversation and the
//! position). The first pull opens everything; later ones only what changed, deletion markers
//! included (a conversation's key, its header, or one message).
//!
//! Messages are append-only records with random ids, so two devices writing to one
//! conversation never conflict: each new message follows the conversation's heads as this
//! client knows them (what it pulled and what it wrote itself), and concurrent ones fork the
//! chain until the next message follows both. Headers are compare-and-swap writes that
//! [`EditHeader`] merges and retries on conflict.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use sotto_api::{routes, Changes, Deleted, RecordOut};
use sotto_vault::chain::{self, Broken};
use sotto_vault::{Body, Entry, Header, Link, Message, Opened, RecordName, Role, VaultError};

use crate::account::Unlocked;
use crate::flow::{http, Answer, Step, VaultFlow};
use crate::http::{ClientError, Request};

/// One decrypted conversation. Holds the user's words: no Debug.
#[derive(Clone)]
pub struct Conversation {
    pub id: String,
    pub header: Option<Header>,
    pub header_version: u64,
    /// Every entry of its chain this client holds, by message id: messages, removals, and
    /// removed messages whose records are not deleted yet.
    entries: BTreeMap<String, Entry>,
    /// The message ids to show, in order, as the last chain check found them.
    shown: Vec<String>,
}

impl Conversation {
    fn new(id: String) -> Self {
        Conversation {
            id,
            header: None,
            header_version: 0,
            entries: BTreeMap::new(),
            shown: Vec::new(),
        }
    }

    /// `(message id, message)` in the conversation's order: each after every message it
    /// follows, concurrent ones by time. Removed messages are not among them.
    pub fn messages(&self) -> impl Iterator<Item = (&str, &Message)> + '_ {
        self.shown
            .iter()
            .filter_map(|id| Some((id.as_str(), self.entries.get(id)?.message()?)))
    }

    /// The entries a new one follows: every entry no other entry held follows yet.
    fn heads(&self) -> Vec<Link> {
        chain::heads(&self.entries)
    }

    /// The messages the removals this client holds name.
    fn removed(&self) -> impl Iterator<Item = &Link> + '_ {
        self.entries.values().flat_map(|e| match e.body() {
            Body::Removal { removes } => removes.as_slice(),
            Body::Message(_) => &[],
        })
    }

    /// Whether a removal this client holds names `msg`.
    fn is_removed(&self, msg: &str) -> bool {
        self.removed().any(|l| l.msg == msg)
    }

    /// The record ids of removed messages this client no longer holds: deletions of the
    /// user's that are done, whose records must not come back.
    fn deleted_records(&self) -> Vec<String> {
        self.removed()
            .filter(|l| !self.entries.contains_key(&l.msg))
            .map(|l| self.message_record(&l.msg))
            .collect()
    }

    /// Checks the chain over the entries held and, if it holds, orders what is shown.
    fn check(&mut self) -> Result<(), ClientError> {
        let shown = chain::verify(&self.id, &self.entries).map_err(|Broken { msg, error }| {
            ClientError::Refused {
                id: self.message_record(&msg),
                reason: VaultError::Chain(error),
            }
        })?;
        self.shown = shown.into_iter().map(str::to_owned).collect();
        Ok(())
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
        let last = self
            .messages()
            .map(|(_, m)| m.created_at)
            .max()
            .unwrap_or(0);
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
}

/// What a write this client made changes in its own history once the server took it.
enum Local {
    /// The entry the write sealed joins this client's chain of `conv`.
    Entry { conv: String, entry: Entry },
    /// The record of message `msg` is gone.
    Gone { conv: String, msg: String },
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

    /// Applies opened records (conversation keys first, as `Vault::open_batch` orders them)
    /// and checks the chain of every conversation they change; on a broken chain nothing is
    /// applied. Ends with the records of the user's deletions now done.
    fn apply(&mut self, opened: Vec<(u64, Opened)>) -> Result<Vec<String>, ClientError> {
        // The conversations changed, as they will be: `None` for one deleted.
        let mut staged: BTreeMap<String, Option<Conversation>> = BTreeMap::new();
        let mut chained = BTreeSet::new();
        for (version, item) in opened {
            match item {
                Opened::ConversationKey { conv } => {
                    let slot = self.stage(&mut staged, &conv);
                    if slot.is_none() {
                        *slot = Some(Conversation::new(conv));
                    }
                }
                Opened::Header { conv, header } => {
                    if let Some(c) = self.stage(&mut staged, &conv) {
                        c.header = Some(header);
                        c.header_version = version;
                    }
                }
                Opened::Entry { conv, entry } => {
                    if let Some(c) = self.stage(&mut staged, &conv) {
                        c.entries.insert(entry.msg().to_owned(), entry);
                        chained.insert(conv);
                    }
                }
                Opened::Deleted { name, .. } => match name {
                    RecordName::ConversationKey { conv } => {
                        *self.stage(&mut staged, &conv) = None;
                    }
                    RecordName::ConversationHeader { conv } => {
                        if let Some(c) = self.stage(&mut staged, &conv) {
                            c.header = None;
                            c.header_version = version;
                        }
                    }
                    RecordName::Message { conv, msg } => {
                        if let Some(c) = self.stage(&mut staged, &conv) {
                            c.entries.remove(&msg);
                            chained.insert(conv);
                        }
                    }
                    RecordName::RecoveryWrap | RecordName::PasskeyWrap { .. } => {}
                },
                Opened::Wrap { .. } => {}
            }
        }
        let mut deleted = Vec::new();
        for conv in chained {
            if let Some(Some(c)) = staged.get_mut(&conv) {
                c.check()?;
                deleted.extend(c.deleted_records());
            }
        }
        for (conv, c) in staged {
            match c {
                Some(c) => self.conversations.insert(conv, c),
                None => self.conversations.remove(&conv),
            };
        }
        Ok(deleted)
    }

    /// The staged copy of a conversation, made from the history's on first use.
    fn stage<'s>(
        &self,
        staged: &'s mut BTreeMap<String, Option<Conversation>>,
        conv: &str,
    ) -> &'s mut Option<Conversation> {
        staged
            .entry(conv.to_owned())
            .or_insert_with(|| self.conversations.get(conv).cloned())
    }

    /// Takes in a write of this client's that the server accepted; ends like [`Self::apply`].
    fn record(&mut self, local: Local) -> Result<Vec<String>, ClientError> {
        let c = match local {
            Local::Entry { conv, entry } => {
                let c = self
                    .conversations
                    .entry(conv.clone())
                    .or_insert_with(|| Conversation::new(conv));
                c.entries.insert(entry.msg().to_owned(), entry);
                c
            }
            Local::Gone { conv, msg } => match self.conversations.get_mut(&conv) {
                Some(c) => {
                    c.entries.remove(&msg);
                    c
                }
                None => return Ok(Vec::new()),
            },
        };
        c.check()?;
        Ok(c.deleted_records())
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
        for id in u.history.apply(opened)? {
            u.vault.observe_removal(&id);
        }
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
/// before the first was sent (the ids the writes create). Each write the server takes is
/// taken into this client's history at once, so the next message follows it.
pub struct Writes<T> {
    queue: VecDeque<Write>,
    waiting: Option<(bool, Option<Local>)>,
    output: Option<T>,
}

struct Write {
    request: Request,
    /// A delete whose record may already be gone.
    gone_ok: bool,
    then: Option<Local>,
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
        self.push(request, false, None);
        self
    }

    fn push(&mut self, request: Request, gone_ok: bool, then: Option<Local>) {
        self.queue.push_back(Write {
            request,
            gone_ok,
            then,
        });
    }
}

/// The title a conversation gets from its first question.
fn title_of(question: &str) -> String {
    question.chars().take(60).collect()
}

impl Writes<(String, Vec<String>)> {
    /// Saves the messages of a turn, each following the one before (the first follows the
    /// conversation's heads as this client knows them), starting the conversation (its key,
    /// then a header titled with the first question) when there is none yet. Ends with the
    /// conversation id and the new messages' ids. For an existing conversation, run
    /// [`EnsureKey`] first.
    pub fn save_turn(
        u: &mut Unlocked,
        conv: Option<&str>,
        messages: Vec<Message>,
    ) -> Result<Self, ClientError> {
        let mut requests = Vec::new();
        let (conv, mut after) = match conv {
            Some(c) => (
                c.to_owned(),
                u.history
                    .get(c)
                    .map(Conversation::heads)
                    .unwrap_or_default(),
            ),
            None => {
                let question = messages
                    .iter()
                    .find(|m| m.role == Role::User)
                    .map(|m| m.content.as_str())
                    .unwrap_or("");
                let at = messages.first().map(|m| m.created_at).unwrap_or(0);
                let (conv, key) = u.vault.new_conversation()?;
                requests.push(u.session.put(&key)?);
                let header =
                    u.vault
                        .seal_header(&conv, &Header::new(&title_of(question), at), 0)?;
                requests.push(u.session.put(&header)?);
                (conv, Vec::new())
            }
        };
        let mut ids = Vec::new();
        let mut entries = Vec::new();
        for message in messages {
            let (entry, sealed) = u.vault.seal_entry(&conv, after, Body::Message(message))?;
            after = vec![entry.link().clone()];
            ids.push(entry.msg().to_owned());
            entries.push((u.session.put(&sealed)?, entry));
        }
        let mut writes = requests
            .into_iter()
            .fold(Writes::new((conv.clone(), ids)), Writes::then);
        for (request, entry) in entries {
            let local = Local::Entry {
                conv: conv.clone(),
                entry,
            };
            writes.push(request, false, Some(local));
        }
        Ok(writes)
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

/// Deletes one message of a conversation this client has pulled (a regenerated answer
/// replaces the old one): first a removal that names it joins the chain, so the gap its
/// record leaves is accounted for on every device, then the record goes. One already removed
/// is not an error (only its record is deleted, if still there).
pub fn delete_message(u: &mut Unlocked, conv: &str, msg: &str) -> Result<Writes<()>, ClientError> {
    let c = u
        .history
        .get(conv)
        .ok_or_else(|| ClientError::NoConversation(conv.to_owned()))?;
    let mut writes = Writes::new(());
    if !c.is_removed(msg) {
        let link = c
            .entries
            .get(msg)
            .filter(|e| e.message().is_some())
            .map(|e| e.link().clone())
            .ok_or_else(|| ClientError::NoMessage(msg.to_owned()))?;
        let removal = Body::Removal {
            removes: vec![link],
        };
        let (entry, sealed) = u.vault.seal_entry(conv, c.heads(), removal)?;
        let local = Local::Entry {
            conv: conv.to_owned(),
            entry,
        };
        writes.push(u.session.put(&sealed)?, false, Some(local));
    }
    let gone = Local::Gone {
        conv: conv.to_owned(),
        msg: msg.to_owned(),
    };
    let id = c.message_record(msg);
    writes.push(u.session.delete(routes::record(&id)), true, Some(gone));
    Ok(writes)
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

    fn next(&mut self, u: &mut Unlocked, answer: Option<Answer>) -> Result<Step<T>, ClientError> {
        if let Some((gone_ok, then)) = self.waiting.take() {
            let resp = http(answer)?;
            if !(gone_ok && resp.is_not_found()) {
                resp.success()?;
            }
            if let Some(local) = then {
                for id in u.history.record(local)? {
                    u.vault.observe_removal(&id);
                }
            }
        }
        match self.queue.pop_front() {
            Some(Write {
                request,
                gone_ok,
                then,
            }) => {
                self.waiting = Some((gone_ok, then));
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
