//! A PostgreSQL database made for one test or benchmark run, on the server that
//! `SOTTO_TEST_POSTGRES_URL` names (`eval "$(bash scripts/postgres env)"` sets it), so runs on
//! PostgreSQL are isolated from each other and can go in parallel. Uses the `psql` client, so
//! callers need no database driver of their own.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable naming the admin connection URL.
pub const ADMIN_URL_VAR: &str = "SOTTO_TEST_POSTGRES_URL";

/// The admin connection URL, or an error saying how to get one.
pub fn admin_url() -> Result<String, String> {
    std::env::var(ADMIN_URL_VAR).map_err(|_| {
        format!(
            "{ADMIN_URL_VAR} is not set, so nothing can run on PostgreSQL: \
             run `eval \"$(bash scripts/postgres env)\"` first"
        )
    })
}

/// `admin` with its database replaced by `name` (query string kept).
pub fn url_for_database(admin: &str, name: &str) -> String {
    let (head, query) = match admin.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (admin, String::new()),
    };
    let authority = head.find("://").map_or(0, |i| i + 3);
    let base = head
        .get(authority..)
        .and_then(|rest| rest.find('/'))
        .and_then(|slash| head.get(..authority + slash))
        .unwrap_or(head);
    format!("{base}/{name}{query}")
}

/// A database of its own, dropped (with its connections) when this value is.
pub struct Database {
    admin: String,
    name: String,
    /// Its connection URL.
    pub url: String,
}

impl Database {
    /// Creates `<prefix>_<unique suffix>` on the admin server.
    pub fn create(prefix: &str) -> Result<Database, String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin = admin_url()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{prefix}_{}_{nanos}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        psql(&admin, &format!("CREATE DATABASE {name}"))
            .map_err(|e| format!("cannot create database {name}: {e}"))?;
        let url = url_for_database(&admin, &name);
        Ok(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("could not drop database {}: {e}", self.name);
        }
    }
}

fn psql(admin: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .arg(admin)
        .args(["--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::url_for_database;

    #[test]
    fn database_urls_swap_only_the_database() {
        assert_eq!(
            url_for_database("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_for_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(url_for_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
