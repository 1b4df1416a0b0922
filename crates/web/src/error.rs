//! Everything the browser layer can refuse. Each message is what the user (or the UI author)
//! needs to know about which check failed; the JS side receives it as an `Error`'s message.

use sotto_channel::ChannelError;
use sotto_client::ClientError;
use sotto_release::{LogError, TrustError};
use sotto_vault::{RecoveryCodeError, VaultError};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("invalid {what}: {reason}")]
    Json { what: &'static str, reason: String },
    #[error("{field} is not valid base64")]
    Base64 { field: &'static str },
    #[error("{field} must be {bytes} bytes of hex")]
    Hex { field: &'static str, bytes: usize },
    #[error("{what} must be a whole number from 0 to 2^53 - 1, not {value}")]
    Number { what: &'static str, value: f64 },
    #[error("{0}")]
    State(&'static str),
    #[error("this channel failed earlier ({0}) and is closed: open a new one")]
    Closed(String),
    #[error("this log check failed earlier ({0}): start a new one")]
    CheckFailed(String),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("the release log cannot be trusted: {0}")]
    Log(#[from] LogError),
    #[error("the {whose} release trust configuration is unusable: {why}")]
    BadTrust {
        whose: &'static str,
        why: TrustError,
    },
    #[error(
        "this web client pins no production release log yet, so it cannot tell which enclaves \
         are Sotto's: a deployment builds it with SOTTO_WEB_TRUST=FILE (its trust.json)"
    )]
    NoProductionPins,
    #[error(
        "the server publishes no development trust configuration (trust.json in \
         /v1/collateral), so this development client has no release log to check: run the \
         server with --dev-release (as `sotto up` does), or build the client with \
         SOTTO_WEB_TRUST=FILE"
    )]
    NoServerTrust,
    #[error(
        "the server offered the trust configuration of the log {origin}, which is not a \
         development one: this client takes only a development configuration from a server \
         (a production log must be compiled in with SOTTO_WEB_TRUST=FILE)"
    )]
    ServerTrustNotDev { origin: String },
    #[error(
        "this build of the web client refuses the simulated development platform \
         (SOTTO_WEB_ALLOW_SIMULATED=0), whatever the page asks"
    )]
    SimulatedNotBuilt,
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    RecoveryCode(#[from] RecoveryCodeError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("signed out: this client's keys are gone")]
    SignedOut,
}

pub(crate) fn json(what: &'static str) -> impl FnOnce(serde_json::Error) -> WebError {
    move |e| WebError::Json {
        what,
        reason: e.to_string(),
    }
}

/// For inputs that hold the user's words: serde's messages can quote the offending value, so
/// only the kind of error and its position are kept, in case the UI reports errors anywhere.
pub(crate) fn json_quiet(what: &'static str) -> impl FnOnce(serde_json::Error) -> WebError {
    move |e| WebError::Json {
        what,
        reason: format!(
            "{} error at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "read",
                serde_json::error::Category::Syntax => "syntax",
                serde_json::error::Category::Data => "shape",
                serde_json::error::Category::Eof => "truncation",
            },
            e.line(),
            e.column()
        ),
    }
}

/// A JS number as an exact unsigned integer: versions, times and sequence numbers travel as
/// JSON numbers, which JavaScript holds as doubles.
pub fn whole_number(value: f64, what: &'static str) -> Result<u64, WebError> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if (0.0..=MAX_SAFE).contains(&value) && value.fract() == 0.0 {
        Ok(value as u64)
    } else {
        Err(WebError::Number { what, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_safe_integers_pass() {
        assert_eq!(whole_number(0.0, "t").unwrap(), 0);
        assert_eq!(whole_number(1_700_000_000.0, "t").unwrap(), 1_700_000_000);
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
            assert!(matches!(
                whole_number(bad, "t"),
                Err(WebError::Number { .. })
            ));
        }
    }
}
