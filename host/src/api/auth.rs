//! Who may call the API. The admin token: `AIRLOCK_API_TOKEN`, or one generated at first start
//! into `STATE_DIR/api-token` (mode 0600); only its SHA-256 is kept in memory. A run token (the
//! one the gate adds to a node's requests to the public URL, see `secrets::PlatformKey`): while
//! its run is in progress, it reads that run and updates and logs its node runs; anything else
//! with it is 403, and once the run has ended it is 401.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use super::{Api, ApiError};
use crate::engine::{CALLBACK_TOKEN_SECRET, RunStatus};
use crate::secrets::{PLATFORM_TOKEN_SECRET, PresentedToken};

/// What the admin token is called where an echo of it is masked.
const ADMIN_TOKEN_SECRET: &str = "airlock-api-token";

/// Where the admin token came from, for the start-up log.
pub enum TokenSource {
    Environment,
    Generated(PathBuf),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin token file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("admin token file {0} is empty")]
    Empty(String),
}

pub struct AdminToken {
    sha256: [u8; 32],
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            sha256: sha256(token),
        }
    }

    /// `env` (AIRLOCK_API_TOKEN) when set, else the token file under `state_dir`, created with a
    /// fresh random token when missing.
    pub fn load(
        env: Option<String>,
        state_dir: &Path,
    ) -> Result<(AdminToken, TokenSource), TokenError> {
        if let Some(token) = env.filter(|t| !t.is_empty()) {
            return Ok((AdminToken::new(&token), TokenSource::Environment));
        }
        let path = state_dir.join("api-token");
        let io = |source| TokenError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => {
                Err(TokenError::Empty(path.display().to_string()))
            }
            Ok(text) => Ok((AdminToken::new(text.trim()), TokenSource::File(path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let token = hex::encode(bytes);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                file.write_all(format!("{token}\n").as_bytes())
                    .map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((AdminToken::new(&token), TokenSource::Generated(path)))
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn accepts(&self, presented: &str) -> bool {
        // Comparing digests: the time taken says nothing about the token's own bytes.
        sha256(presented) == self.sha256
    }
}

pub fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// The bearer token of a request, if it has one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// A handler argument that admits only requests carrying the admin token.
pub struct Admin;

impl FromRequestParts<Arc<Api>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Admin, ApiError> {
        match AdminOrRun::from_request_parts(parts, api).await? {
            AdminOrRun::Admin => Ok(Admin),
            AdminOrRun::Run(_) => Err(run_token_out_of_scope()),
        }
    }
}

fn run_token_out_of_scope() -> ApiError {
    ApiError::Forbidden(
        "a run token reads only its own run and updates and logs only that run's node runs".into(),
    )
}

/// A handler argument for what a run token may also do: the admin token, or the run token of
/// a run in progress (its run's identifier).
pub enum AdminOrRun {
    Admin,
    Run(String),
}

impl AdminOrRun {
    /// Whether this caller may read run `wfr`: 403 for another run's token.
    pub fn may_read(&self, wfr: &str) -> Result<(), ApiError> {
        match self {
            AdminOrRun::Run(run) if run != wfr => Err(run_token_out_of_scope()),
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<Arc<Api>> for AdminOrRun {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<AdminOrRun, ApiError> {
        match bearer(parts) {
            Some(token) if api.accepts_admin(token) => Ok(AdminOrRun::Admin),
            Some(token) => match api.run_of_token(token) {
                Some(run) => api.live_run(run).map(AdminOrRun::Run),
                None => Err(ApiError::Unauthorized(
                    "the bearer token is not valid".into(),
                )),
            },
            None => Err(ApiError::Unauthorized(
                "this route needs Authorization: Bearer <admin token>".into(),
            )),
        }
    }
}

/// A callback's credentials: its bearer token, whether that is the admin token, and the run a
/// run token was made for.
pub struct Bearer {
    pub token: Option<String>,
    pub admin: bool,
    pub run: Option<String>,
}

impl FromRequestParts<Arc<Api>> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Bearer, ApiError> {
        let token = bearer(parts).map(str::to_owned);
        let admin = token.as_deref().is_some_and(|t| api.accepts_admin(t));
        let run = match &token {
            Some(token) if !admin => api.run_of_token(token).map(str::to_owned),
            _ => None,
        };
        Ok(Bearer { token, admin, run })
    }
}

impl Bearer {
    /// The token presented, to be masked in whatever the caller posts (a webhook service may
    /// echo its callback token in its logs), under the name of the secret it is. Of a run token
    /// that is its MAC: the run id before it is no secret. `None` for an admin token an operator
    /// chose (see `PresentedToken::new`); a generated one is masked.
    pub fn presented(&self) -> Option<PresentedToken> {
        let token = self.token.as_deref()?;
        if self.admin {
            PresentedToken::new(ADMIN_TOKEN_SECRET, token)
        } else if self.run.is_some() {
            let (_, mac) = token.rsplit_once('.')?;
            PresentedToken::new(PLATFORM_TOKEN_SECRET, mac)
        } else {
            PresentedToken::new(CALLBACK_TOKEN_SECRET, token)
        }
    }

    /// Whether this caller may update or log node run `wfnr`: the admin token, the node run's
    /// callback token, or the run token of the run it belongs to while that run is in progress.
    pub fn may_update(&self, api: &Api, wfnr: &str) -> Result<(), ApiError> {
        let Some(run) = &self.run else {
            return Ok(api
                .conductor
                .authorize(wfnr, self.token.as_deref(), self.admin)?);
        };
        api.live_run(run)?;
        match api.store.node_run_owner(wfnr)? {
            None => Err(ApiError::NotFound(format!("no node run {wfnr}"))),
            Some(owner) if owner == *run => Ok(()),
            Some(_) => Err(run_token_out_of_scope()),
        }
    }
}

impl Api {
    fn accepts_admin(&self, token: &str) -> bool {
        self.admin
            .as_ref()
            .is_some_and(|admin| admin.accepts(token))
    }

    /// The run `token` was made for, when it is a run token of this server.
    fn run_of_token<'t>(&self, token: &'t str) -> Option<&'t str> {
        self.runtime.platform_key.as_ref()?.run_of(token)
    }

    /// A run token works only while its run is in progress.
    fn live_run(&self, run: &str) -> Result<String, ApiError> {
        match self.store.run(run)? {
            Some(stored) if stored.status == RunStatus::InProgress => Ok(run.to_owned()),
            _ => Err(ApiError::Unauthorized(
                "this run token's run has ended".into(),
            )),
        }
    }
}
