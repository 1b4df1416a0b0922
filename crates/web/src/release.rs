//! The release check as the browser drives it: which trust configuration applies, and one check
//! of the server's transparency log (`sotto_release::LogSync`), the same code the CLI runs.
//!
//! Trust: the server publishes the log and (for the development stack) a trust configuration;
//! both are untrusted. Which configuration counts is fixed when the wasm is compiled
//! ([`CompiledTrust`]): one pinned into the build wins and the server's is ignored; a
//! development build takes the server's only when it is a `dev` configuration (whose log can
//! admit nothing but development releases); any other build has the production pins. The web
//! app only fetches the files [`LogCheckCore::wanted`] names and hands their bytes back; the
//! verified releases stay here, for [`crate::channel::ChannelCore::admit`].

use serde::Serialize;
use sotto_release::sync::Cosigner;
use sotto_release::{LogSync, ReleaseSet, Trust, TrustError};

use crate::error::{json, WebError};

/// How this build of the web client chooses its trust configuration.
#[derive(Clone, Copy, Debug)]
pub struct CompiledTrust {
    /// A trust configuration compiled in (`SOTTO_WEB_TRUST=FILE bash scripts/web`): the only
    /// one this build accepts.
    pub pinned: Option<&'static str>,
    /// A development build (`SOTTO_WEB_ALLOW_SIMULATED=1`): without pins it takes the server's
    /// configuration, if that is a development one.
    pub allow_simulated: bool,
}

impl CompiledTrust {
    /// What the wasm was built with: `SOTTO_WEB_TRUST_JSON` and `SOTTO_WEB_ALLOW_SIMULATED`,
    /// read at compile time, so nothing at run time (the server least of all) can change it.
    pub fn of_this_build() -> Self {
        CompiledTrust {
            pinned: option_env!("SOTTO_WEB_TRUST_JSON").filter(|t| !t.trim().is_empty()),
            allow_simulated: option_env!("SOTTO_WEB_ALLOW_SIMULATED") == Some("1"),
        }
    }

    /// The trust configuration to check the log against, given the one the server publishes
    /// (`trust.json` of `/v1/collateral`, empty when it publishes none).
    pub fn select(&self, server_trust_json: &str) -> Result<Trust, WebError> {
        select_trust(self.pinned, self.allow_simulated, server_trust_json)
    }
}

/// The selection rule, from its inputs: pins compiled in win (the server's configuration is
/// not even read); else a development build accepts the server's configuration only when it
/// is a `dev` one; else the production pins of `sotto_release`.
pub fn select_trust(
    pinned: Option<&str>,
    allow_simulated: bool,
    server_trust_json: &str,
) -> Result<Trust, WebError> {
    if let Some(pinned) = pinned {
        return Trust::parse(pinned).map_err(|why| WebError::BadTrust {
            whose: "compiled-in",
            why,
        });
    }
    if allow_simulated {
        if server_trust_json.trim().is_empty() {
            return Err(WebError::NoServerTrust);
        }
        let trust = Trust::parse(server_trust_json).map_err(|why| WebError::BadTrust {
            whose: "server's",
            why,
        })?;
        if !trust.is_dev() {
            return Err(WebError::ServerTrustNotDev {
                origin: trust.origin().to_string(),
            });
        }
        return Ok(trust);
    }
    Trust::production().map_err(|why| match why {
        TrustError::NoProductionPins => WebError::NoProductionPins,
        why => WebError::BadTrust {
            whose: "production",
            why,
        },
    })
}

/// The verified log, as the user is shown it.
#[derive(Clone, Debug, Serialize)]
pub struct LogSummary {
    pub origin: String,
    pub size: u64,
    /// The signed root, hex.
    pub root: String,
    /// The size this browser had verified before, if it had.
    pub previous_size: Option<u64>,
    /// The pinned witnesses whose fresh cosignatures made the quorum, with their times.
    pub cosigners: Vec<Cosigner>,
    /// Whether the configuration is a development one (its keys prove nothing).
    pub dev: bool,
    /// How many entries the log holds that are statements (their signatures are checked when
    /// an enclave is admitted).
    pub statements: usize,
}

/// What `finish` returns to the web app: the state to store, and the summary.
#[derive(Serialize)]
struct Finished<'a> {
    /// The new `sotto-log-state/v1` JSON, to store (under `origin`) for the next check.
    state: String,
    origin: &'a str,
    size: u64,
    log: &'a LogSummary,
}

/// A verified log and the releases that count in it.
pub struct Checked {
    pub releases: ReleaseSet,
    pub summary: LogSummary,
}

enum Phase {
    Syncing(Box<LogSync>),
    Done(Box<Checked>),
    Failed(String),
}

/// One check of the server's log, from the checkpoint to the verified releases.
pub struct LogCheckCore {
    trust: Trust,
    phase: Phase,
}

impl LogCheckCore {
    /// `state_json` is what the last check stored for this log (`""` the first time); `now`
    /// is the current time in POSIX seconds.
    pub fn new(trust: Trust, state_json: &str, now: u64) -> Result<Self, WebError> {
        let prior = if state_json.trim().is_empty() {
            None
        } else {
            Some(sotto_release::LogState::from_json(state_json)?)
        };
        let sync = LogSync::new(&trust, prior, now)?;
        Ok(LogCheckCore {
            trust,
            phase: Phase::Syncing(Box::new(sync)),
        })
    }

    /// The log origin the trust configuration pins: the key to store the log state under.
    pub fn origin(&self) -> &str {
        self.trust.origin()
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The paths below the log's prefix (`/log/`) still needed, all fetchable at once; empty
    /// when [`Self::finish`] can be called (or the check is over).
    pub fn wanted(&self) -> Vec<String> {
        match &self.phase {
            Phase::Syncing(sync) => sync.wanted(),
            Phase::Done(_) | Phase::Failed(_) => Vec::new(),
        }
    }

    /// [`Self::wanted`] as a JSON array.
    pub fn wanted_json(&self) -> Result<String, WebError> {
        serde_json::to_string(&self.wanted()).map_err(json("wanted paths"))
    }

    fn fail(&mut self, e: WebError) -> WebError {
        self.phase = Phase::Failed(e.to_string());
        e
    }

    fn sync(&mut self) -> Result<&mut LogSync, WebError> {
        match &mut self.phase {
            Phase::Syncing(sync) => Ok(sync),
            Phase::Done(_) => Err(WebError::State("the log check is already finished")),
            Phase::Failed(why) => Err(WebError::CheckFailed(why.clone())),
        }
    }

    /// Hands over the body of one fetched path. Any refusal ends the check.
    pub fn give(&mut self, path: &str, body: &[u8]) -> Result<(), WebError> {
        let result = self.sync()?.give(path, body);
        result.map_err(|e| self.fail(e.into()))
    }

    /// Verifies the entries against the signed root. Returns
    /// `{"state","origin","size","log":{…}}`: the state to store and what was verified.
    pub fn finish(&mut self) -> Result<String, WebError> {
        let sync = match std::mem::replace(
            &mut self.phase,
            Phase::Failed("the log check was interrupted".into()),
        ) {
            Phase::Syncing(sync) => sync,
            done @ Phase::Done(_) => {
                self.phase = done;
                return Err(WebError::State("the log check is already finished"));
            }
            Phase::Failed(why) => {
                self.phase = Phase::Failed(why.clone());
                return Err(WebError::CheckFailed(why));
            }
        };
        let (view, state) = sync.finish().map_err(|e| self.fail(e.into()))?;
        let releases = ReleaseSet::from_entries(&self.trust, &view.entries);
        let summary = LogSummary {
            origin: view.checkpoint.origin.clone(),
            size: view.checkpoint.size,
            root: hex::encode(view.checkpoint.root),
            previous_size: view.previous_size,
            cosigners: view.cosigners,
            dev: self.trust.is_dev(),
            statements: view.entries.len() - releases.ignored.len(),
        };
        let out = serde_json::to_string(&Finished {
            state: state.to_json(),
            origin: &summary.origin,
            size: summary.size,
            log: &summary,
        })
        .map_err(json("log check result"))?;
        self.phase = Phase::Done(Box::new(Checked { releases, summary }));
        Ok(out)
    }

    /// The verified releases, once [`Self::finish`] succeeded.
    pub fn checked(&self) -> Result<&Checked, WebError> {
        match &self.phase {
            Phase::Done(checked) => Ok(checked),
            Phase::Syncing(_) => Err(WebError::State(
                "the release log has not been checked: LogCheck.finish() must succeed first",
            )),
            Phase::Failed(why) => Err(WebError::CheckFailed(why.clone())),
        }
    }
}
