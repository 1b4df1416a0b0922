//! What a client requires of an enclave before it sends anything — the evidence policy, the
//! expected model and measurement, the release log it trusts — as the options `sotto chat`
//! and `sotto proxy` share, and the one way both open a verified connection.

use std::path::PathBuf;

use sotto_channel::handshake::Expectations;
use sotto_client::enclaves;
use sotto_release::Trust;
use sotto_verify::Policy;

use super::AnyError;
use crate::client::{now, Connection};
use crate::local::{self, Profile};
use crate::transparency::Checked;

/// Where the enclave is reached: the server, and optionally a hop in front of its relay.
#[derive(clap::Args)]
pub struct Route {
    /// The server's URL, e.g. http://localhost:8080.
    #[arg(long, default_value = "http://localhost:8080")]
    pub server: String,
    /// Reach the enclave through an independent hop (`sotto hop`) at this URL, so the server
    /// sees the hop's address instead of yours. Accounts, history and the release log still
    /// go to the server directly.
    #[arg(long)]
    pub via: Option<String>,
    /// Talk to this enclave of the server's pool (an id its /v1/enclaves lists) and no other,
    /// instead of one this client picks at random among those up (which the relay replaces
    /// only when it cannot reach it).
    #[arg(long, value_name = "ID")]
    pub enclave: Option<String>,
}

impl Route {
    /// To `server`'s relay, directly, to an enclave picked at random.
    pub fn to(server: &str) -> Self {
        Route {
            server: server.to_owned(),
            via: None,
            enclave: None,
        }
    }

    /// The relay URL for one connection: the hop's when there is one, insisting on
    /// `--enclave` or preferring an enclave picked here at random among those the server lists
    /// as up, so that the server does not choose which machine this client reaches.
    pub async fn relay_url(&self) -> Result<String, AnyError> {
        let relay = crate::client::relay_url(self.via.as_deref().unwrap_or(&self.server))?;
        let picked = match &self.enclave {
            Some(id) => Some((id.clone(), true)),
            None => {
                let api = crate::api::ApiClient::new(&self.server)?;
                let list = sotto_client::enclaves::read(&api.send(enclaves::request()).await?)?;
                let mut random = [0u8; 8];
                getrandom::getrandom(&mut random)?;
                enclaves::pick(&list, u64::from_le_bytes(random)).map(|id| (id.to_owned(), false))
            }
        };
        Ok(match picked {
            Some((id, insist)) => enclaves::relay_for(&relay, &id, insist)?,
            None => relay,
        })
    }
}

#[derive(clap::Args)]
pub struct EnclaveArgs {
    /// Accept an enclave on the SIMULATED platform (local development only: its evidence
    /// proves nothing about real hardware).
    #[arg(long)]
    pub insecure_simulated: bool,
    /// Pin the simulated platform's root certificate (DER). Without it, the root published by
    /// a local `sotto up` in the default data directory is pinned when present.
    #[arg(long, requires = "insecure_simulated")]
    simulated_root: Option<PathBuf>,
    /// The trust configuration (release log, witnesses, release keys) of a self-hosted
    /// deployment, replacing the pins built into this client. With --insecure-simulated and
    /// no --trust, the local `sotto up` stack's development log is trusted.
    #[arg(long)]
    trust: Option<PathBuf>,
    /// Refuse an enclave whose manifest names another model (hex SHA-256).
    #[arg(long, value_parser = super::parse_digest)]
    expect_model_sha256: Option<[u8; 32]>,
    /// Refuse an enclave whose launch measurement differs (SEV-SNP MEASUREMENT or TDX MRTD,
    /// 96 hex digits), e.g. the value a release publishes.
    #[arg(long, value_parser = super::parse_measurement)]
    expect_measurement: Option<[u8; 48]>,
}

/// Everything an enclave is checked against, resolved once (with its warnings printed).
pub struct Checks {
    pub policy: Policy,
    pub expect: Expectations,
    pub trust: Trust,
}

impl EnclaveArgs {
    pub fn checks(&self) -> Result<Checks, AnyError> {
        let mut policy = Policy::default();
        if self.insecure_simulated {
            eprintln!(
                "WARNING: --insecure-simulated accepts an enclave on the SIMULATED platform. Its \
                 evidence proves nothing about real hardware; do not use it for real \
                 conversations."
            );
            policy.allow_simulated = true;
            let local = local::default_data_dir()
                .join("collateral")
                .join(local::SIMULATED_ROOT_FILE);
            let root = match &self.simulated_root {
                Some(path) => Some(
                    std::fs::read(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                ),
                None => std::fs::read(local).ok(),
            };
            if root.is_none() {
                eprintln!(
                    "WARNING: no simulated root pinned: any simulated enclave will be accepted."
                );
            }
            policy.simulated_root = root;
        }
        if let Some(m) = self.expect_measurement {
            policy.snp.allowed_measurements = vec![m];
            policy.tdx.expected_mrtd = Some(m);
        }
        let trust = crate::transparency::resolve(
            self.trust.as_deref(),
            self.insecure_simulated,
            &local::default_data_dir(),
        )?;
        if trust.is_dev() {
            eprintln!(
                "WARNING: trusting the DEVELOPMENT release log {} of a local `sotto up`: its \
                 keys live on this machine and prove nothing about which builds are Sotto's.",
                trust.origin()
            );
        }
        Ok(Checks {
            policy,
            expect: Expectations {
                model_sha256: self.expect_model_sha256,
            },
            trust,
        })
    }
}

impl Checks {
    /// Opens a connection by `route` (the server, or a hop in front of it), spending the
    /// relay token `token` (its `Authorization` value) on the upgrade when the relay requires
    /// one, and admits it only after the evidence, then the release log `server` serves, check
    /// out. Nothing is sent before.
    pub async fn open(
        &self,
        route: &Route,
        token: Option<&str>,
        profile: &Profile,
    ) -> Result<(Connection, Checked), AnyError> {
        let relay = route.relay_url().await?;
        // The evidence first (a simulated or forged enclave is refused for that), then the log.
        let pending =
            Connection::attest_paying(&relay, token, &self.policy, &self.expect, now()).await?;
        let checked =
            crate::transparency::check(&route.server, &self.trust, profile, now().0).await?;
        let conn = pending.admit(&checked.releases).await?;
        Ok((conn, checked))
    }
}
