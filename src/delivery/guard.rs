//! The SSRF guard: subscriber addresses that resolve to loopback, private, link-local,
//! unspecified, shared (CGNAT), multicast or cloud-metadata ranges are refused unless an
//! allow-listed network contains them. The resolved address is checked, not the name.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether a delivery may connect to `ip`.
#[derive(Debug, Clone, Default)]
pub struct TargetGuard {
    allowed: Arc<Vec<IpNet>>,
}

impl TargetGuard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Why `url` may not be reached, when its host is an address the guard refuses (names are
    /// checked when they resolve, by [`GuardedResolver`]).
    pub fn refuses(&self, url: &str) -> Option<String> {
        let url = reqwest::Url::parse(url).ok()?;
        let host = url.host_str()?;
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
        (!self.permits(literal)).then(|| format!("refused: {host} is not a permitted delivery address"))
    }

    /// Why `host` (a name) may not be reached: it resolves only to refused addresses.
    pub async fn refuses_name(&self, host: &str) -> Option<String> {
        let name = host.trim_start_matches('[').trim_end_matches(']');
        if name.parse::<IpAddr>().is_ok() {
            return None;
        }
        match tokio::net::lookup_host((name, 0)).await {
            Ok(resolved) => {
                let resolved: Vec<SocketAddr> = resolved.collect();
                (!resolved.iter().any(|a| self.permits(a.ip()))).then(|| Refused(name.to_owned()).to_string())
            }
            // The proxy may know names hookgate does not: it resolves them.
            Err(_) => None,
        }
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
                || first == 0x0064 && v6.segments()[1] == 0xff9b)
        }
    }
}

/// A name that resolves only to addresses the guard refuses.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to addresses deliveries may not reach", self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether a request failed because its host resolved only to refused addresses.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<Refused>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A resolver for reqwest that drops every address the guard refuses, but those of `exempt`
/// (the configured proxy's host).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: TargetGuard,
    pub exempt: Option<String>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let exempt = self.exempt.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> =
                resolved.into_iter().filter(|a| exempt || guard.permits(a.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused() {
        let guard = TargetGuard::default();
        for addr in [
            "127.0.0.1",
            "127.0.0.2",
            "::1",
            "0.0.0.0",
            "::",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!guard.permits(ip(addr)), "{addr}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let guard = TargetGuard::default();
        for addr in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(guard.permits(ip(addr)), "{addr}");
        }
    }

    #[actix_rt::test]
    async fn a_name_resolving_only_to_refused_addresses_is_a_refusal_and_other_failures_are_not() {
        crate::startup::install_tls_provider();
        let mut settings = crate::config::Settings::for_tests(":memory:");
        settings.allowed_target_networks = Vec::new();
        let guarded = super::super::outbound::Outbound::new(&settings).unwrap().client(None).unwrap();
        let refused = guarded.get("http://localhost:9/").send().await.unwrap_err();
        assert!(is_refusal(&refused), "{refused:?}");
        assert!(TargetGuard::default().refuses_name("localhost").await.is_some());
        settings.allowed_target_networks = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let open = super::super::outbound::Outbound::new(&settings).unwrap();
        let failed = open.client(None).unwrap().get("http://localhost:9/").send().await.unwrap_err();
        assert!(!is_refusal(&failed), "nothing listens on port 9: {failed:?}");
        assert!(open.guard().refuses_name("localhost").await.is_none());
    }

    #[test]
    fn an_allow_list_lets_its_networks_through() {
        let guard = TargetGuard::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
    }
}
