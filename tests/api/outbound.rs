//! Outbound network options: deliveries through an HTTP or SOCKS5 proxy (and around it with
//! `HOOKGATE_NO_PROXY`), the SSRF guard in front of the proxy, extra roots from
//! `HOOKGATE_CA_FILE`, and a per-subscription client certificate presented to a subscriber that
//! requires one. Certificates are made here with `rcgen`; the TLS subscriber is `tokio-rustls`.

use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, error_text};
use crate::sink::Sink;

/// A private CA, a server certificate for `localhost` from it, and two client certificates:
/// one from it, one from a CA nobody trusts.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
    stranger: (String, String),
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn leaf(names: &[&str], issuer: &Issuer<'_, KeyPair>) -> (String, String) {
    let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
}

impl Pki {
    fn new() -> Self {
        let (params, key, ca_pem) = ca("hookgate test CA");
        let issuer = Issuer::new(params, key);
        let (other_params, other_key, _) = ca("nobody's CA");
        let other = Issuer::new(other_params, other_key);
        Self {
            ca_pem,
            server: leaf(&["localhost", "127.0.0.1"], &issuer),
            client: leaf(&["hookgate.test"], &issuer),
            stranger: leaf(&["stranger.test"], &other),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads one HTTP request (head and `Content-Length` body) from `stream`.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = buffer[end + 4..].to_vec();
            while body.len() < length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Some((head, body));
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTPS subscriber on 127.0.0.1 with `server`'s certificate, that requires a client
/// certificate from `client_ca` when given; records the paths it answered.
struct TlsSink {
    port: u16,
    answered: Arc<Mutex<Vec<String>>>,
}

impl TlsSink {
    async fn start(server: &(String, String), client_ca: Option<&str>) -> Self {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = vec![CertificateDer::from_pem_slice(server.0.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(server.1.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap()).unwrap();
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answered = Arc::new(Mutex::new(Vec::new()));
        let log = answered.clone();
        actix_web::rt::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, log) = (acceptor.clone(), log.clone());
                actix_web::rt::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    while let Some((head, _)) = read_request(&mut tls).await {
                        let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                        log.lock().unwrap().push(path);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if tls.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, answered }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }

    fn answered(&self) -> Vec<String> {
        self.answered.lock().unwrap().clone()
    }
}

/// A forward proxy: HTTP (absolute-form requests, one per connection) or SOCKS5 (no auth);
/// records what it was asked to reach.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    async fn http() -> Self {
        Self::start(|mut client, seen| async move {
            let Some((head, body)) = read_request(&mut client).await else { return };
            let mut lines = head.lines();
            let first = lines.next().unwrap_or_default().to_owned();
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            seen.lock().unwrap().push(target.to_owned());
            let Ok(url) = reqwest::Url::parse(target) else { return };
            let address = format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or(80)
            );
            let Ok(mut upstream) = TcpStream::connect(address).await else { return };
            let mut request =
                format!("{method} {} HTTP/1.1\r\n", &target[target.find(url.path()).unwrap_or(0)..]);
            for line in lines.filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
                request.push_str(line);
                request.push_str("\r\n");
            }
            request.push_str("connection: close\r\n\r\n");
            let _ = upstream.write_all(request.as_bytes()).await;
            let _ = upstream.write_all(&body).await;
            let mut response = Vec::new();
            let _ = upstream.read_to_end(&mut response).await;
            let _ = client.write_all(&response).await;
        })
        .await
    }

    async fn socks5() -> Self {
        Self::start(|mut client, seen| async move {
            let mut greeting = [0u8; 2];
            if client.read_exact(&mut greeting).await.is_err() {
                return;
            }
            let mut methods = vec![0u8; usize::from(greeting[1])];
            let _ = client.read_exact(&mut methods).await;
            let _ = client.write_all(&[5, 0]).await;
            let mut request = [0u8; 4];
            if client.read_exact(&mut request).await.is_err() || request[3] != 1 {
                return;
            }
            let mut address = [0u8; 6];
            let _ = client.read_exact(&mut address).await;
            let ip = std::net::Ipv4Addr::new(address[0], address[1], address[2], address[3]);
            let port = u16::from_be_bytes([address[4], address[5]]);
            seen.lock().unwrap().push(format!("{ip}:{port}"));
            let Ok(mut upstream) = TcpStream::connect((ip, port)).await else { return };
            let _ = client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        })
        .await
    }

    async fn start<F, Fut>(serve: F) -> Self
    where
        F: Fn(TcpStream, Arc<Mutex<Vec<String>>>) -> Fut + Clone + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                actix_web::rt::spawn(serve.clone()(client, log.clone()));
            }
        });
        Self { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn last_error(app: &TestApp) -> String {
    let listed: Value = app.get("/trigger-invocations/v1").await.json().await.unwrap();
    listed[0]["lastError"].as_str().unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn deliveries_go_through_the_proxy_unless_no_proxy_names_the_host() {
    let (http, socks) = (Proxy::http().await, Proxy::socks5().await);
    for (proxy, scheme) in [(&http, "http"), (&socks, "socks5")] {
        let url = format!("{scheme}://127.0.0.1:{}", proxy.port);
        let app = TestApp::spawn_with(|s| s.proxy = Some(url.parse().unwrap())).await;
        let sink = Sink::start();
        app.subscribe_url(&sink.url("/through")).await;
        app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
        app.drain().await;
        assert_eq!(sink.received().len(), 1, "{scheme}: delivered");
        assert_eq!(sink.received()[0].path, "/through");
        let seen = proxy.seen();
        assert_eq!(seen.len(), 1, "{scheme}: through the proxy: {seen:?}");
        assert!(
            seen[0].contains(&format!("127.0.0.1:{}", sink.url("").rsplit(':').next().unwrap())),
            "{seen:?}"
        );
    }

    let url = format!("http://127.0.0.1:{}", http.port);
    let app = TestApp::spawn_with(|s| {
        s.proxy = Some(url.parse().unwrap());
        s.no_proxy = "example.internal, 127.0.0.0/8".into();
    })
    .await;
    let sink = Sink::start();
    app.subscribe_url(&sink.url("/direct")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "u2"})).await;
    app.drain().await;
    assert_eq!(sink.received().len(), 1);
    assert_eq!(http.seen().len(), 1, "no new request reached the proxy");
}

#[actix_web::test]
async fn behind_a_proxy_the_guard_still_refuses_internal_targets() {
    let proxy = Proxy::http().await;
    let url = format!("http://127.0.0.1:{}", proxy.port);
    let app = TestApp::spawn_with(|s| {
        s.proxy = Some(url.parse().unwrap());
        s.allowed_target_networks = Vec::new();
        s.retry_schedule = Vec::new();
    })
    .await;
    let sink = Sink::start();
    let port = sink.url("").rsplit(':').next().unwrap().to_owned();
    for target in
        [format!("http://localhost:{port}/name"), "http://169.254.169.254/latest/meta-data".to_owned()]
    {
        app.subscribe_url(&target).await;
    }
    app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
    app.drain().await;
    assert!(proxy.seen().is_empty(), "nothing reached the proxy: {:?}", proxy.seen());
    assert!(sink.received().is_empty());
    let dead: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    let errors: Vec<&str> =
        dead.as_array().unwrap().iter().map(|d| d["lastError"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2, "{dead}");
    assert!(
        errors.iter().any(|e| e.contains("localhost resolves only to addresses deliveries may not reach")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("169.254.169.254 is not a permitted delivery address")),
        "{errors:?}"
    );
}

#[actix_web::test]
async fn a_private_ca_is_trusted_only_from_the_ca_file() {
    let pki = Pki::new();
    let sink = TlsSink::start(&pki.server, None).await;
    let app = TestApp::spawn_with(|s| s.retry_schedule = Vec::new()).await;
    app.subscribe_url(&sink.url("/untrusted")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
    app.drain().await;
    assert!(sink.answered().is_empty());
    let error = last_error(&app).await;
    assert!(error.contains("certificate"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let app = TestApp::spawn_with(|s| s.ca_file = Some(ca_file.clone())).await;
    app.subscribe_url(&sink.url("/trusted")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
    app.drain().await;
    assert_eq!(sink.answered(), ["/trusted"]);
}

#[actix_web::test]
async fn a_subscription_presents_its_client_certificate_and_the_key_is_write_only() {
    let pki = Pki::new();
    let sink = TlsSink::start(&pki.server, Some(&pki.ca_pem)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let app = TestApp::spawn_with(|s| {
        s.ca_file = Some(ca_file.clone());
        s.retry_schedule = Vec::new();
    })
    .await;
    let http = |path: &str, (certificate, key): &(String, String)| {
        json!({"httpConfig": {"url": sink.url(path), "httpDispatchMode": "SYNC",
                              "clientCertificate": {"certificatePem": certificate, "privateKeyPem": key}}})
    };
    let with_cert = app.subscribe("test:fire-and-forget", http("/mtls", &pki.client)).await;
    app.subscribe("test:fire-and-forget", http("/stranger", &pki.stranger)).await;
    app.subscribe_url(&sink.url("/none")).await;
    let shown = &with_cert["httpConfig"]["clientCertificate"];
    assert_eq!(shown["certificatePem"], json!(pki.client.0));
    assert_eq!(shown["privateKeyPem"], Value::Null, "the key is write-only");

    app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
    app.drain().await;
    assert_eq!(sink.answered(), ["/mtls"], "only the trusted certificate gets through");

    let path = format!("/trigger-subscriptions/v1/{}", with_cert["id"].as_str().unwrap());
    let ops = json!([{"op": "replace", "path": "/description", "value": "kept key"}]);
    let patched: Value = app.patch(&path, &ops).await.json().await.unwrap();
    assert_eq!(patched["httpConfig"]["clientCertificate"]["certificatePem"], json!(pki.client.0));
    app.publish("test:fire-and-forget", json!({"identityId": "u2"})).await;
    app.drain().await;
    assert_eq!(sink.answered(), ["/mtls", "/mtls"], "the key sent back as null was kept");

    let raw = crate::encryption::raw_database(&app);
    assert!(
        crate::encryption::contains(&raw, pki.client.0.lines().nth(1).unwrap()),
        "the certificate is kept as is"
    );
    for line in pki.client.1.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!crate::encryption::contains(&raw, line), "the key is sealed at rest");
    }
}

#[actix_web::test]
async fn a_client_certificate_that_does_not_parse_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let pki = Pki::new();
    for (certificate, key, field) in [
        ("not pem", pki.client.1.as_str(), "httpConfig.clientCertificate.certificatePem"),
        (pki.client.0.as_str(), "not pem", "httpConfig.clientCertificate.privateKeyPem"),
        (pki.client.0.as_str(), "", "httpConfig.clientCertificate.privateKeyPem"),
    ] {
        let body = json!({
            "name": "bad", "triggerId": "test:fire-and-forget", "type": "HTTP",
            "httpConfig": {"url": "https://127.0.0.1:9/h", "httpDispatchMode": "SYNC",
                           "clientCertificate": {"certificatePem": certificate, "privateKeyPem": key}},
        });
        let text = error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
        assert!(text.starts_with(field), "{text}");
    }
}
