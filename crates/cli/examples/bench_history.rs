//! Encrypted-history performance, on SQLite and PostgreSQL in one run.
//!
//! (a) Sign-in: an account holding 10,000 conversations (a key record and a header record
//!     each) is fetched over HTTP from a real server and every record is opened by the vault,
//!     as a client does at sign-in. Reported as HTTP fetch, decrypt, and their total, plus the
//!     whole `sotto::history::sync` for comparison. Seeding goes straight to the store and is
//!     not part of the timed work.
//! (b) Server throughput with ~1 KiB ciphertexts: puts and gets over HTTP, sequential and with
//!     8 concurrent clients (one account each), next to the same operations straight on the
//!     store in the same run; the ratio says what HTTP, JSON and sessions add.
//!
//! The server runs in this process on a loopback port, with the real router, the real passkey
//! sign-up (the CLI's software authenticator) and the real stores. Every put is a durable
//! commit, so the put rows measure the disk's fsync as much as the code.
//!
//! `bench/history.sh` runs it in release mode. Arguments name the backends to run (`sqlite`,
//! `postgres`; default both). PostgreSQL needs `SOTTO_TEST_POSTGRES_URL`: run
//! `eval "$(bash scripts/postgres env)"` first.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use sotto::account::Unlocked;
use sotto::api::ApiClient;
use sotto::local::Profile;
use sotto_api::{PutRecord, Quota, RecordOut};
use sotto_server::{AccountsConfig, RateLimit, ServerConfig};
use sotto_store::{AccountId, RecordWrite, Store};
use sotto_testkit::postgres::Database;
use sotto_vault::{Header, Opened, Sealed};
use tempfile::TempDir;

type AnyError = Box<dyn Error + Send + Sync>;

const CONVERSATIONS: usize = 10_000;
const SIGN_IN_RUNS: usize = 3;
const SEED_TASKS: usize = 8;
const BODY: usize = 1024;
const CLIENTS: usize = 8;
const SEQUENTIAL_PUTS: usize = 300;
const CONCURRENT_PUTS: usize = 100;
const SEQUENTIAL_GETS: usize = 2_000;
const CONCURRENT_GETS: usize = 500;
/// Turns of each throughput case per path.
const TURNS: usize = 3;
const QUOTA: Quota = Quota {
    max_bytes: u64::MAX >> 2,
    max_records: u64::MAX >> 2,
};

/// The backend's store and what must outlive it (a temporary directory or database).
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: Option<TempDir>,
    _database: Option<Database>,
}

async fn open_backend(name: &'static str) -> Result<Backend, AnyError> {
    match name {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let spec = format!("sqlite:{}", dir.path().join("bench.sqlite").display());
            let store = sotto_store::open(&spec).await?;
            Ok(Backend {
                name,
                store,
                _dir: Some(dir),
                _database: None,
            })
        }
        "postgres" => {
            let db = Database::create("sotto_bench")?;
            let store = sotto_store::open(&db.url).await?;
            Ok(Backend {
                name,
                store,
                _dir: None,
                _database: Some(db),
            })
        }
        other => Err(format!("unknown backend {other:?}: use sqlite or postgres").into()),
    }
}

/// Serves the real router over `store` on a loopback port; returns the URL clients use.
async fn serve(store: Arc<dyn Store>) -> Result<String, AnyError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let url = format!("http://localhost:{port}");
    let mut accounts = AccountsConfig::new(store, "localhost", &url);
    accounts.any_port = true;
    accounts.quota = QUOTA;
    // Nine sign-ups from one address in a second is the benchmark, not an attack.
    accounts.auth_rate = RateLimit {
        per_minute: 10_000,
        burst: 1_000,
    };
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 9)));
    config.accounts = Some(accounts);
    tokio::spawn(async move {
        if let Err(e) = sotto::stack::run_server(listener, config).await {
            eprintln!("benchmark server stopped: {e}");
        }
    });
    Ok(url)
}

/// The store's id of the account a session is for (the server's account ids are UUIDs).
fn account_id(u: &Unlocked) -> Result<AccountId, AnyError> {
    let hex_digits: String = u.session.account_id.chars().filter(|c| *c != '-').collect();
    let bytes = hex::decode(hex_digits)?;
    let id: [u8; 16] = bytes
        .try_into()
        .map_err(|_| "the server's account id is not a UUID")?;
    Ok(AccountId(id))
}

struct Account {
    profile: Profile,
    _dir: TempDir,
    unlocked: Unlocked,
    id: AccountId,
}

async fn new_account(url: &str) -> Result<Account, AnyError> {
    let dir = tempfile::tempdir()?;
    let profile = Profile {
        dir: dir.path().to_path_buf(),
    };
    let (unlocked, _code) = sotto::account::create(&profile, url, "bench", "bench").await?;
    let id = account_id(&unlocked)?;
    Ok(Account {
        profile,
        _dir: dir,
        unlocked,
        id,
    })
}

fn write_of(sealed: &Sealed) -> RecordWrite<'_> {
    RecordWrite {
        id: &sealed.id,
        group: sealed.put.group.as_deref(),
        kind: &sealed.put.kind,
        expected_version: sealed.put.expected_version,
        ciphertext: &sealed.put.ciphertext,
    }
}

struct SignIn {
    seed: Duration,
    records: usize,
    unlock: Duration,
    fetch: Duration,
    decrypt: Duration,
    sync: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn bench_sign_in(store: Arc<dyn Store>, url: &str) -> Result<SignIn, AnyError> {
    let mut account = new_account(url).await?;
    let now = sotto::account::now_ms();
    let mut sealed = Vec::with_capacity(2 * CONVERSATIONS);
    for i in 0..CONVERSATIONS {
        let (conv, key) = account.unlocked.client.vault.new_conversation()?;
        let header = account.unlocked.client.vault.seal_header(
            &conv,
            &Header::new(&format!("Conversation {i}"), now),
            0,
        )?;
        sealed.push(key);
        sealed.push(header);
    }

    let seed_start = Instant::now();
    let sealed = Arc::new(sealed);
    let per_task = sealed.len().div_ceil(SEED_TASKS);
    let mut tasks = Vec::new();
    for t in 0..SEED_TASKS {
        let (store, sealed, id) = (store.clone(), sealed.clone(), account.id);
        tasks.push(tokio::spawn(async move {
            let chunk = sealed
                .get(t * per_task..((t + 1) * per_task).min(sealed.len()))
                .unwrap_or_default();
            for s in chunk {
                store.put_record(id, write_of(s), QUOTA).await?;
            }
            Ok::<(), sotto_store::StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seed = seed_start.elapsed();

    let (mut unlocks, mut fetches, mut decrypts, mut syncs) = (vec![], vec![], vec![], vec![]);
    let mut records = 0;
    for _ in 0..SIGN_IN_RUNS {
        let t0 = Instant::now();
        let mut u = sotto::account::unlock(&account.profile).await?;
        let t1 = Instant::now();
        let (fetched, _) = u.api.all_changes(0).await?;
        let t2 = Instant::now();
        let headers = open_all(&mut u, &fetched)?;
        let t3 = Instant::now();
        if headers != CONVERSATIONS {
            return Err(format!("opened {headers} headers, expected {CONVERSATIONS}").into());
        }
        records = fetched.len();
        unlocks.push(t1 - t0);
        fetches.push(t2 - t1);
        decrypts.push(t3 - t2);

        let mut u = sotto::account::unlock(&account.profile).await?;
        let t4 = Instant::now();
        let history = sotto::history::sync(&mut u).await?;
        syncs.push(t4.elapsed());
        if history.conversations().len() != CONVERSATIONS {
            return Err(format!(
                "sync found {} conversations, expected {CONVERSATIONS}",
                history.conversations().len()
            )
            .into());
        }
    }
    Ok(SignIn {
        seed,
        records,
        unlock: median(unlocks),
        fetch: median(fetches),
        decrypt: median(decrypts),
        sync: median(syncs),
    })
}

/// Opens every record through the vault (any refusal fails the run); returns the headers.
fn open_all(u: &mut Unlocked, records: &[RecordOut]) -> Result<usize, AnyError> {
    let mut headers = 0;
    for (id, _, opened) in u.client.vault.open_batch(records) {
        match opened.map_err(|e| format!("record {id}: {e}"))? {
            Opened::Header { header, .. } if header.title.starts_with("Conversation ") => {
                headers += 1
            }
            _ => {}
        }
    }
    Ok(headers)
}

/// A deterministic, incompressible 1 KiB body standing in for ciphertext.
fn body(seed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(BODY);
    let mut block: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
    while out.len() < BODY {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(BODY);
    out
}

fn put_of(id: &str) -> PutRecord {
    PutRecord {
        group: None,
        kind: "msg".into(),
        expected_version: 0,
        ciphertext: body(id),
    }
}

/// One operation of the throughput table, on one path.
#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
}

/// Runs `count` operations per client on `clients` clients at once, each as `one` does it;
/// returns the elapsed time. Record ids are `<prefix>.<client>.<n>`; gets read back what the
/// puts wrote.
async fn run<C, F, Fut>(
    clients: &[C],
    op: Op,
    prefix: &str,
    count: usize,
    puts_per_client: usize,
    one: F,
) -> Result<Duration, AnyError>
where
    C: Clone + Send + 'static,
    F: Fn(C, Op, String) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<(), AnyError>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let (client, prefix) = (client.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            for n in 0..count {
                let n = match op {
                    Op::Put => n,
                    Op::Get => n % puts_per_client.max(1),
                };
                one(client.clone(), op, format!("{prefix}.{c}.{n}")).await?;
            }
            Ok::<(), AnyError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

/// One operation straight on the store, as `account`.
async fn store_op(
    (store, account): (Arc<dyn Store>, AccountId),
    op: Op,
    id: String,
) -> Result<(), AnyError> {
    match op {
        Op::Put => {
            let put = put_of(&id);
            let write = RecordWrite {
                id: &id,
                group: None,
                kind: &put.kind,
                expected_version: 0,
                ciphertext: &put.ciphertext,
            };
            store.put_record(account, write, QUOTA).await?;
        }
        Op::Get => {
            let got = store.get_record(account, &id).await?;
            if got.and_then(|r| r.ciphertext).map(|b| b.len()) != Some(BODY) {
                return Err(format!("store get {id}: missing or wrong size").into());
            }
        }
    }
    Ok(())
}

/// One operation through the server's API.
async fn http_op(api: Arc<ApiClient>, op: Op, id: String) -> Result<(), AnyError> {
    match op {
        Op::Put => {
            api.put(&id, &put_of(&id)).await?;
        }
        Op::Get => {
            let got = api.get(&id).await?;
            if got.ciphertext.map(|b| b.len()) != Some(BODY) {
                return Err(format!("HTTP get {id}: wrong size").into());
            }
        }
    }
    Ok(())
}

struct Row {
    backend: &'static str,
    what: &'static str,
    ops: usize,
    store: Duration,
    http: Duration,
}

async fn bench_throughput(
    backend: &'static str,
    store: Arc<dyn Store>,
    url: &str,
) -> Result<Vec<Row>, AnyError> {
    let mut accounts = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        accounts.push(new_account(url).await?);
    }
    let direct: Vec<(Arc<dyn Store>, AccountId)> =
        accounts.iter().map(|a| (store.clone(), a.id)).collect();
    let clients: Vec<Arc<ApiClient>> = accounts
        .iter()
        .map(|a| {
            ApiClient::new(url).map(|api| {
                Arc::new(api.with_token(zeroize::Zeroizing::new(
                    a.unlocked.session.session_token.clone(),
                )))
            })
        })
        .collect::<Result<_, _>>()?;
    let one_direct = direct.get(..1).unwrap_or_default();
    let one_client = clients.get(..1).unwrap_or_default();

    let cases: [(&'static str, Op, usize, usize, &str, usize); 4] = [
        ("put, sequential", Op::Put, 1, SEQUENTIAL_PUTS, "seq", 0),
        (
            "put, 8 clients",
            Op::Put,
            CLIENTS,
            CONCURRENT_PUTS,
            "conc",
            0,
        ),
        (
            "get, sequential",
            Op::Get,
            1,
            SEQUENTIAL_GETS,
            "seq",
            SEQUENTIAL_PUTS,
        ),
        (
            "get, 8 clients",
            Op::Get,
            CLIENTS,
            CONCURRENT_GETS,
            "conc",
            CONCURRENT_PUTS,
        ),
    ];
    let mut rows = Vec::new();
    for (what, op, n_clients, count, prefix, puts) in cases {
        let (direct, clients) = if n_clients == 1 {
            (one_direct, one_client)
        } else {
            (direct.as_slice(), clients.as_slice())
        };
        // The machine is shared and fsync times wander: the two paths take turns, alternating
        // which goes first, and each reports its median. Puts write fresh ids each turn; gets
        // read the first turn's.
        let (mut store_times, mut http_times) = (Vec::new(), Vec::new());
        for turn in 0..TURNS {
            let records = match op {
                Op::Put => format!("{prefix}{turn}"),
                Op::Get => format!("{prefix}0"),
            };
            let (s, h) = (format!("s{records}"), format!("h{records}"));
            if turn % 2 == 0 {
                store_times.push(run(direct, op, &s, count, puts, store_op).await?);
                http_times.push(run(clients, op, &h, count, puts, http_op).await?);
            } else {
                http_times.push(run(clients, op, &h, count, puts, http_op).await?);
                store_times.push(run(direct, op, &s, count, puts, store_op).await?);
            }
        }
        rows.push(Row {
            backend,
            what,
            ops: count * n_clients,
            store: median(store_times),
            http: median(http_times),
        });
    }
    Ok(rows)
}

fn per_sec(ops: usize, d: Duration) -> f64 {
    ops as f64 / d.as_secs_f64().max(f64::MIN_POSITIVE)
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let mut names: Vec<&'static str> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "sqlite" => names.push("sqlite"),
            "postgres" => names.push("postgres"),
            other => {
                return Err(
                    format!("unknown argument {other:?}: name sqlite and/or postgres").into(),
                )
            }
        }
    }
    if names.is_empty() {
        names = vec!["sqlite", "postgres"];
    }

    let mut sign_ins = Vec::new();
    let mut rows = Vec::new();
    for name in names {
        let backend = open_backend(name).await?;
        let url = serve(backend.store.clone()).await?;
        eprintln!("{name}: seeding {CONVERSATIONS} conversations…");
        sign_ins.push((
            backend.name,
            bench_sign_in(backend.store.clone(), &url).await?,
        ));
        eprintln!("{name}: throughput…");
        rows.extend(bench_throughput(backend.name, backend.store.clone(), &url).await?);
    }

    println!(
        "\nSign-in: fetch and decrypt {CONVERSATIONS} conversation headers (median of {SIGN_IN_RUNS})"
    );
    println!(
        "{:<9} {:>8} {:>8} {:>9} {:>10} {:>10} {:>8} {:>9}",
        "backend", "records", "seed s", "unlock s", "fetch s", "decrypt s", "total s", "sync() s"
    );
    for (name, s) in &sign_ins {
        println!(
            "{:<9} {:>8} {:>8.1} {:>9.3} {:>10.3} {:>10.3} {:>8.3} {:>9.3}",
            name,
            s.records,
            s.seed.as_secs_f64(),
            s.unlock.as_secs_f64(),
            s.fetch.as_secs_f64(),
            s.decrypt.as_secs_f64(),
            (s.fetch + s.decrypt).as_secs_f64(),
            s.sync.as_secs_f64(),
        );
    }

    println!("\nServer throughput, {BODY}-byte ciphertexts: HTTP vs the same calls on the store (median of {TURNS})");
    println!(
        "{:<9} {:<16} {:>6} {:>12} {:>12} {:>11}",
        "backend", "operation", "ops", "store ops/s", "HTTP ops/s", "HTTP/store"
    );
    for r in &rows {
        println!(
            "{:<9} {:<16} {:>6} {:>12.0} {:>12.0} {:>10.2}x",
            r.backend,
            r.what,
            r.ops,
            per_sec(r.ops, r.store),
            per_sec(r.ops, r.http),
            r.http.as_secs_f64() / r.store.as_secs_f64().max(f64::MIN_POSITIVE),
        );
    }
    println!("(HTTP/store: time over HTTP divided by time on the store; 1.00x = no overhead)");
    Ok(())
}
