//! The schema both backends keep, written once: numbered migrations in one SQL text whose column
//! types each backend's [`Dialect`] fills in, so the two databases always have the same tables,
//! columns, constraints and indexes. Each backend runs the pending migrations in one
//! transaction it holds exclusively, recording each in `schema_version`.

use crate::driver::{failed, Fallible};

/// How one database spells what the schema's placeholders stand for.
pub(crate) struct Dialect {
    /// `{bytes}`: a byte string.
    bytes: &'static str,
    /// `{int}`: a signed 64-bit integer.
    int: &'static str,
    /// `{text}`: a UTF-8 string.
    text: &'static str,
    /// `{length}`: the byte length of a `{bytes}` value.
    length: &'static str,
    /// `{table}`: what follows a table's column list.
    table: &'static str,
}

/// Type checks on every column (`STRICT`), as PostgreSQL has them anyway.
pub(crate) const SQLITE: Dialect = Dialect {
    bytes: "BLOB",
    int: "INTEGER",
    text: "TEXT",
    length: "length",
    table: " STRICT",
};

pub(crate) const POSTGRES: Dialect = Dialect {
    bytes: "bytea",
    int: "bigint",
    text: "text",
    length: "octet_length",
    table: "",
};

/// Migrations, applied in order; each runs once. Constraint names are spelled out because
/// PostgreSQL errors are mapped by them.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE accounts (
        id {bytes} CONSTRAINT accounts_pkey PRIMARY KEY NOT NULL CHECK ({length}(id) = 16),
        created_at {int} NOT NULL,
        seq {int} NOT NULL DEFAULT 0,
        used_bytes {int} NOT NULL DEFAULT 0,
        used_records {int} NOT NULL DEFAULT 0,
        recovery_lookup {bytes} CONSTRAINT accounts_recovery_lookup_key UNIQUE,
        recovery_verifier {bytes}
    ){table};
    CREATE TABLE credentials (
        credential_id {bytes} CONSTRAINT credentials_pkey PRIMARY KEY NOT NULL,
        account {bytes} NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        passkey {bytes} NOT NULL,
        name {text} NOT NULL,
        created_at {int} NOT NULL,
        last_used_at {int}
    ){table};
    CREATE INDEX credentials_account ON credentials(account);
    CREATE TABLE sessions (
        token_hash {bytes} CONSTRAINT sessions_pkey PRIMARY KEY NOT NULL,
        account {bytes} NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        expires_at {int} NOT NULL
    ){table};
    CREATE INDEX sessions_account ON sessions(account);
    CREATE TABLE records (
        account {bytes} NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        id {text} NOT NULL,
        grp {text},
        kind {text} NOT NULL,
        version {int} NOT NULL,
        seq {int} NOT NULL,
        ciphertext {bytes},
        PRIMARY KEY (account, id)
    ){table};
    CREATE UNIQUE INDEX records_seq ON records(account, seq);
    CREATE INDEX records_group ON records(account, grp);",
    ),
    (2, "CREATE INDEX sessions_expiry ON sessions(expires_at);"),
    // Sessions remember the passkey they were opened with, so removing it ends them. Sessions
    // from before cannot be attributed and are ended: their users sign in again, once.
    (
        3,
        "DELETE FROM sessions;
    ALTER TABLE sessions ADD COLUMN credential_id {bytes};
    CREATE INDEX sessions_credential ON sessions(account, credential_id);",
    ),
    // Privacy Pass tokens. Issuance keeps one count per account for the current period only;
    // a spent token keeps its issuer key id and nonce, and no column that could name an
    // account or a time, so neither table can link a redemption to whoever was issued it.
    (
        4,
        "CREATE TABLE token_issuance (
        account {bytes} NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        period {int} NOT NULL,
        issued {int} NOT NULL,
        CONSTRAINT token_issuance_pkey PRIMARY KEY (account, period)
    ){table};
    CREATE TABLE spent_tokens (
        key_id {bytes} NOT NULL CHECK ({length}(key_id) = 32),
        nonce {bytes} NOT NULL CHECK ({length}(nonce) = 32),
        CONSTRAINT spent_tokens_pkey PRIMARY KEY (key_id, nonce)
    ){table};",
    ),
    // Short-lived state every server on the database must see alike. `pending` holds WebAuthn
    // ceremonies (kind 0) and step-up proofs (kind 1), each owned by an account or by a client
    // network, never both: a network's entry names no account, an account's goes with it.
    // `rate_buckets` holds a token count (in sixty-thousandths) and the time it was refilled to,
    // under a key the server chooses.
    (
        5,
        "CREATE TABLE pending (
        kind {int} NOT NULL CHECK (kind IN (0, 1)),
        id {bytes} NOT NULL CHECK ({length}(id) = 32),
        account {bytes} REFERENCES accounts(id) ON DELETE CASCADE,
        net {bytes} CHECK ({length}(net) BETWEEN 1 AND 16),
        value {bytes} NOT NULL,
        created_at {int} NOT NULL,
        expires_at {int} NOT NULL,
        CONSTRAINT pending_pkey PRIMARY KEY (kind, id),
        CONSTRAINT pending_one_owner CHECK ((account IS NULL) <> (net IS NULL))
    ){table};
    CREATE INDEX pending_account ON pending(account, kind, created_at);
    CREATE INDEX pending_net ON pending(net, kind);
    CREATE INDEX pending_expiry ON pending(kind, expires_at);
    CREATE TABLE rate_buckets (
        bucket {bytes} CONSTRAINT rate_buckets_pkey PRIMARY KEY NOT NULL,
        tokens {int} NOT NULL CHECK (tokens >= 0),
        refilled_at {int} NOT NULL
    ){table};
    CREATE INDEX rate_buckets_idle ON rate_buckets(refilled_at);",
    ),
];

/// The version table's type is 32-bit in PostgreSQL and read back as `i32` in both databases.
const VERSION_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL){table}";

/// The schema version a database is at (0: none yet).
pub(crate) const CURRENT_VERSION: &str = "SELECT coalesce(max(version), 0) FROM schema_version";

/// Records an applied migration; SQLite, too, reads `$1` as the first parameter.
pub(crate) const RECORD_VERSION: &str = "INSERT INTO schema_version (version) VALUES ($1)";

impl Dialect {
    fn render(&self, sql: &str) -> String {
        sql.replace("{bytes}", self.bytes)
            .replace("{int}", self.int)
            .replace("{text}", self.text)
            .replace("{length}", self.length)
            .replace("{table}", self.table)
    }

    /// Creates the version table if the database has none.
    pub(crate) fn version_table(&self) -> String {
        self.render(VERSION_TABLE)
    }

    /// The migrations a database at schema version `current` still needs, in order, as this
    /// dialect's SQL; an error if the database is newer than this build.
    pub(crate) fn pending(&self, current: i32) -> Fallible<Vec<(i32, String)>> {
        let newest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        if current > newest {
            return Err(failed(format!(
                "the database is at schema version {current}, newer than this build's {newest}"
            )));
        }
        Ok(MIGRATIONS
            .iter()
            .filter(|(v, _)| *v > current)
            .map(|(v, sql)| (*v, self.render(sql)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        for dialect in [&SQLITE, &POSTGRES] {
            let all = dialect.pending(0).unwrap();
            assert_eq!(all.len(), MIGRATIONS.len());
            for (_, sql) in all.iter().chain([&(0, dialect.version_table())]) {
                assert!(!sql.contains(['{', '}']), "{sql}");
            }
        }
    }

    #[test]
    fn only_newer_migrations_are_pending() {
        let newest = MIGRATIONS.last().unwrap().0;
        let versions = |current| -> Vec<i32> {
            SQLITE
                .pending(current)
                .unwrap()
                .into_iter()
                .map(|(v, _)| v)
                .collect()
        };
        assert_eq!(versions(0), (1..=newest).collect::<Vec<_>>());
        assert_eq!(versions(1), (2..=newest).collect::<Vec<_>>());
        assert_eq!(versions(newest), Vec::<i32>::new());
        assert!(SQLITE.pending(newest + 1).is_err());
    }
}
