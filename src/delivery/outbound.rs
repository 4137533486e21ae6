//! Outbound HTTP: how deliveries and source fetches leave hookgate. Every client resolves names
//! through the SSRF guard, never follows redirects, trusts the extra roots of `ca_file` besides
//! the system's, and goes through `proxy` unless `no_proxy` names the host. A subscription with
//! a client certificate gets a client of its own that presents it (mTLS).
//!
//! Behind a proxy the proxy connects to the subscriber, so the guard cannot see the address it
//! connects to. hookgate still refuses a URL whose host is a refused address, and resolves a
//! proxied name itself first, refusing it when every address is refused; the proxy resolves it
//! again when it connects, so an egress policy on the proxy remains the last word.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::{Certificate, Client, Identity, Url};

use super::guard::{GuardedResolver, TargetGuard};
use crate::config::Settings;
use crate::domain::subscription::ClientCertificate;

/// Hosts reached directly despite the proxy: `*` (everything), names (with their subdomains;
/// a leading dot is the same), addresses and networks.
#[derive(Debug, Clone, Default)]
pub struct Bypass {
    all: bool,
    names: Vec<String>,
    networks: Vec<IpNet>,
}

impl Bypass {
    pub fn parse(text: &str) -> Self {
        let mut bypass = Self::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                bypass.all = true;
            } else if let Ok(net) = entry.parse::<IpNet>() {
                bypass.networks.push(net);
            } else if let Ok(ip) =
                entry.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>()
            {
                bypass.networks.push(IpNet::from(ip));
            } else {
                let name = entry.trim_start_matches('.');
                let name =
                    name.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(name, |(h, _)| h);
                bypass.names.push(name.to_ascii_lowercase());
            }
        }
        bypass
    }

    /// Whether `url` is reached directly.
    pub fn covers(&self, url: &Url) -> bool {
        if self.all {
            return true;
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.networks.iter().any(|n| n.contains(&std::net::IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => self.networks.iter().any(|n| n.contains(&std::net::IpAddr::V6(ip))),
            Some(url::Host::Domain(host)) => {
                let host = host.to_ascii_lowercase();
                self.names.iter().any(|name| {
                    host == *name || host.strip_suffix(name.as_str()).is_some_and(|rest| rest.ends_with('.'))
                })
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Route {
    proxy: Url,
    bypass: Bypass,
}

/// What every outbound client is built from.
#[derive(Debug, Clone)]
pub struct Outbound {
    guard: TargetGuard,
    route: Option<Arc<Route>>,
    roots: Vec<Certificate>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl Outbound {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let roots = match &settings.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading HOOKGATE_CA_FILE {}: {e}", path.display()))?;
                let roots = Certificate::from_pem_bundle(&pem)
                    .map_err(|e| anyhow::anyhow!("HOOKGATE_CA_FILE {}: {e}", path.display()))?;
                anyhow::ensure!(
                    !roots.is_empty(),
                    "HOOKGATE_CA_FILE {} holds no PEM certificate",
                    path.display()
                );
                roots
            }
        };
        let route = settings
            .proxy
            .clone()
            .map(|proxy| Arc::new(Route { proxy, bypass: Bypass::parse(&settings.no_proxy) }));
        Ok(Self {
            guard: TargetGuard::new(settings.allowed_target_networks.clone()),
            route,
            roots,
            connect_timeout: settings.connect_timeout,
            timeout: settings.delivery_timeout,
        })
    }

    pub fn guard(&self) -> &TargetGuard {
        &self.guard
    }

    /// Why `url` may not be reached: its host is a refused address, or, through the proxy, a
    /// name that resolves only to refused addresses.
    pub async fn refuses(&self, url: &str) -> Option<String> {
        if let Some(refused) = self.guard.refuses(url) {
            return Some(refused);
        }
        let route = self.route.as_ref()?;
        let url = Url::parse(url).ok()?;
        if route.bypass.covers(&url) {
            return None;
        }
        self.guard.refuses_name(url.host_str()?).await
    }

    /// A client, presenting `certificate` when given.
    pub fn client(&self, certificate: Option<&ClientCertificate>) -> anyhow::Result<Client> {
        let proxy_host = self.route.as_ref().and_then(|r| r.proxy.host_str().map(str::to_owned));
        let mut builder = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver { guard: self.guard.clone(), exempt: proxy_host }))
            .pool_max_idle_per_host(256)
            .no_proxy();
        if !self.roots.is_empty() {
            builder = builder.tls_certs_merge(self.roots.iter().cloned());
        }
        if let Some(route) = self.route.clone() {
            builder = builder.proxy(reqwest::Proxy::custom(move |url| {
                (!route.bypass.covers(url)).then(|| route.proxy.clone())
            }));
        }
        if let Some(certificate) = certificate {
            let pem = format!("{}\n{}", certificate.certificate_pem, certificate.private_key_pem.expose());
            builder = builder.identity(Identity::from_pem(pem.as_bytes())?);
        }
        Ok(builder.build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn no_proxy_names_hosts_domains_and_networks() {
        let bypass = Bypass::parse("internal.example, .corp, 10.0.0.0/8, 127.0.0.1, localhost:8080");
        for direct in [
            "http://internal.example/x",
            "https://api.internal.example/x",
            "http://a.corp/x",
            "http://10.1.2.3:9000/x",
            "http://127.0.0.1/x",
            "http://LOCALHOST/x",
        ] {
            assert!(bypass.covers(&url(direct)), "{direct}");
        }
        for proxied in
            ["http://example.com/x", "http://notinternal.example/x", "http://11.0.0.1/x", "http://[::1]/x"]
        {
            assert!(!bypass.covers(&url(proxied)), "{proxied}");
        }
        assert!(Bypass::parse("*").covers(&url("https://anything.example/")));
        assert!(!Bypass::parse("").covers(&url("https://anything.example/")));
    }
}
