//! Where the real vendor evidence lives: `../shared/vectors`, beside the workspace root (AMD
//! SEV-SNP reports and certificates, Intel TDX quotes and collateral, NVIDIA H100 reports).
//! Every test and example that reads a vector finds the folder here, so a moved checkout or
//! vectors folder is fixed in one place and a missing one fails with its path.
//!
//! Found at run time from `CARGO_MANIFEST_DIR` (cargo sets it for tests and examples), not
//! baked in at compile time: a target directory shared by checkouts at different paths would
//! otherwise run a binary that looks for the vectors where another checkout keeps them.

use std::path::{Path, PathBuf};

/// The workspace root above the package cargo is running: the nearest folder, from
/// `CARGO_MANIFEST_DIR` up, whose `Cargo.toml` has a `[workspace]` table.
///
/// Panics when not run by cargo or when no such folder exists, naming where it looked.
pub fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .expect("CARGO_MANIFEST_DIR is not set: run this through cargo (test, run or bench)");
    let manifest = PathBuf::from(manifest);
    manifest
        .ancestors()
        .find(|dir| declares_workspace(&dir.join("Cargo.toml")))
        .unwrap_or_else(|| {
            panic!(
                "no Cargo.toml with [workspace] in {} or above it",
                manifest.display()
            )
        })
        .to_path_buf()
}

/// `../shared/vectors` relative to the workspace root.
///
/// Panics naming the path when the folder is not there.
pub fn vectors_dir() -> PathBuf {
    let root = workspace_root();
    let dir = root.join("../shared/vectors");
    assert!(
        dir.is_dir(),
        "the shared test vectors are not at {} (../shared/vectors beside the workspace root {})",
        dir.display(),
        root.display()
    );
    dir
}

/// The path of `rel` inside the vectors folder, e.g. `vector("tdx/tdx_quote")`.
pub fn vector(rel: &str) -> PathBuf {
    vectors_dir().join(rel)
}

/// The bytes of `rel` inside the vectors folder. Panics naming the path when it cannot be read.
pub fn read_vector(rel: &str) -> Vec<u8> {
    let path = vector(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn declares_workspace(manifest: &Path) -> bool {
    std::fs::read_to_string(manifest)
        .is_ok_and(|text| text.lines().any(|line| line.trim() == "[workspace]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_is_two_folders_above_this_crate() {
        let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
        assert_eq!(
            workspace_root().canonicalize().unwrap(),
            here.join("../..").canonicalize().unwrap()
        );
    }

    #[test]
    fn the_vectors_folder_holds_every_vendor() {
        let dir = vectors_dir();
        assert!(dir.join("README.md").is_file(), "{}", dir.display());
        for vendor in ["sev-snp", "tdx", "nvidia"] {
            assert!(dir.join(vendor).is_dir(), "{vendor}");
        }
        assert!(!read_vector("tdx/tdx_quote").is_empty());
    }
}
