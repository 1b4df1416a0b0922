//! A web client bundle: its files, the digest the server serves for it at
//! `/.well-known/sotto-bundle.sha256`, and the per-file digests a release lists.
//!
//! One definition of the digest for the server that serves the bundle and the tools that
//! describe it in a release. Building a [`Bundle`] from files is pure; reading one from a
//! directory ([`Bundle::load`], feature `fs`) is the thin edge both of them use.

use std::collections::BTreeMap;
#[cfg(feature = "fs")]
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::WebBundle;

/// Largest bundle accepted (the app is a few MiB at most).
pub const MAX_BUNDLE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[cfg(feature = "fs")]
    #[error("cannot read the web bundle at {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the web bundle has no index.html")]
    NoIndex,
    #[error("the web bundle is larger than {MAX_BUNDLE} bytes")]
    TooLarge,
}

/// The files of a web client by path below the site root (`/`-separated).
pub struct Bundle {
    files: BTreeMap<String, Vec<u8>>,
    digest: String,
}

impl Bundle {
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Result<Bundle, BundleError> {
        if !files.contains_key("index.html") {
            return Err(BundleError::NoIndex);
        }
        let total: u64 = files.values().map(|b| b.len() as u64).sum();
        if total > MAX_BUNDLE {
            return Err(BundleError::TooLarge);
        }
        let mut manifest = String::new();
        for (path, bytes) in &files {
            manifest.push_str(&hex::encode(Sha256::digest(bytes)));
            manifest.push_str("  ");
            manifest.push_str(path);
            manifest.push('\n');
        }
        let digest = hex::encode(Sha256::digest(manifest.as_bytes()));
        Ok(Bundle { files, digest })
    }

    /// Every regular file under `dir`, recursively.
    #[cfg(feature = "fs")]
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let mut files = BTreeMap::new();
        collect(dir, dir, &mut files, &mut 0)?;
        Bundle::new(files)
    }

    /// Hex SHA-256 of the manifest `"<sha256 hex>  <path>\n"` lines, sorted by path (the
    /// format of `sha256sum`, so `find . -type f | sort | xargs sha256sum | sha256sum`
    /// reproduces it from the `./`-stripped listing).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// What a release statement lists for this bundle.
    pub fn release(&self) -> WebBundle {
        WebBundle {
            digest: self.digest.clone(),
            files: self
                .files
                .iter()
                .map(|(p, b)| (p.clone(), hex::encode(Sha256::digest(b))))
                .collect(),
        }
    }
}

/// Stops reading as soon as the running total passes [`MAX_BUNDLE`], so a huge directory is
/// refused without being loaded whole.
#[cfg(feature = "fs")]
fn collect(
    root: &Path,
    dir: &Path,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BundleError::Read { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read_err(&path))?;
        if kind.is_dir() {
            collect(root, &path, files, total)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).map_err(read_err(&path))?;
            *total += bytes.len() as u64;
            if *total > MAX_BUNDLE {
                return Err(BundleError::TooLarge);
            }
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            files.insert(rel, bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect()
    }

    #[test]
    fn digest_is_sha256sum_of_the_sorted_manifest() {
        let b = Bundle::new(files(&[
            ("pkg/app.wasm", b"\0asm"),
            ("index.html", b"<!doctype html>"),
        ]))
        .unwrap();
        let manifest = format!(
            "{}  index.html\n{}  pkg/app.wasm\n",
            hex::encode(Sha256::digest(b"<!doctype html>")),
            hex::encode(Sha256::digest(b"\0asm"))
        );
        assert_eq!(b.digest(), hex::encode(Sha256::digest(manifest.as_bytes())));
        let release = b.release();
        assert_eq!(release.digest, b.digest());
        assert_eq!(
            release.files["pkg/app.wasm"],
            hex::encode(Sha256::digest(b"\0asm"))
        );
        let changed = Bundle::new(files(&[
            ("pkg/app.wasm", b"\0asn"),
            ("index.html", b"<!doctype html>"),
        ]))
        .unwrap();
        assert_ne!(changed.digest(), b.digest());
    }

    #[test]
    fn a_bundle_without_index_is_refused() {
        assert!(matches!(
            Bundle::new(files(&[("app.js", b"")])),
            Err(BundleError::NoIndex)
        ));
    }

    #[cfg(feature = "fs")]
    #[test]
    fn load_reads_every_file_below_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), b"<!doctype html>").unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("pkg/app.wasm"), b"\0asm").unwrap();
        let loaded = Bundle::load(dir.path()).unwrap();
        assert_eq!(loaded.file("pkg/app.wasm"), Some(&b"\0asm"[..]));
        let built = Bundle::new(files(&[
            ("pkg/app.wasm", b"\0asm"),
            ("index.html", b"<!doctype html>"),
        ]))
        .unwrap();
        assert_eq!(loaded.digest(), built.digest());
    }
}
