//! The SSRF guard: subscriber addresses that resolve to loopback, private, link-local,
//! unspecified, shared (CGNAT), multicast or cloud-metadata ranges are refused unless an
//! allow-listed network contains them. The resolved address is checked, not the name.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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

    /// An HTTP client that reaches only what the guard permits and never follows redirects.
    pub fn client(&self, connect_timeout: Duration, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { guard: self.clone() }))
            .pool_max_idle_per_host(256)
            .build()
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

/// A resolver for reqwest that drops every address the guard refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: TargetGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = resolved.into_iter().filter(|a| guard.permits(a.ip())).collect();
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
        let timeout = Duration::from_secs(2);
        let guarded = TargetGuard::default().client(timeout, timeout).unwrap();
        let refused = guarded.get("http://localhost:9/").send().await.unwrap_err();
        assert!(is_refusal(&refused), "{refused:?}");
        let open = TargetGuard::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        let failed =
            open.client(timeout, timeout).unwrap().get("http://localhost:9/").send().await.unwrap_err();
        assert!(!is_refusal(&failed), "nothing listens on port 9: {failed:?}");
    }

    #[test]
    fn an_allow_list_lets_its_networks_through() {
        let guard = TargetGuard::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("127.0.0.2")));
    }
}
