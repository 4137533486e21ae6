//! Secrets at rest: XChaCha20-Poly1305 (the `chacha20poly1305` crate) under 256-bit keys. A keyring holds one or
//! more keys; the first seals, any of them opens, so that a key can be replaced while instances
//! run. A sealed value names its key by id and is bound to what it holds (the column), so a
//! value copied to another column does not open.
//!
//! Sealed text: `enc1:{key id}:{base64 of the 24-byte nonce and the ciphertext}`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::secret::random_bytes;

const PREFIX: &str = "enc1:";

/// One key and its id (the first 4 bytes of its SHA-256, in hex).
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    /// A key from the base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| {
            "an encryption key is the base64 of 32 random bytes; this is not base64".to_owned()
        })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!("an encryption key is the base64 of 32 random bytes; this holds {}", b.len())
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self { id: hex::encode(&Sha256::digest(bytes)[..4]), cipher: XChaCha20Poly1305::new(bytes.into()) }
    }

    /// A new random key, and its base64 text.
    pub fn generate() -> (Self, String) {
        let bytes = random_bytes::<32>();
        (Self::from_bytes(&bytes), STANDARD.encode(bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Keys by preference: the first seals, every one opens.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("it was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("key {0} does not open it: the value was altered, or belongs elsewhere")]
    Tampered(String),
    #[error("it is not a sealed value")]
    Malformed,
}

impl Keyring {
    /// Keys from text holding one or more base64 keys, separated by commas or whitespace.
    pub fn parse(text: &str) -> Result<Self, String> {
        let keys = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|k| !k.is_empty())
            .map(Key::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("no encryption key was given".into());
        }
        Ok(Self { keys })
    }

    pub fn new(first: Key, rest: impl IntoIterator<Item = Key>) -> Self {
        let first_id = first.id.clone();
        let mut keys = vec![first];
        keys.extend(rest.into_iter().filter(|k| k.id != first_id));
        Self { keys }
    }

    /// The key that seals.
    pub fn current(&self) -> &Key {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Seals `plaintext` under the current key, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let key = self.current();
        let nonce = random_bytes::<24>();
        let payload = Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() };
        // Encryption fails only for messages of more than 256 GiB.
        let sealed = key.cipher.encrypt(XNonce::from_slice(&nonce), payload).unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, STANDARD.encode(bytes))
    }

    /// Whether `stored` is a sealed value (else it was written before secrets were sealed).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    /// The id of the key `stored` was sealed with.
    pub fn sealed_with(stored: &str) -> Option<&str> {
        stored.strip_prefix(PREFIX)?.split_once(':').map(|(id, _)| id)
    }

    /// Opens a value sealed under any key of the ring, bound to `context`.
    pub fn open(&self, context: &str, stored: &str) -> Result<String, OpenError> {
        let (id, body) =
            stored.strip_prefix(PREFIX).and_then(|s| s.split_once(':')).ok_or(OpenError::Malformed)?;
        let key =
            self.keys.iter().find(|k| k.id == id).ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let bytes = STANDARD.decode(body).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < 24 + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(24);
        let opened = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| OpenError::Tampered(id.to_owned()))?;
        String::from_utf8(opened).map_err(|_| OpenError::Tampered(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::new(Key::generate().0, [])
    }

    #[test]
    fn a_sealed_value_opens_and_hides_its_plaintext() {
        let ring = ring();
        let sealed = ring.seal("subscriptions.bearer_token", "tok-123456");
        assert!(!sealed.contains("tok-123456"));
        assert!(Keyring::is_sealed(&sealed));
        assert_eq!(Keyring::sealed_with(&sealed), Some(ring.current().id()));
        assert_eq!(ring.open("subscriptions.bearer_token", &sealed).unwrap(), "tok-123456");
        assert_ne!(ring.seal("c", "same"), ring.seal("c", "same"), "a new nonce each time");
    }

    #[test]
    fn another_context_another_key_or_a_changed_byte_does_not_open() {
        let ring = ring();
        let sealed = ring.seal("a", "secret");
        assert!(matches!(ring.open("b", &sealed), Err(OpenError::Tampered(_))));
        assert!(matches!(self::ring().open("a", &sealed), Err(OpenError::UnknownKey(_))));
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(ring.open("a", &altered).is_err());
        assert_eq!(ring.open("a", "plain"), Err(OpenError::Malformed));
    }

    #[test]
    fn an_old_key_still_opens_after_a_new_one_is_put_first() {
        let (old, new) = (Key::generate().0, Key::generate().0);
        let before = Keyring::new(old.clone(), []);
        let sealed = before.seal("c", "kept");
        let after = Keyring::new(new.clone(), [old]);
        assert_eq!(after.open("c", &sealed).unwrap(), "kept");
        assert_eq!(Keyring::sealed_with(&after.seal("c", "x")), Some(new.id()));
    }

    #[test]
    fn keys_are_parsed_from_base64_text() {
        let (key, text) = Key::generate();
        let (other, other_text) = Key::generate();
        let ring = Keyring::parse(&format!("{text},\n{other_text}\n")).unwrap();
        assert_eq!(ring.ids(), [key.id(), other.id()]);
        assert!(Keyring::parse("").unwrap_err().contains("no encryption key"));
        assert!(Keyring::parse("not base64!").unwrap_err().contains("base64"));
        assert!(Keyring::parse("c2hvcnQ=").unwrap_err().contains("holds 5"));
    }
}
