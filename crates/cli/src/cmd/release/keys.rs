//! Key files of release builders, logs and witnesses: one signer key per file
//! (`PRIVATE+KEY+name+id+base64`, Go's note format), mode 0600, never overwritten; written
//! and read by `sotto_witness::keys`, the one implementation of key files.

use std::path::Path;

use sotto_tlog::note::{Signer, Verifier};
use sotto_witness::keys;

use super::AnyError;

/// Generates a key named `name` of signature type `kind` and writes it to `path`.
pub fn generate(path: &Path, name: &str, kind: u8) -> Result<Signer, AnyError> {
    let signer = keys::generate_of(name, kind)?;
    keys::write_key(path, &signer)?;
    Ok(signer)
}

pub fn load(path: &Path) -> Result<Signer, AnyError> {
    Ok(keys::read_signer(path)?)
}

/// Loads the key at `path`, generating it first when there is none.
pub fn load_or_generate(path: &Path, name: &str, kind: u8) -> Result<Signer, AnyError> {
    if path.exists() {
        load(path)
    } else {
        generate(path, name, kind)
    }
}

pub fn vkey(text: &str) -> Result<Verifier, AnyError> {
    Ok(Verifier::parse(text).map_err(|e| format!("{text}: {e}"))?)
}
