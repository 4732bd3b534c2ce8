//! The API key of `parley serve` and the upgrade check that enforces it.
//!
//! With a key configured, a WebSocket upgrade needs `Authorization: Bearer <key>`; anything
//! else gets HTTP 401 with an OpenAI-style JSON error body and no session. The key is compared in
//! constant time and never printed: [`ApiKey`]'s `Debug` is redacted and it has no `Display`.

use std::fmt;
use std::str::FromStr;

use parley_protocol::{UpgradeDecision, UpgradeRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret bearer token. Holds only the key's SHA-256, so the key itself is not kept in memory
/// longer than parsing takes, and comparing digests makes the check independent of the key's
/// length as well as of where a wrong guess differs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    digest: [u8; 32],
}

/// Why a string cannot be an API key. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the API key is empty")]
    Empty,
    #[error("the API key contains whitespace or control characters (it travels in an HTTP header)")]
    BadCharacters,
}

impl ApiKey {
    pub fn new(key: &str) -> Result<Self, ApiKeyError> {
        if key.is_empty() {
            return Err(ApiKeyError::Empty);
        }
        // Header values are visible ASCII; a key with spaces could never be presented intact.
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiKeyError::BadCharacters);
        }
        Ok(ApiKey {
            digest: Sha256::digest(key.as_bytes()).into(),
        })
    }

    /// Whether `presented` is this key, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&presented).into()
    }
}

impl FromStr for ApiKey {
    type Err = ApiKeyError;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        ApiKey::new(key)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for ApiKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = String::deserialize(deserializer)?;
        ApiKey::new(&key).map_err(serde::de::Error::custom)
    }
}

/// `error.code` of a refused upgrade, as OpenAI uses it.
pub const INVALID_API_KEY: &str = "invalid_api_key";

/// The upgrade decision for `key` (`None`: no key configured, everyone is let in).
pub fn check_bearer(key: Option<&ApiKey>, request: &UpgradeRequest<'_>) -> UpgradeDecision {
    let Some(key) = key else {
        return UpgradeDecision::Accept;
    };
    let message = match request.bearer_token() {
        Some(token) if key.matches(token) => return UpgradeDecision::Accept,
        Some(_) => "Incorrect API key provided in the Authorization header.",
        None => "Missing API key: send the header `Authorization: Bearer <key>`.",
    };
    tracing::info!(peer = %request.peer_addr(), "upgrade refused: {message}");
    UpgradeDecision::reject_json(401, error_body(INVALID_API_KEY, message))
}

/// An OpenAI-style error body: `{"error":{"type","code","message"}}`.
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({
        "error": {"type": "invalid_request_error", "code": code, "message": message}
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly_and_never_show_in_debug() {
        let key = ApiKey::new("s3cret-Key_1").unwrap();
        assert!(key.matches("s3cret-Key_1"));
        assert!(!key.matches("s3cret-Key_2"));
        assert!(!key.matches("s3cret-Key_1 "));
        assert!(!key.matches(""));
        assert!(!format!("{key:?}").contains("s3cret"));
        assert_eq!(ApiKey::new(""), Err(ApiKeyError::Empty));
        assert_eq!(ApiKey::new("two words"), Err(ApiKeyError::BadCharacters));
        assert_eq!(
            "tab\tkey".parse::<ApiKey>(),
            Err(ApiKeyError::BadCharacters)
        );
    }
}
