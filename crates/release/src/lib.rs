//! Which builds are Sotto's, and whether the enclave a client reached is one of them.
//!
//! - [`bundle`]: a web client's files and the digest the server serves for them;
//! - [`manifest`]: the release statement (launch measurements per platform and shape, models,
//!   engine, GPU requirements, web files, client binaries) and its revocation, as canonical
//!   JSON that release keys sign as a C2SP signed note;
//! - [`trust`]: the pins a client holds (log key, witnesses and their quorum, release keys and
//!   their quorum, cosignature freshness);
//! - [`sync`]: the sans-I/O check of the log a client runs before each connection;
//! - [`admit`]: the releases that count in a verified log, and the admission of a verified
//!   enclave against them;
//! - `testing` (feature `testing`): deployment fixtures for tests.
//!
//! Trust: the log, its files and its server are untrusted; a statement counts only when the
//! log's signed, witnessed tree contains it and a quorum of the pinned release keys signed it.
//! Pure: no I/O and no clock (times are arguments), shared by the CLI, the browser (wasm32)
//! and every later client. The one edge, reading a bundle from a directory, is behind the `fs`
//! feature for the server and the release tools.

pub mod admit;
pub mod bundle;
pub mod manifest;
pub mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trust;

pub use admit::{AdmitError, Admitted, Claims, ReleaseSet};
pub use manifest::{Release, Revocation, Statement};
pub use sync::{LogError, LogState, LogSync, LogView};
pub use trust::{Trust, TrustError};

/// Parses `json` as a `T`, refusing first a `"format"` other than `format`: a file of another
/// version is named as such, not by the first field this version does not know.
fn parse_format<T: serde::de::DeserializeOwned, E>(
    json: &str,
    format: &str,
    json_error: fn(String) -> E,
    format_error: fn(String) -> E,
) -> Result<T, E> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| json_error(e.to_string()))?;
    if let Some(found) = value.get("format").and_then(|f| f.as_str()) {
        if found != format {
            return Err(format_error(found.to_string()));
        }
    }
    serde_json::from_value(value).map_err(|e| json_error(e.to_string()))
}
