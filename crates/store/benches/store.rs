//! Store throughput on both backends in one run: durable puts (one task, and four tasks at
//! once), point reads, and listing 10,000 changes the way clients sync (pages of 1,000).
//!
//! `eval "$(scripts/postgres env)"` then `cargo bench -p sotto-store`. Every put is a durable
//! commit (fsync), so the put rows measure the disk as much as the code.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sotto_api::Quota;
use sotto_store::{AccountId, CredentialRow, RecordWrite, Store};
use sotto_testkit::postgres::Database;

const BODY: usize = 1024;
const SEQUENTIAL_PUTS: usize = 2_000;
const TASKS: usize = 4;
const PUTS_PER_TASK: usize = 2_000;
const RECORDS: usize = SEQUENTIAL_PUTS + TASKS * PUTS_PER_TASK;
const GETS: usize = 10_000;
const PAGE: u32 = 1_000;
const LISTINGS: usize = 5;
const QUOTA: Quota = Quota {
    max_bytes: u64::MAX >> 2,
    max_records: u64::MAX >> 2,
};

struct Row {
    backend: &'static str,
    what: String,
    ops: usize,
    elapsed: Duration,
}

fn main() {
    // Made first, so a missing PostgreSQL fails the run before the SQLite half takes its time.
    let database = Database::create("sotto_bench").unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut rows = Vec::new();

        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("bench.db");
        let sqlite = sotto_store::open(&format!("sqlite:{}", path.display()))
            .await
            .expect("open SQLite");
        rows.extend(bench("sqlite", sqlite).await);

        let postgres = sotto_store::open(&database.url)
            .await
            .expect("open PostgreSQL");
        rows.extend(bench("postgres", postgres).await);

        println!(
            "\n{:<9} {:<40} {:>7} {:>9} {:>10}",
            "backend", "operation", "ops", "seconds", "ops/s"
        );
        for row in rows {
            println!(
                "{:<9} {:<40} {:>7} {:>9.3} {:>10.0}",
                row.backend,
                row.what,
                row.ops,
                row.elapsed.as_secs_f64(),
                row.ops as f64 / row.elapsed.as_secs_f64()
            );
        }
    });
}

async fn bench(backend: &'static str, store: Arc<dyn Store>) -> Vec<Row> {
    let mut rows = Vec::new();
    let account = new_account(store.as_ref()).await;
    let body = vec![0xA5u8; BODY];

    let start = Instant::now();
    for i in 0..SEQUENTIAL_PUTS {
        put(store.as_ref(), account, &format!("s{i}"), &body).await;
    }
    rows.push(Row {
        backend,
        what: format!("put {BODY} B, 1 task"),
        ops: SEQUENTIAL_PUTS,
        elapsed: start.elapsed(),
    });

    let elapsed = concurrent_puts(&store, &body, |task| (account, format!("t{task}-"))).await;
    rows.push(Row {
        backend,
        what: format!("put {BODY} B, {TASKS} tasks, same account"),
        ops: TASKS * PUTS_PER_TASK,
        elapsed,
    });

    let mut accounts = Vec::new();
    for _ in 0..TASKS {
        accounts.push(new_account(store.as_ref()).await);
    }
    let elapsed = concurrent_puts(&store, &body, |task| (accounts[task], "o".into())).await;
    rows.push(Row {
        backend,
        what: format!("put {BODY} B, {TASKS} tasks, own accounts"),
        ops: TASKS * PUTS_PER_TASK,
        elapsed,
    });

    let start = Instant::now();
    for i in 0..GETS {
        let id = format!("s{}", i % SEQUENTIAL_PUTS);
        let got = store.get_record(account, &id).await.expect("get");
        assert!(got.is_some_and(|r| r.ciphertext.is_some_and(|c| c.len() == BODY)));
    }
    rows.push(Row {
        backend,
        what: "get, 1 task".into(),
        ops: GETS,
        elapsed: start.elapsed(),
    });

    let elapsed = concurrently(|task| {
        let store = Arc::clone(&store);
        async move {
            for i in 0..GETS / TASKS {
                let id = format!("t{task}-{}", i % PUTS_PER_TASK);
                let got = store.get_record(account, &id).await.expect("get");
                assert!(got.is_some());
            }
        }
    })
    .await;
    rows.push(Row {
        backend,
        what: format!("get, {TASKS} tasks"),
        ops: GETS,
        elapsed,
    });

    let start = Instant::now();
    for _ in 0..LISTINGS {
        let mut since = 0;
        let mut seen = 0;
        loop {
            let page = store
                .changes(account, since, PAGE, u64::MAX)
                .await
                .expect("changes");
            since = page.next;
            seen += page.records.len();
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, RECORDS);
    }
    rows.push(Row {
        backend,
        what: format!("changes: list {RECORDS} in pages of {PAGE}"),
        ops: LISTINGS * RECORDS,
        elapsed: start.elapsed(),
    });
    rows
}

/// Runs `TASKS` copies of a task at once and times them together.
async fn concurrently<F, Fut>(make: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = (0..TASKS).map(|t| tokio::spawn(make(t))).collect();
    for handle in handles {
        handle.await.expect("benchmark task");
    }
    start.elapsed()
}

/// Times `TASKS` tasks putting `PUTS_PER_TASK` records each at once; `target` names each
/// task's account and the prefix of its record ids.
async fn concurrent_puts(
    store: &Arc<dyn Store>,
    body: &[u8],
    target: impl Fn(usize) -> (AccountId, String),
) -> Duration {
    concurrently(|task| {
        let store = Arc::clone(store);
        let body = body.to_vec();
        let (account, prefix) = target(task);
        async move {
            for i in 0..PUTS_PER_TASK {
                put(store.as_ref(), account, &format!("{prefix}{i}"), &body).await;
            }
        }
    })
    .await
}

async fn put(store: &dyn Store, account: AccountId, id: &str, body: &[u8]) {
    store
        .put_record(
            account,
            RecordWrite {
                id,
                group: None,
                kind: "msg",
                expected_version: 0,
                ciphertext: body,
            },
            QUOTA,
        )
        .await
        .expect("put");
}

async fn new_account(store: &dyn Store) -> AccountId {
    let id = AccountId(*uuid::Uuid::new_v4().as_bytes());
    let mut lookup = [0u8; 32];
    lookup[..16].copy_from_slice(&id.0);
    store
        .create_account(
            id,
            0,
            CredentialRow {
                credential_id: id.0.to_vec(),
                passkey: vec![1; 200],
                name: "bench".into(),
                created_at: 0,
                last_used_at: None,
            },
            lookup,
            [0; 32],
        )
        .await
        .expect("create account");
    id
}
