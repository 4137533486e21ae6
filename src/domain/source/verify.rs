//! Checking that an inbound webhook came from its sender, exactly as each sender signs it.
//! Every comparison of a signature runs in constant time (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::secret::standard_webhooks_key;

type HmacSha256 = Hmac<Sha256>;

/// How far a signed timestamp may be from now, either way: Standard Webhooks' and Stripe's 5 minutes.
pub const TOLERANCE_S: i64 = 300;

/// How a source checks who sent a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verification {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over `{id}.{ts}.{body}`.
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    Github,
    /// `Stripe-Signature: t=<ts>,v1=<hex>` over `{ts}.{body}`.
    Stripe,
    /// A header of the source's choosing: HMAC-SHA256 of the body, hex or base64, `sha256=` optional.
    HmacSha256,
    /// No signature: the URL carries an unguessable token instead.
    None,
}

/// Why a message's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signed timestamp is more than 5 minutes from now")]
    Expired,
}

/// A message's headers, looked up by name in any case.
pub struct Headers<'a>(pub Vec<(&'a str, &'a str)>);

impl<'a> Headers<'a> {
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// Whether `signature` is the HMAC-SHA256 under `key` of the concatenated `parts`.
fn signed(key: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let mut mac = mac(key);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(signature).is_ok()
}

fn fresh(timestamp: &str, now: i64, header: &'static str) -> Result<(), Refusal> {
    let at: i64 = timestamp.trim().parse().map_err(|_| Refusal::Malformed(header))?;
    if (now - at).abs() > TOLERANCE_S { Err(Refusal::Expired) } else { Ok(()) }
}

/// Checks a message against `secret` as `verification` says; `header` names the header of
/// [`Verification::HmacSha256`]. `now` is in Unix seconds.
pub fn verify(
    verification: Verification,
    secret: &str,
    header: Option<&str>,
    headers: &Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    match verification {
        Verification::None => Ok(()),
        Verification::StandardWebhooks => {
            let id = headers.get("webhook-id").ok_or(Refusal::Missing("webhook-id"))?;
            let timestamp = headers.get("webhook-timestamp").ok_or(Refusal::Missing("webhook-timestamp"))?;
            let signatures = headers.get("webhook-signature").ok_or(Refusal::Missing("webhook-signature"))?;
            fresh(timestamp, now, "webhook-timestamp")?;
            let key = standard_webhooks_key(secret).ok_or(Refusal::Mismatch)?;
            let matched = signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|b64| {
                STANDARD.decode(b64).is_ok_and(|sig| {
                    signed(&key, &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body], &sig)
                })
            });
            if matched { Ok(()) } else { Err(Refusal::Mismatch) }
        }
        Verification::Github => {
            const NAME: &str = "X-Hub-Signature-256";
            let value = headers.get(NAME).ok_or(Refusal::Missing(NAME))?;
            let hex_part = value.trim().strip_prefix("sha256=").ok_or(Refusal::Malformed(NAME))?;
            let signature = hex::decode(hex_part).map_err(|_| Refusal::Malformed(NAME))?;
            if signed(secret.as_bytes(), &[body], &signature) { Ok(()) } else { Err(Refusal::Mismatch) }
        }
        Verification::Stripe => {
            const NAME: &str = "Stripe-Signature";
            let value = headers.get(NAME).ok_or(Refusal::Missing(NAME))?;
            let mut timestamp = None;
            let mut candidates = Vec::new();
            for item in value.split(',') {
                match item.trim().split_once('=') {
                    Some(("t", t)) => timestamp = Some(t),
                    Some(("v1", hex_sig)) => candidates.push(hex_sig),
                    _ => {}
                }
            }
            let timestamp = timestamp.ok_or(Refusal::Malformed(NAME))?;
            if candidates.is_empty() {
                return Err(Refusal::Malformed(NAME));
            }
            fresh(timestamp, now, NAME)?;
            let matched = candidates.iter().any(|hex_sig| {
                hex::decode(hex_sig)
                    .is_ok_and(|sig| signed(secret.as_bytes(), &[timestamp.as_bytes(), b".", body], &sig))
            });
            if matched { Ok(()) } else { Err(Refusal::Mismatch) }
        }
        Verification::HmacSha256 => {
            let name = header.unwrap_or("X-Signature");
            let value = headers.get(name).ok_or(Refusal::Missing("signature"))?.trim();
            let value = value.strip_prefix("sha256=").unwrap_or(value);
            let signature = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(value).ok()
            } else {
                STANDARD.decode(value).ok()
            }
            .ok_or(Refusal::Malformed("signature"))?;
            if signed(secret.as_bytes(), &[body], &signature) { Ok(()) } else { Err(Refusal::Mismatch) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_of(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = mac(key);
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"type":"charge.succeeded"}"#;

    #[test]
    fn github_signatures_are_checked_over_the_body() {
        let good = format!("sha256={}", hex::encode(hmac_of(b"s3cret", BODY)));
        let headers = Headers(vec![("x-hub-signature-256", good.as_str())]);
        assert_eq!(verify(Verification::Github, "s3cret", None, &headers, BODY, NOW), Ok(()));
        assert_eq!(verify(Verification::Github, "other", None, &headers, BODY, NOW), Err(Refusal::Mismatch));
        let none = Headers(vec![]);
        assert_eq!(
            verify(Verification::Github, "s3cret", None, &none, BODY, NOW),
            Err(Refusal::Missing("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn stripe_signatures_expire_after_five_minutes() {
        let t = NOW - 10;
        let sig = hex::encode(hmac_of(
            b"whsec_abc",
            format!("{t}.{}", std::str::from_utf8(BODY).unwrap()).as_bytes(),
        ));
        let value = format!("t={t},v1={sig},v0=ignored");
        let headers = Headers(vec![("Stripe-Signature", value.as_str())]);
        assert_eq!(verify(Verification::Stripe, "whsec_abc", None, &headers, BODY, NOW), Ok(()));
        assert_eq!(
            verify(Verification::Stripe, "whsec_abc", None, &headers, BODY, NOW + TOLERANCE_S + 11),
            Err(Refusal::Expired)
        );
        assert_eq!(
            verify(Verification::Stripe, "whsec_abc", None, &headers, b"{}", NOW),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn generic_hmac_takes_hex_or_base64_with_an_optional_prefix() {
        let raw = hmac_of(b"k", BODY);
        for value in [hex::encode(&raw), format!("sha256={}", hex::encode(&raw)), STANDARD.encode(&raw)] {
            let headers = Headers(vec![("X-Sig", value.as_str())]);
            assert_eq!(verify(Verification::HmacSha256, "k", Some("x-sig"), &headers, BODY, NOW), Ok(()));
        }
        let headers = Headers(vec![("X-Sig", "zz")]);
        assert_eq!(
            verify(Verification::HmacSha256, "k", Some("X-Sig"), &headers, BODY, NOW),
            Err(Refusal::Malformed("signature"))
        );
    }

    #[test]
    fn standard_webhooks_accepts_any_listed_signature() {
        let key = [7u8; 24];
        let secret = format!("whsec_{}", STANDARD.encode(key));
        let ts = NOW.to_string();
        let good = STANDARD
            .encode(hmac_of(&key, format!("msg_1.{ts}.{}", std::str::from_utf8(BODY).unwrap()).as_bytes()));
        let value = format!("v1,AAAA v1,{good}");
        let headers =
            Headers(vec![("webhook-id", "msg_1"), ("webhook-timestamp", &ts), ("webhook-signature", &value)]);
        assert_eq!(verify(Verification::StandardWebhooks, &secret, None, &headers, BODY, NOW), Ok(()));
        assert_eq!(
            verify(Verification::StandardWebhooks, &secret, None, &headers, BODY, NOW - 301),
            Err(Refusal::Expired)
        );
    }
}
