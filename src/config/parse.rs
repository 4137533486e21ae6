//! Parsing and checking single settings.

use std::path::PathBuf;
use std::time::Duration;

use super::{ConfigError, KeySource, invalid};
use crate::domain::duration::parse_duration;

/// `public_url`: an http or https URL.
pub(super) fn check_public_url(url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid("public_url", format!("'{url}': {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("public_url", "must be an http or https URL"));
    }
    Ok(())
}

pub(super) fn metrics_token(
    token: Option<String>,
) -> Result<Option<crate::domain::secret::Secret>, ConfigError> {
    match token {
        Some(token) if token.trim().is_empty() => Ok(None),
        Some(token) if token.len() < 16 => Err(invalid("metrics_token", "must be at least 16 characters")),
        token => Ok(token.map(crate::domain::secret::Secret::new)),
    }
}

pub(super) fn key_source(key: Option<String>, file: Option<String>) -> Result<KeySource, ConfigError> {
    match (key, file) {
        (Some(_), Some(_)) => {
            Err(invalid("encryption_key", "set encryption_key or encryption_key_file, not both"))
        }
        (Some(text), None) => {
            crate::domain::keyring::Keyring::parse(&text).map_err(|m| invalid("encryption_key", m))?;
            Ok(KeySource::Keys(crate::domain::secret::Secret::new(text)))
        }
        (None, Some(path)) => Ok(KeySource::File(PathBuf::from(path))),
        (None, None) => Ok(KeySource::Default),
    }
}

/// A retention: at least a minute, so nothing is purged while it may still change.
pub(super) fn parse_retention(text: &str, key: &'static str) -> Result<Duration, ConfigError> {
    let retention = parse_duration(text).map_err(|m| invalid(key, m))?;
    if retention < Duration::from_secs(60) {
        return Err(invalid(key, "must be at least 1m"));
    }
    Ok(retention)
}

/// A proxy URL: `http`, `https`, `socks5` or `socks5h`, with a host.
pub(super) fn parse_proxy(text: &str) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| invalid("proxy", format!("'{text}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") || url.host_str().is_none() {
        return Err(invalid("proxy", format!("'{text}' is not an http, https or socks5 URL with a host")));
    }
    Ok(url)
}

/// Comma-separated networks (`10.0.0.0/8`) or single addresses.
pub(super) fn parse_networks(text: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    invalid("allowed_target_networks", format!("'{s}' is not a CIDR such as 10.0.0.0/8"))
                })
        })
        .collect()
}
