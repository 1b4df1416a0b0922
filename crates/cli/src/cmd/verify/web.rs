//! `sotto verify web URL`: is the web client a server serves exactly the files of a logged,
//! unrevoked release? Fetches the page and every file the release lists, and every file the
//! page and its scripts load, and compares each with the release's digests. Exit 0: every file
//! matches one release; 1: a file differs or is not in the release (named); 2: the check could
//! not run.
//!
//! Trust: the server and every byte it serves are hostile; the release list comes from the
//! log, checked as `sotto chat` checks it (`crate::transparency`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use sha2::{Digest, Sha256};
use sotto_release::manifest::WebBundle;

use crate::local::Profile;

#[derive(Args)]
pub struct VerifyWebArgs {
    /// The site, e.g. https://sotto.example or http://localhost:8080.
    pub url: String,
    /// The deployment's trust configuration (default: the pins built into this client).
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// Trust the local development stack's log (`sotto up`), as `sotto chat
    /// --insecure-simulated` does.
    #[arg(long)]
    pub insecure_simulated: bool,
    /// Where this device remembers the log (default: ~/.config/sotto).
    #[arg(long, env = "SOTTO_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
}

/// Why a served site is not a release.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("no logged, unrevoked release ships a web client")]
    NoWebRelease,
    #[error("{path} differs from every logged release (served sha256 {served})")]
    Differs { path: String, served: String },
    #[error("{path} is loaded by the page but is not a file of release {version}")]
    Unlisted { path: String, version: String },
    #[error("{path} of release {version} is not served ({why})")]
    Missing {
        path: String,
        version: String,
        why: String,
    },
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The same-site files an HTML page or a script refers to: `src`/`href` attributes and quoted
/// file names a script resolves (e.g. its wasm module), relative to the site root.
pub fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for quote in ['"', '\''] {
        for (i, piece) in text.split(quote).enumerate() {
            if i % 2 == 0 || piece.is_empty() || piece.len() > 200 {
                continue;
            }
            let p = piece.trim_start_matches("./");
            let is_file = [
                ".js", ".mjs", ".css", ".wasm", ".html", ".json", ".svg", ".png",
            ]
            .iter()
            .any(|ext| p.ends_with(ext));
            let local = !p.contains("://")
                && !p.starts_with("//")
                && !p.starts_with("data:")
                && !p.contains(char::is_whitespace)
                && !p.contains(['<', '>', '(', ')', '{', '}', '$', '`', '\\', '=', '+', ',']);
            if is_file && local {
                out.insert(p.trim_start_matches('/').to_string());
            }
        }
    }
    out
}

/// Compares the served files with one release's list.
fn against(
    release: &WebBundle,
    version: &str,
    served: &BTreeMap<String, Result<Vec<u8>, String>>,
) -> Result<(), Mismatch> {
    for (path, want) in &release.files {
        match served.get(path) {
            Some(Ok(bytes)) => {
                let got = sha256_hex(bytes);
                if &got != want {
                    return Err(Mismatch::Differs {
                        path: path.clone(),
                        served: got,
                    });
                }
            }
            Some(Err(why)) => {
                return Err(Mismatch::Missing {
                    path: path.clone(),
                    version: version.to_string(),
                    why: why.clone(),
                })
            }
            None => {
                return Err(Mismatch::Missing {
                    path: path.clone(),
                    version: version.to_string(),
                    why: "not fetched".into(),
                })
            }
        }
    }
    for (path, body) in served {
        if !release.files.contains_key(path) && body.is_ok() {
            return Err(Mismatch::Unlisted {
                path: path.clone(),
                version: version.to_string(),
            });
        }
    }
    Ok(())
}

/// Passes when the served files are exactly one release's: the newest match wins, and the
/// error of the newest release is reported otherwise.
pub fn check_site(
    releases: &[(String, WebBundle)],
    served: &BTreeMap<String, Result<Vec<u8>, String>>,
) -> Result<String, Mismatch> {
    let mut first = None;
    for (version, web) in releases.iter().rev() {
        match against(web, version, served) {
            Ok(()) => return Ok(version.clone()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or(Mismatch::NoWebRelease))
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> Result<Vec<u8>, String> {
    let url = format!("{}/{path}", base.trim_end_matches('/'));
    crate::transparency::get_bounded(http, &url, crate::transparency::MAX_FILE)
        .await
        .map_err(|why| format!("{url}: {why}"))
}

pub async fn run(args: VerifyWebArgs) -> Result<ExitCode, crate::cmd::AnyError> {
    let trust = crate::transparency::resolve(
        args.trust.as_deref(),
        args.insecure_simulated,
        &crate::local::default_data_dir(),
    )?;
    let profile = Profile::new(args.config_dir.clone());
    let checked =
        crate::transparency::check(&args.url, &trust, &profile, crate::client::now().0).await?;
    let releases: Vec<(String, WebBundle)> = checked
        .releases
        .current()
        .into_iter()
        .filter_map(|l| {
            l.release
                .web
                .clone()
                .map(|w| (l.release.version.clone(), w))
        })
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    // The page itself (served at /), every file any release lists, and everything they load.
    let mut served: BTreeMap<String, Result<Vec<u8>, String>> = BTreeMap::new();
    served.insert("index.html".into(), get(&http, &args.url, "").await);
    let mut queue: Vec<String> = releases
        .iter()
        .flat_map(|(_, w)| w.files.keys().cloned())
        .collect();
    loop {
        let loaded: BTreeSet<String> = served
            .values()
            .filter_map(|b| b.as_ref().ok())
            .flat_map(|b| references(&String::from_utf8_lossy(b)))
            .filter(|p| !served.contains_key(p))
            .collect();
        queue.extend(loaded);
        let Some(path) = queue.pop() else { break };
        if let std::collections::btree_map::Entry::Vacant(slot) = served.entry(path) {
            let body = get(&http, &args.url, slot.key()).await;
            slot.insert(body);
        }
    }
    // Files that a release lists but this server does not serve are the only failed fetches
    // kept; anything else that failed to load was a false lead of the reference scan.
    served.retain(|p, b| b.is_ok() || releases.iter().any(|(_, w)| w.files.contains_key(p)));
    match check_site(&releases, &served) {
        Ok(version) => {
            println!(
                "{}: the {} files served are exactly release {version}'s, logged in {} (size {})",
                args.url,
                served.len(),
                checked.view.checkpoint.origin,
                checked.view.checkpoint.size
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sotto: {}: {e}", args.url);
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &[u8])]) -> (WebBundle, BTreeMap<String, Result<Vec<u8>, String>>) {
        let web = WebBundle {
            digest: "00".repeat(32),
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), sha256_hex(b)))
                .collect(),
        };
        let served = files
            .iter()
            .map(|(p, b)| (p.to_string(), Ok(b.to_vec())))
            .collect();
        (web, served)
    }

    #[test]
    fn references_find_what_a_page_loads() {
        let html = r#"<link rel="icon" href="data:,"><link rel="stylesheet" href="style.css">
            <script type="module" src="./app.js"></script><a href="https://x.org/a.js">"#;
        assert_eq!(
            references(html).into_iter().collect::<Vec<_>>(),
            ["app.js", "style.css"]
        );
        let js = r#"input = new URL('sotto_web_bg.wasm', import.meta.url); x = "a b.js""#;
        assert_eq!(
            references(js).into_iter().collect::<Vec<_>>(),
            ["sotto_web_bg.wasm"]
        );
    }

    #[test]
    fn one_changed_byte_names_the_file() {
        let (web, mut served) = bundle(&[("index.html", b"<html>"), ("app.js", b"code")]);
        let releases = vec![("1.0".to_string(), web)];
        assert_eq!(check_site(&releases, &served), Ok("1.0".into()));
        served.insert("app.js".into(), Ok(b"cade".to_vec()));
        assert!(matches!(
            check_site(&releases, &served),
            Err(Mismatch::Differs { path, .. }) if path == "app.js"
        ));
        served.insert("app.js".into(), Ok(b"code".to_vec()));
        served.insert("extra.js".into(), Ok(b"evil".to_vec()));
        assert!(matches!(
            check_site(&releases, &served),
            Err(Mismatch::Unlisted { path, .. }) if path == "extra.js"
        ));
        served.remove("extra.js");
        served.insert("app.js".into(), Err("404".into()));
        assert!(matches!(
            check_site(&releases, &served),
            Err(Mismatch::Missing { .. })
        ));
        assert_eq!(check_site(&[], &served), Err(Mismatch::NoWebRelease));
    }
}
