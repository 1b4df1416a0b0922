//! A PostgreSQL database made for one test (from `SOTTO_TEST_POSTGRES_URL`, which
//! `eval "$(bash scripts/postgres env)"` sets), so tests on PostgreSQL run in parallel.

use std::process::Command;

/// A PostgreSQL database made for one test, dropped (with its connections) afterwards.
pub struct Database {
    admin: String,
    name: String,
    pub url: String,
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
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `admin` with its database replaced by `name` (query string kept).
pub fn url_for_database(admin: &str, name: &str) -> String {
    let (head, query) = match admin.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (admin, String::new()),
    };
    let authority_start = head.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match head[authority_start..].find('/') {
        Some(slash) => &head[..authority_start + slash],
        None => head,
    };
    format!("{base}/{name}{query}")
}

impl Database {
    pub fn create() -> Database {
        let admin = std::env::var("SOTTO_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!(
                "SOTTO_TEST_POSTGRES_URL is not set, so the PostgreSQL backend cannot be tested: \
                 run `eval \"$(bash scripts/postgres env)\"` first"
            )
        });
        let name = format!(
            "sotto_cli_{}",
            sotto_vault::new_id().expect("random database name")
        );
        psql(&admin, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let url = url_for_database(&admin, &name);
        Database { admin, name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
