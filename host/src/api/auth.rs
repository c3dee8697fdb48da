//! The admin token: `AIRLOCK_API_TOKEN`, or one generated at first start into
//! `STATE_DIR/api-token` (mode 0600). Only its SHA-256 is kept in memory.

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
        match bearer(parts) {
            Some(token) if api.accepts_admin(token) => Ok(Admin),
            Some(_) => Err(ApiError::Unauthorized(
                "the bearer token is not valid".into(),
            )),
            None => Err(ApiError::Unauthorized(
                "this route needs Authorization: Bearer <admin token>".into(),
            )),
        }
    }
}

/// A callback's credentials: its bearer token, and whether that is the admin token.
pub struct Bearer {
    pub token: Option<String>,
    pub admin: bool,
}

impl FromRequestParts<Arc<Api>> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Bearer, ApiError> {
        let token = bearer(parts).map(str::to_owned);
        let admin = token.as_deref().is_some_and(|t| api.accepts_admin(t));
        Ok(Bearer { token, admin })
    }
}

impl Api {
    fn accepts_admin(&self, token: &str) -> bool {
        self.admin
            .as_ref()
            .is_some_and(|admin| admin.accepts(token))
    }
}
