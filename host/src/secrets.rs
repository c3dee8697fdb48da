//! The one module that knows secret values: loading them, the per-node-run handles templates see
//! instead of them, revealing handles at send time, recognising a value in any encoding it can
//! come back in, and scrubbing everything that leaves a node run (outputs, errors, logs, audit
//! records, stored runs, printed text). Every exit calls `Bindings::scrub*` or
//! `SecretStore::redact*`; both write the one label `[secret:NAME]`.
//!
//! Values live in `SecretString` / `Zeroizing` buffers (wiped on drop) and nothing here derives
//! `Debug`/`Display` over them: the hand-written `Debug` impls show names only. The compiled
//! echo matcher necessarily holds the values' bytes and is not wiped.

mod echo;
mod platform;
mod tokens;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use echo::{Echoes, ends_in_unfinished_escape, json_escape_into, url_component_into};
use serde_json::Value;
use tokens::{EncodedForms, TokenEcho};

pub use platform::{KeySource, PLATFORM_TOKEN_SECRET, PlatformKey};

const ENV_PREFIX: &str = "AIRLOCK_SECRET_";
const HANDLE_PREFIX: &[u8] = b"__airlock_secret_";
const HANDLE_HEX_LEN: usize = 32;
const HANDLE_SUFFIX: &[u8] = b"__";
const HANDLE_LEN: usize = HANDLE_PREFIX.len() + HANDLE_HEX_LEN + HANDLE_SUFFIX.len();

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("secrets file {path}: secret \"{name}\": {reason}")]
    FileSecret {
        path: String,
        name: String,
        reason: String,
    },
    #[error("environment variable {variable}: {reason}")]
    Env { variable: String, reason: String },
}

/// Why a handle could not be swapped for its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevealError {
    /// `%2{{handle}}`, `%25{{handle}}`, `\\{{handle}}`, `&#x00{{handle}}`: a receiver that decodes
    /// the text (once or twice, as URL, JSON, HTML, …) would read the value's first characters as
    /// part of what precedes them, and an echo of the result would no longer look like the
    /// value. Only characters no encoding continues are allowed before a handle.
    #[error(
        "secret {name}: its handle must follow the start of the text, white space or one of {SAFE_BEFORE_HANDLE_SHOWN}; after any other character (such as the `2` of `%2`, a `\\` or the `x` of `&#x`) a receiver that decodes the text could read the start of the value as part of it"
    )]
    JoinedBefore { name: String },
    /// The value itself ends in an unfinished escape and the node put text right after it.
    #[error(
        "secret {name}: its value ends in an unfinished escape sequence and text follows its handle, which would join to it"
    )]
    JoinedAfter { name: String },
}

/// What may directly precede a handle (besides the start of the text and white space).
const SAFE_BEFORE_HANDLE: &[u8] = b"=:/,;\"'()[]{}?-_.+@<>|!*";
const SAFE_BEFORE_HANDLE_SHOWN: &str = "= : / , ; \" ' ( ) [ ] { } ? - _ . + @ < > | ! *";

/// Whether a value placed after `text` starts afresh: nothing before it can take it in.
fn separated(text: &[u8]) -> bool {
    text.last()
        .is_none_or(|&b| b.is_ascii_whitespace() || SAFE_BEFORE_HANDLE.contains(&b))
}

/// How a secret's value is written where its handle sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The value's bytes as they are (header values, raw bodies).
    Raw,
    /// Percent-encoded except RFC 3986 unreserved characters (URL path segments, query values).
    UrlComponent,
    /// Escaped as inside a JSON string, without the surrounding quotes.
    JsonString,
}

struct Secret {
    name: String,
    value: SecretString,
    /// What replaces an echo of the value: `[secret:NAME]`.
    label: String,
}

/// Secret values loaded by the host. Values are held as secrecy/zeroize types and never printed.
pub struct SecretStore {
    /// Sorted by name.
    secrets: Vec<Secret>,
    echoes: Echoes,
    /// Their base64 forms, escaped or wrapped (see `tokens::EncodedForms`); `echoes` matches the
    /// forms a text without an escape or a line break can hold (as is, in either case, `+` as a
    /// space).
    base64: EncodedForms,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// `file`: JSON object name -> string value. `env`: the process environment; every
    /// `AIRLOCK_SECRET_<NAME>` defines secret `<name>` lowercased with '_' turned into '-'
    /// (AIRLOCK_SECRET_API_TOKEN -> "api-token"); on a clash the variable wins (operator
    /// override). Empty names or values are errors.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SecretStore, SecretsError> {
        let mut values = match file {
            Some(path) => load_file(path)?,
            None => BTreeMap::new(),
        };
        for (variable, value) in env {
            let Some(raw_name) = variable.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = raw_name.to_lowercase().replace('_', "-");
            if name.is_empty() {
                return Err(SecretsError::Env {
                    variable,
                    reason: "empty secret name".into(),
                });
            }
            // Moving the String in avoids leaving an unzeroized copy behind.
            let value = SecretString::from(value);
            if value.expose_secret().is_empty() {
                return Err(SecretsError::Env {
                    variable,
                    reason: format!("secret \"{name}\" has an empty value"),
                });
            }
            values.insert(name, value);
        }
        Ok(Self::from_values(values))
    }

    pub fn empty() -> SecretStore {
        Self::from_values(BTreeMap::new())
    }

    fn from_values(values: BTreeMap<String, SecretString>) -> SecretStore {
        let secrets: Vec<Secret> = values
            .into_iter()
            .map(|(name, value)| Secret {
                label: format!("[secret:{name}]"),
                name,
                value,
            })
            .collect();
        let echoes = Echoes::new(secrets.iter().map(|s| s.value.expose_secret()));
        let base64 = EncodedForms::new(secrets.iter().enumerate().flat_map(|(i, secret)| {
            echo::base64_value_forms(&[secret.value.expose_secret().as_bytes()])
                .into_iter()
                .map(move |form| (form, i))
        }));
        SecretStore {
            secrets,
            echoes,
            base64,
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index_of(name).is_some()
    }

    pub fn names(&self) -> Vec<String> {
        self.secrets.iter().map(|s| s.name.clone()).collect()
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.secrets
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
    }

    /// Replaces every echo of every secret value (see `echo`: plain, percent-encoded, JSON-escaped
    /// in every common style, hex escapes, character references, base64) with `[secret:NAME]`.
    /// Returns `Cow::Borrowed` when nothing matched. Values shorter than 4 bytes are not
    /// redacted: see `echo::MIN_ECHO_LEN`.
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        labelled_echoes(bytes, self.echoes_in(bytes), |secret| {
            &self.secrets[secret].label
        })
    }

    /// Every echo of a secret in `bytes` (`token`: the secret's index), in no particular order.
    fn echoes_in(&self, bytes: &[u8]) -> Vec<TokenEcho> {
        let mut found = Vec::new();
        if self.echoes.is_match(bytes) {
            found.extend(self.echoes.find_iter(bytes).map(|m| TokenEcho {
                start: m.start,
                end: m.end,
                token: m.secret,
            }));
        }
        // Read character by character only where a base64 form can be escaped or wrapped: the
        // read costs several times the pattern's scan (2-6x measured).
        if !self.base64.is_empty() && tokens::may_hold_escapes_or_breaks(bytes) {
            found.extend(self.base64.find(bytes));
        }
        found
    }

    /// Names of the secrets whose value occurs in `bytes` in any form `redact` recognises.
    pub fn values_in(&self, bytes: &[u8]) -> Vec<&str> {
        let mut found = vec![false; self.secrets.len()];
        for echo in self.echoes_in(bytes) {
            found[echo.token] = true;
        }
        self.secrets
            .iter()
            .zip(found)
            .filter(|(_, found)| *found)
            .map(|(s, _)| s.name.as_str())
            .collect()
    }

    /// `redact` over every string, key and number of a JSON value.
    pub fn redact_json(&self, value: Value) -> Value {
        map_json_text(value, &|text| self.redact_str(text))
    }

    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        as_text(text, self.redact(text.as_bytes()))
    }
}

/// `bytes` with each echo `(start, end, whose)` (in the order they start) replaced by
/// `label(whose)`. `at`: how far the text is copied or covered. An echo overlapping the last one
/// covers the rest of its own span, under its label unless it is of the same value (a value that
/// overlaps itself, `aaaa` in `aaaaaa`, gets one label); one inside it adds nothing.
fn labelled<'l>(
    bytes: &[u8],
    echoes: impl Iterator<Item = (usize, usize, usize)>,
    label: impl Fn(usize) -> &'l str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut at, mut last) = (0, None);
    for (start, end, whose) in echoes {
        if end <= at {
            continue;
        }
        if start >= at {
            out.extend_from_slice(&bytes[at..start]);
        }
        if start >= at || last != Some(whose) {
            out.extend_from_slice(label(whose).as_bytes());
        }
        (at, last) = (end, Some(whose));
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// `text` after a byte-level redaction. Echo forms and labels are valid UTF-8 and UTF-8 is
/// self-synchronising, so a match never splits a character; the lossy fallback only guards that
/// reasoning.
fn as_text<'a>(text: &'a str, redacted: Cow<'_, [u8]>) -> Cow<'a, str> {
    match redacted {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(
            String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

fn load_file(path: &Path) -> Result<BTreeMap<String, SecretString>, SecretsError> {
    let shown = path.display().to_string();
    let file_err = |reason: String| SecretsError::File {
        path: shown.clone(),
        reason,
    };
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?);
    // Only the position is reported: serde_json's messages can quote the offending input.
    let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        file_err(format!(
            "invalid JSON at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    let serde_json::Value::Object(map) = parsed else {
        return Err(file_err(
            "expected a JSON object mapping secret names to string values".into(),
        ));
    };
    let mut values = BTreeMap::new();
    for (name, value) in map {
        let secret_err = |reason: &str| SecretsError::FileSecret {
            path: shown.clone(),
            name: name.clone(),
            reason: reason.into(),
        };
        if name.is_empty() {
            return Err(secret_err("empty secret name"));
        }
        let serde_json::Value::String(value) = value else {
            return Err(secret_err(&format!(
                "value must be a string, found {}",
                json_type(&value)
            )));
        };
        let value = SecretString::from(value);
        if value.expose_secret().is_empty() {
            return Err(secret_err("empty value"));
        }
        values.insert(name, value);
    }
    Ok(values)
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[derive(Clone)]
struct Binding {
    secret: Held,
    handle: String,
    /// Whether the gate may reveal it: only secrets the node's own config referenced.
    usable: bool,
}

/// Where a bound secret's value lives.
#[derive(Clone)]
enum Held {
    /// Index into the store's secrets.
    Loaded(usize),
    /// A value made for one node run only (an async webhook's callback token, the run token's
    /// MAC).
    Own(Arc<OwnValue>),
}

/// A value made for one node run (64 hex digits, see `tokens`), with the base64 forms a response
/// may echo it in (made once, when it is bound: responses are redacted header by header).
struct OwnValue {
    secret: Secret,
    base64: EncodedForms,
}

impl OwnValue {
    fn new(name: &str, value: &str) -> OwnValue {
        debug_assert!(tokens::is_token(value), "a value made here is a token");
        let value = Zeroizing::new(value.to_ascii_lowercase());
        // A receiver may have upper-cased the token before encoding it.
        let upper = Zeroizing::new(value.to_ascii_uppercase());
        OwnValue {
            base64: EncodedForms::new(
                echo::base64_value_forms(&[value.as_bytes(), upper.as_bytes()])
                    .into_iter()
                    .map(|form| (form, 0)),
            ),
            secret: Secret {
                name: name.to_owned(),
                value: SecretString::from(value.as_str()),
                label: format!("[secret:{name}]"),
            },
        }
    }

    fn digits(&self) -> &[u8] {
        self.secret.value.expose_secret().as_bytes()
    }

    /// Whether `bytes` holds the value in one of its base64 forms (read as `redact` reads them).
    fn in_base64(&self, bytes: &[u8]) -> bool {
        !self.base64.find(bytes).is_empty()
    }
}

/// `bytes` with every echo of `owns` (each digit in any form, or base64, each character in any
/// form, wrapped or not) replaced by its label.
fn redact_own<'a>(bytes: &'a [u8], owns: &[Arc<OwnValue>]) -> Cow<'a, [u8]> {
    let mut echoes = tokens::find(bytes, owns.iter().map(|own| own.digits()));
    for (i, own) in owns.iter().enumerate() {
        echoes.extend(
            own.base64
                .find(bytes)
                .into_iter()
                .map(|echo| TokenEcho { token: i, ..echo }),
        );
    }
    labelled_echoes(bytes, echoes, |token| &owns[token].secret.label)
}

/// [`labelled`] for echoes found by several searches, in any order: `Cow::Borrowed` when there
/// are none.
fn labelled_echoes<'a, 'l>(
    bytes: &'a [u8],
    mut echoes: Vec<TokenEcho>,
    label: impl Fn(usize) -> &'l str,
) -> Cow<'a, [u8]> {
    if echoes.is_empty() {
        return Cow::Borrowed(bytes);
    }
    // In the order they start, the longest first where two start together.
    echoes.sort_by_key(|echo| (echo.start, std::cmp::Reverse(echo.end)));
    let spans = echoes.iter().map(|e| (e.start, e.end, e.token));
    Cow::Owned(labelled(bytes, spans, label))
}

/// A token a caller presented to the API: what that caller posts is stored and shown, so every
/// echo of the token in it is masked first, in the forms a node run's own values are recognised
/// in.
pub struct PresentedToken(Arc<OwnValue>);

impl PresentedToken {
    /// `None` for a token not made here (an admin token an operator chose: nothing keeps it
    /// but its SHA-256, and it has no shape to recognise it by).
    pub fn new(name: &str, token: &str) -> Option<PresentedToken> {
        tokens::is_token(token).then(|| PresentedToken(Arc::new(OwnValue::new(name, token))))
    }

    /// Every string, key and number of `value` with the token's echoes masked.
    pub fn redact_json(&self, value: Value) -> Value {
        map_json_text(value, &|text| {
            as_text(
                text,
                redact_own(text.as_bytes(), std::slice::from_ref(&self.0)),
            )
        })
    }
}

/// A callback token bound in one node run: the handle its request carries (the gate swaps it for
/// the token), and the token's SHA-256 in hex, which is all the store keeps.
#[derive(Debug, Clone)]
pub struct BoundToken {
    pub handle: String,
    pub sha256: String,
}

/// SHA-256 (hex) of a presented token, to compare with a stored [`BoundToken::sha256`].
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Per node run: a random opaque handle per secret. Templates see handles (via
/// `context_object`), never values; the egress gate swaps handles for values at send time.
#[derive(Clone)]
pub struct Bindings {
    store: Arc<SecretStore>,
    bound: Vec<Binding>,
    /// The values made for this node run (also in `bound`), searched for in everything redacted.
    own: Vec<Arc<OwnValue>>,
    /// The run token for the platform's API, when bound: its run, and its MAC's index in `bound`.
    run_token: Option<(String, usize)>,
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.bound.iter().map(|b| self.name(b)).collect();
        f.debug_struct("Bindings")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Bindings {
    pub fn new(store: Arc<SecretStore>) -> Bindings {
        let bound = (0..store.secrets.len())
            .map(|secret| Binding {
                secret: Held::Loaded(secret),
                handle: new_handle(),
                usable: true,
            })
            .collect();
        Bindings {
            store,
            bound,
            own: Vec::new(),
            run_token: None,
        }
    }

    /// Makes a random token under the secret name `name` for this node run only: its requests
    /// reveal it where its handle sits (so the node never holds it), and every scrub masks it as
    /// `[secret:NAME]`.
    pub fn bind_token(&mut self, name: &str) -> BoundToken {
        let random: [u8; 32] = rand::random();
        let token = Zeroizing::new(hex::encode(random));
        let sha256 = token_sha256(&token);
        let handle = new_handle();
        self.bind_own(name, &token, handle.clone(), true);
        BoundToken { handle, sha256 }
    }

    /// Binds run `run`'s token for the platform's API (see [`PlatformKey`]). No handle of it is
    /// ever shown: only the gate adds it, as [`Bindings::platform_authorization`]; every scrub
    /// masks its MAC as `[secret:airlock-platform-token]`.
    pub fn bind_run_token(&mut self, key: &PlatformKey, run: &str) {
        let mac = key.run_mac(run);
        self.bind_own(PLATFORM_TOKEN_SECRET, &mac, new_handle(), false);
        self.run_token = Some((run.to_owned(), self.bound.len() - 1));
    }

    fn bind_own(&mut self, name: &str, value: &str, handle: String, usable: bool) {
        let own = Arc::new(OwnValue::new(name, value));
        self.own.push(Arc::clone(&own));
        self.bound.push(Binding {
            secret: Held::Own(own),
            handle,
            usable,
        });
    }

    pub fn has_run_token(&self) -> bool {
        self.run_token.is_some()
    }

    /// `Bearer <run token>`, the Authorization the gate sends to the platform's API; `None` when
    /// no run token is bound (outside `airlock serve`).
    pub fn platform_authorization(&self) -> Option<Zeroizing<Vec<u8>>> {
        let (run, index) = self.run_token.as_ref()?;
        let mac = self.value(*index);
        let mut header = Zeroizing::new(Vec::with_capacity(8 + run.len() + mac.len()));
        header.extend_from_slice(b"Bearer ");
        header.extend_from_slice(run.as_bytes());
        header.push(b'.');
        header.extend_from_slice(mac.as_bytes());
        Some(header)
    }

    fn secret<'s>(&'s self, binding: &'s Binding) -> &'s Secret {
        match &binding.secret {
            Held::Loaded(index) => &self.store.secrets[*index],
            Held::Own(own) => &own.secret,
        }
    }

    fn name<'s>(&'s self, binding: &'s Binding) -> &'s str {
        &self.secret(binding).name
    }

    /// {"name": "<handle>", ...} — what `.secrets` is in the template context.
    pub fn context_object(&self) -> serde_json::Value {
        self.bound
            .iter()
            .filter(|b| b.usable)
            .map(|b| (self.name(b).to_owned(), b.handle.clone().into()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    }

    /// Keep usable only the secrets whose handle occurs in `rendered` (the node's rendered
    /// config): a node can use only the secrets its own config referenced. The others are
    /// still recognised by `mask`, so a handle that leaks into an output is shown by name.
    pub fn retain_used(&mut self, rendered: &str) {
        for binding in &mut self.bound {
            binding.usable = rendered.contains(binding.handle.as_str());
        }
    }

    /// Names of the bound secrets whose handles occur in `text`.
    pub fn used_in(&self, text: &[u8]) -> Vec<String> {
        let mut used = vec![false; self.bound.len()];
        for (_, index) in self.handles_in(text, true) {
            used[index] = true;
        }
        self.bound
            .iter()
            .zip(used)
            .filter(|(_, used)| *used)
            .map(|(b, _)| self.name(b).to_owned())
            .collect()
    }

    /// Handles -> values. `encoding` says how to encode the value where the handle sits.
    /// Handles not bound here are left as they are. A handle that does not follow a separator is
    /// refused (`RevealError`) whatever its value: answering by the value's first character
    /// would tell the node something about it.
    pub fn reveal(
        &self,
        text: &[u8],
        encoding: Encoding,
    ) -> Result<Zeroizing<Vec<u8>>, RevealError> {
        let found: Vec<(usize, usize)> = self.handles_in(text, true).collect();
        // Reserve the worst case up front: a reallocation would leave an unwiped copy behind.
        let worst: usize = found
            .iter()
            .map(|&(_, i)| self.value(i).len() * encoding.max_expansion())
            .sum();
        let mut out = Zeroizing::new(Vec::with_capacity(text.len() + worst));
        let mut at = 0;
        for (pos, index) in found {
            out.extend_from_slice(&text[at..pos]);
            let name = || self.name(&self.bound[index]).to_owned();
            if !separated(&out) {
                return Err(RevealError::JoinedBefore { name: name() });
            }
            let value_start = out.len();
            let value = self.value(index);
            match encoding {
                Encoding::Raw => out.extend_from_slice(value.as_bytes()),
                Encoding::UrlComponent => url_component_into(value, &mut out),
                Encoding::JsonString => json_escape_into(value, &mut out),
            }
            at = pos + HANDLE_LEN;
            if at < text.len() && ends_in_unfinished_escape(&out[value_start..]) {
                return Err(RevealError::JoinedAfter { name: name() });
            }
        }
        out.extend_from_slice(&text[at..]);
        Ok(out)
    }

    /// What anything leaving this node run passes through: handles (usable or not) become
    /// `[secret:NAME]`, and so does every echo of every secret value.
    pub fn scrub(&self, text: &str) -> String {
        self.scrubbed(text).into_owned()
    }

    /// `scrub`, without a copy of a text with nothing to scrub.
    fn scrubbed<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.mask(text) {
            Cow::Borrowed(text) => self.redact_str(text),
            Cow::Owned(masked) => match self.redact_str(&masked) {
                Cow::Borrowed(_) => Cow::Owned(masked),
                Cow::Owned(redacted) => Cow::Owned(redacted),
            },
        }
    }

    /// What a response passes through before the node sees it: every echo of a loaded secret
    /// (`SecretStore::redact`) and every echo of a value made for this node run (a callback
    /// token, the run token's MAC: each digit in any form `tokens` reads, or base64) becomes
    /// `[secret:NAME]`.
    pub fn redact<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        // The node run's own values first: a loaded secret's echo inside a token (a short value
        // that happens to look like hex) would otherwise cut it in two, and neither part would
        // match. Their forms contain no `[`, so the labels they leave cannot be cut in turn.
        match redact_own(bytes, &self.own) {
            Cow::Borrowed(bytes) => self.store.redact(bytes),
            Cow::Owned(own_redacted) => Cow::Owned(self.store.redact(&own_redacted).into_owned()),
        }
    }

    /// `redact` over text.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        as_text(text, self.redact(text.as_bytes()))
    }

    /// Names of this node run's own values that occur in `bytes` in any form `redact` replaces.
    pub fn own_values_in(&self, bytes: &[u8]) -> Vec<&str> {
        let mut found = vec![false; self.own.len()];
        for echo in tokens::find(bytes, self.own.iter().map(|own| own.digits())) {
            found[echo.token] = true;
        }
        self.own
            .iter()
            .zip(found)
            .filter(|(own, found)| *found || own.in_base64(bytes))
            .map(|(own, _)| own.secret.name.as_str())
            .collect()
    }

    /// `scrub` over every string, key and number of a JSON value.
    pub fn scrub_json(&self, value: Value) -> Value {
        map_json_text(value, &|text| self.scrubbed(text))
    }

    /// Handles -> `[secret:NAME]`.
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if find(text.as_bytes(), HANDLE_PREFIX).is_none() {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (pos, index) in self.handles_in(text.as_bytes(), false) {
            out.push_str(&text[at..pos]);
            out.push_str(&self.secret(&self.bound[index]).label);
            at = pos + HANDLE_LEN;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    pub fn store(&self) -> &SecretStore {
        &self.store
    }

    fn value(&self, index: usize) -> &str {
        self.secret(&self.bound[index]).value.expose_secret()
    }

    /// (byte offset, index into `bound`) of every bound handle in `text`, in order.
    /// With `only_usable`, handles of secrets dropped by `retain_used` are skipped.
    fn handles_in<'t>(
        &'t self,
        text: &'t [u8],
        only_usable: bool,
    ) -> impl Iterator<Item = (usize, usize)> + 't {
        let mut at = 0;
        std::iter::from_fn(move || {
            while let Some(rel) = find(&text[at..], HANDLE_PREFIX) {
                let pos = at + rel;
                let candidate = text.get(pos..pos + HANDLE_LEN);
                let bound = candidate.and_then(|c| {
                    self.bound
                        .iter()
                        .position(|b| b.handle.as_bytes() == c && (b.usable || !only_usable))
                });
                match bound {
                    Some(index) => {
                        at = pos + HANDLE_LEN;
                        return Some((pos, index));
                    }
                    None => at = pos + 1,
                }
            }
            at = text.len();
            None
        })
    }
}

fn new_handle() -> String {
    let random: [u8; HANDLE_HEX_LEN / 2] = rand::random();
    format!("__airlock_secret_{}__", hex::encode(random))
}

impl Encoding {
    /// Most output bytes one value byte can become.
    fn max_expansion(self) -> usize {
        match self {
            Encoding::Raw => 1,
            Encoding::UrlComponent => 3,
            Encoding::JsonString => 6,
        }
    }
}

/// Applies `f` to every string, object key and number (as its JSON text) in `value`. A number
/// whose text `f` changes becomes a string: `[secret:NAME]` is not a number.
/// `value` with `f` applied to every string, key and number (a number whose text changes
/// becomes a string). Changed in place: only what `f` changes is copied.
fn map_json_text(mut value: Value, f: &impl Fn(&str) -> Cow<'_, str>) -> Value {
    map_json_text_in_place(&mut value, f);
    value
}

fn map_json_text_in_place(value: &mut Value, f: &impl Fn(&str) -> Cow<'_, str>) {
    match value {
        Value::String(text) => {
            if let Cow::Owned(changed) = f(text) {
                *text = changed;
            }
        }
        Value::Number(number) => {
            // Most numbers' text fits on the stack; a longer one is formatted on the heap.
            let mut short = NumberText::default();
            let long;
            let text = if write!(short, "{number}").is_ok() {
                short.as_str()
            } else {
                long = number.to_string();
                &long
            };
            if let Cow::Owned(changed) = f(text) {
                *value = Value::String(changed);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| map_json_text_in_place(item, f)),
        Value::Object(fields) => {
            // Keys rarely change: the map is rebuilt (in order) only when one does.
            if fields.keys().any(|key| matches!(f(key), Cow::Owned(_))) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, v)| (f(&key).into_owned(), v))
                    .collect();
            }
            fields
                .values_mut()
                .for_each(|v| map_json_text_in_place(v, f));
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// A JSON number's text, formatted without an allocation.
#[derive(Default)]
struct NumberText {
    bytes: [u8; 32],
    len: usize,
}

impl NumberText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
