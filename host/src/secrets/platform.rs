//! Run tokens for the platform's own API. Under `airlock serve`, a node's request to the server's
//! `--public-url` gets `Authorization: Bearer <run token>` from the gate; the token lets it read
//! its own run and update its node runs, nothing else (see `api::auth`).
//!
//! A run token is derived, not stored: `<run id>.<hex HMAC-SHA256(server key, run id)>`. The
//! server key is generated once into `STATE_DIR/platform-key` (mode 0600), so a run resumed after
//! a restart has the same token, and one key file is all there is to protect or rotate.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::SecretsError;

/// The secret name a run token goes by in audit records and masked text.
pub const PLATFORM_TOKEN_SECRET: &str = "airlock-platform-token";

const KEY_FILE: &str = "platform-key";
const KEY_BYTES: usize = 32;

/// The server key run tokens are derived from. Never printed; wiped on drop.
pub struct PlatformKey {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformKey")
    }
}

/// Where the key came from, for the start-up log.
#[derive(Debug)]
pub enum KeySource {
    Generated(PathBuf),
    File(PathBuf),
}

impl PlatformKey {
    /// The key in `STATE_DIR/platform-key`, created with 256 random bits when missing.
    pub fn load_or_create(state_dir: &Path) -> Result<(PlatformKey, KeySource), SecretsError> {
        let path = state_dir.join(KEY_FILE);
        let error = |reason: String| SecretsError::File {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let key = hex::decode(text.trim())
                    .ok()
                    .filter(|key| key.len() == KEY_BYTES)
                    .ok_or_else(|| error(format!("expected {KEY_BYTES} bytes in hex")))?;
                Ok((PlatformKey::new(key), KeySource::File(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; KEY_BYTES] = rand::random();
                let text = Zeroizing::new(format!("{}\n", hex::encode(key)));
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| error(e.to_string()))?;
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| error(e.to_string()))?;
                Ok((PlatformKey::new(key.to_vec()), KeySource::Generated(path)))
            }
            Err(e) => Err(error(e.to_string())),
        }
    }

    fn new(key: Vec<u8>) -> PlatformKey {
        PlatformKey {
            key: Zeroizing::new(key),
        }
    }

    fn mac(&self, run: &str) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(run.as_bytes());
        mac
    }

    /// The secret part of run `run`'s token: the MAC in hex.
    pub(super) fn run_mac(&self, run: &str) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.mac(run).finalize().into_bytes()))
    }

    /// The run a presented bearer token was made for, when it is a run token made with this key
    /// (compared in constant time); `None` for anything else.
    pub fn run_of<'t>(&self, presented: &'t str) -> Option<&'t str> {
        let (run, mac) = presented.rsplit_once('.')?;
        let mac = hex::decode(mac).ok()?;
        self.mac(run).verify_slice(&mac).ok()?;
        Some(run)
    }
}
