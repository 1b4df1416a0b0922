//! Key files of release builders, logs and witnesses: one signer key per file
//! (`PRIVATE+KEY+name+id+base64`, Go's note format), mode 0600, never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use sotto_tlog::note::{Signer, Verifier};
use zeroize::Zeroizing;

use super::AnyError;

/// Generates a key named `name` of signature type `kind` and writes it to `path`.
pub fn generate(path: &Path, name: &str, kind: u8) -> Result<Signer, AnyError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
    let signer = Signer::from_seed(name, kind, &seed)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut text = signer.to_skey();
    text.push('\n');
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(signer)
}

pub fn load(path: &Path) -> Result<Signer, AnyError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    Ok(Signer::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?)
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
