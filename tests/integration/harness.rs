//! Real parts for the integration tests: the gateway started in-process on free loopback
//! ports, upstream servers that present real TLS certificates for real social host names
//! (issued by a test CA and reached through `upstream.resolve`), and clients that trust
//! the gateway's CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use permeable::config::Config;
use permeable::server::ChannelShutdown;
use pingora::server::{RunArgs, ShutdownSignal};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sha2::{Digest, Sha256};

/// A free loopback port for a gateway listener, never the same twice in this process.
///
/// The port is found free and released, and the gateway binds it a little later: a port
/// the kernel hands out for `bind(0)` (every upstream server here binds that way) could take
/// it in between. Ports are therefore taken below the kernel's ephemeral range (where
/// `bind(0)` never lands), from a counter, so that two gateways of this process never get
/// the same one either.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000; // below 32768, where Linux's ephemeral range starts
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < SPAN, "ran out of test ports");
        let port = (FIRST + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A CA for the test upstreams, and certificates it issues.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            cert,
            key,
        }
    }

    /// A certificate for `names` and its key, both PEM, for servers that read files.
    pub fn issue_pem(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server config for `names`, ALPN h2 and http/1.1.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.cert.der().clone()], key_der)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// What an upstream received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub host: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sha256: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTPS (or plain HTTP) server answering as a social site.
///
/// - any path: records the request; bodies under 1 MiB are kept whole, larger ones only
///   hashed while they stream; answers JSON `{"ok":true,"len":N,"sha256":"…"}`
/// - `/status/NNN`: answers that status
/// - `/slow`: answers after 5 s
pub struct Upstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let rec = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let rec = rec.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let rec = rec.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, rec).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(cfg) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream { addr, received }
    }

    pub fn last(&self) -> Option<Received> {
        self.received.lock().last().cloned()
    }

    pub fn count(&self) -> usize {
        self.received.lock().len()
    }
}

async fn answer(req: Request<Incoming>, rec: Arc<Mutex<Vec<Received>>>) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let host = req
        .uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = req.into_body();
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            len += data.len() as u64;
            if kept.len() < 1 << 20 {
                kept.extend_from_slice(&data);
            }
        }
    }
    let sha = hex::encode(hasher.finalize());
    rec.lock().push(Received {
        method,
        path: path.clone(),
        host,
        headers,
        body: kept,
        body_len: len,
        body_sha256: sha.clone(),
    });
    if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(Full::new(Bytes::from("status\n")));
        *r.status_mut() = hyper::StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        return r;
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::json!({"ok": true, "len": len, "sha256": sha}).to_string(),
    )));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut().insert("x-upstream", "yes".parse().unwrap());
    r
}

/// A WebSocket echo server over TLS.
pub async fn start_ws_echo(tls: Arc<rustls::ServerConfig>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // WebSockets speak HTTP/1.1.
    let mut cfg = (*tls).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    tokio::spawn(async move {
        use futures_util::{SinkExt, StreamExt};
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let reply = match msg {
                            tokio_tungstenite::tungstenite::Message::Text(t) => {
                                tokio_tungstenite::tungstenite::Message::Text(format!("echo: {t}"))
                            }
                            other => other,
                        };
                        if ws.send(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// A gateway running in-process.
pub struct Gateway {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
    /// Holds the gateway's state directory (CA, bundles) for its lifetime.
    _state: tempfile::TempDir,
    stop: tokio::sync::mpsc::Sender<ShutdownSignal>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct GatewayBuilder {
    pub config: Config,
    pub upstream_ca: Option<String>,
}

pub fn fixture_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway-rules")
}

/// A copy of the fixture rules that a test may edit.
pub fn fixture_rules_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_rules(), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Replace `policy.yaml` in `rules` as editors and ConfigMaps do (a new file renamed into
/// place), reload through the admin API and return the new rule-set version.
pub async fn replace_policy_and_reload(gw: &Gateway, rules: &Path, text: &str) -> String {
    let tmp = rules.join(".policy.yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, rules.join("policy.yaml")).unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    v["version"].as_str().unwrap().to_string()
}

impl GatewayBuilder {
    pub fn new() -> GatewayBuilder {
        let mut config = Config::default();
        config.proxy.listen = vec![SocketAddr::from(([127, 0, 0, 1], free_port()))];
        config.admin.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        config.rules = Some(fixture_rules());
        config.threads = 2;
        // Many gateways start and stop in this one process: Pingora 0.9.1's no-steal
        // runtime cannot do that (cloudflare/pingora#981, see `server::prepare`). The
        // default (`false`) is what the tests that run the binary exercise.
        config.work_stealing = true;
        config.grace_period_seconds = 1;
        config.audit.output = "off".into();
        config.upstream.connect_timeout_ms = 2000;
        config.upstream.read_timeout_ms = 3000;
        GatewayBuilder {
            config,
            upstream_ca: None,
        }
    }

    pub fn resolve(mut self, host_port: &str, to: SocketAddr) -> Self {
        self.config
            .upstream
            .resolve
            .insert(host_port.to_string(), to);
        self
    }

    pub fn upstream_ca(mut self, pem: &str) -> Self {
        self.upstream_ca = Some(pem.to_string());
        self
    }

    pub async fn start(mut self) -> Gateway {
        // RUST_LOG=debug shows the gateway's logs (and Pingora's) in failing tests.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let state = tempfile::tempdir().unwrap();
        self.config.state_dir = Some(state.path().to_path_buf());
        if let Some(pem) = &self.upstream_ca {
            let path = state.path().join("upstream-ca.pem");
            std::fs::write(&path, pem).unwrap();
            self.config.upstream.ca_file = Some(path);
        }
        let proxy = self.config.proxy.listen[0];
        let prepared =
            permeable::server::prepare(self.config, None, false).expect("gateway starts");
        let admin = prepared.admin_addr;
        let ca_pem = std::fs::read_to_string(state.path().join("ca/ca.crt")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let thread = std::thread::spawn(move || {
            prepared.run(RunArgs {
                shutdown_signal: Box::new(ChannelShutdown(tokio::sync::Mutex::new(rx))),
            })
        });
        let gw = Gateway {
            proxy,
            admin,
            ca_pem,
            _state: state,
            stop: tx,
            thread: Some(thread),
        };
        gw.wait_ready().await;
        gw
    }
}

impl Gateway {
    async fn wait_ready(&self) {
        let url = format!("http://{}/readyz", self.admin);
        for _ in 0..250 {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway not ready");
    }

    /// An HTTP client using the gateway as its proxy and trusting `extra_roots` (PEM).
    pub fn client(&self, roots: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", self.proxy)).unwrap())
            .tls_built_in_root_certs(false)
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        for pem in roots {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }

    /// A client that trusts the gateway's CA only.
    pub fn intercepting_client(&self) -> reqwest::Client {
        self.client(&[&self.ca_pem])
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The admin `/readyz` answer.
    pub async fn readyz(&self) -> serde_json::Value {
        reqwest::get(format!("http://{}/readyz", self.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Ask for a graceful shutdown, as SIGTERM does: the listeners stop and in-flight
    /// requests get `grace_period_seconds` to finish.
    pub fn shutdown_graceful(&self) {
        let _ = self.stop.try_send(ShutdownSignal::GracefulTerminate);
    }

    /// The value of one metric sample, e.g. `permeable_tunnels_total{mode="intercept"}`.
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        metric_value(&text, series)
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    let (name, labels) = match series.find('{') {
        Some(i) => (
            &series[..i],
            series[i + 1..series.len() - 1]
                .split(',')
                .collect::<Vec<_>>(),
        ),
        None => (series, vec![]),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
        })
        .filter(|l| labels.iter().all(|lab| lab.is_empty() || l.contains(lab)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.stop.try_send(ShutdownSignal::FastShutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Send raw bytes to an address and read the whole answer (until close or 3 s).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    proc_status_kib("self", "VmRSS:")
}

/// A memory figure (`VmRSS:`, `VmHWM:`…) of a process from `/proc/PID/status`, in KiB.
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The gateway as a separate process (the real binary), for measurements that must see
/// the gateway alone, such as its memory.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
    _state: tempfile::TempDir,
}

impl GatewayProcess {
    /// Start `permeable run` with the fixture rules; `resolve` as in `upstream.resolve`.
    pub async fn start(resolve: &[(&str, SocketAddr)], upstream_ca: &str) -> GatewayProcess {
        GatewayProcess::start_with(resolve, upstream_ca, "").await
    }

    /// As [`GatewayProcess::start`], with `extra` (top-level YAML lines other than
    /// `proxy`, `admin`, `rules`, `state_dir`, `audit`, `threads` and `upstream`) added to
    /// the configuration.
    pub async fn start_with(
        resolve: &[(&str, SocketAddr)],
        upstream_ca: &str,
        extra: &str,
    ) -> GatewayProcess {
        let state = tempfile::tempdir().unwrap();
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let ca_file = state.path().join("upstream-ca.pem");
        std::fs::write(&ca_file, upstream_ca).unwrap();
        let mut yaml = format!(
            "proxy:\n  listen: [\"{proxy}\"]\nadmin:\n  listen: \"{admin}\"\nrules: \"{}\"\nstate_dir: \"{}\"\naudit:\n  output: \"off\"\nthreads: 2\nupstream:\n{}  resolve:\n",
            fixture_rules().display(),
            state.path().display(),
            if upstream_ca.is_empty() {
                String::new()
            } else {
                format!("  ca_file: \"{}\"\n", ca_file.display())
            }
        );
        for (k, v) in resolve {
            yaml.push_str(&format!("    \"{k}\": \"{v}\"\n"));
        }
        yaml.push_str(extra);
        let config = state.path().join("permeable.yaml");
        std::fs::write(&config, yaml).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_permeable"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(if std::env::var_os("PERMEABLE_GATEWAY_STDERR").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .spawn()
            .unwrap();
        let url = format!("http://{admin}/readyz");
        for _ in 0..500 {
            if let Ok(r) = reqwest::get(&url).await {
                if r.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ca_pem = std::fs::read_to_string(state.path().join("ca/ca.crt")).unwrap();
        GatewayProcess {
            child,
            proxy,
            admin,
            ca_pem,
            _state: state,
        }
    }

    /// Peak resident memory of the gateway process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(&self.child.id().to_string(), "VmHWM:")
    }

    pub fn client(&self, roots: &[&str]) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", self.proxy)).unwrap())
            .tls_built_in_root_certs(false)
            .use_rustls_tls()
            .timeout(Duration::from_secs(600));
        for pem in roots {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client configuration trusting the gateway's CA, offering `alpn`.
pub fn tls_client_config(gw: &Gateway, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    tls_client_config_trusting(&gw.ca_pem, alpn)
}

/// A TLS client configuration trusting the CA in `ca_pem`, offering `alpn`.
pub fn tls_client_config_trusting(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A TLS connection through the proxy at `proxy`: `CONNECT target`, then a handshake for
/// `sni` trusting the CA in `ca_pem` (the gateway's for an intercepted site, the site's
/// own for a blind tunnel), offering `alpn`.
pub async fn connect_through(
    proxy: SocketAddr,
    target: &str,
    sni: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let mut tcp = Reader::new(tcp);
    tcp.io
        .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let status_line = tcp.line().await.unwrap_or_default();
    assert!(
        status_line.starts_with(b"HTTP/1.1 200"),
        "CONNECT {target}: {}",
        String::from_utf8_lossy(&status_line)
    );
    while !tcp.line().await.unwrap_or_default().is_empty() {}
    assert!(tcp.buf.is_empty(), "nothing after the CONNECT answer");
    tokio_rustls::TlsConnector::from(tls_client_config_trusting(ca_pem, alpn))
        .connect(sni.to_string().try_into().unwrap(), tcp.io)
        .await
        .unwrap()
}

/// Read until the peer closes (`true`) or `limit` passes (`false`).
pub async fn read_answer<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> (String, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// The status code of the first response in `answer`, 0 when there is none.
pub fn status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// ---- HTTP/1.1 answers as a client reads them

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One answer as a client reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header fields in the order sent, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The payload, chunked framing removed.
    pub body: Vec<u8>,
    /// Trailer lines of a chunked body.
    pub trailers: Vec<String>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads answers off a byte stream with HTTP/1.1's framing rules, as a client does
/// (RFC 9112 §6.3): no body after HEAD, 1xx, 204 and 304; then chunked; then
/// Content-Length; else until the connection closes.
pub struct Reader<R> {
    pub io: R,
    pub buf: Vec<u8>,
    /// The stream ended (closed, failed, or nothing came for 5 s).
    pub ended: bool,
}

impl<R: tokio::io::AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Reader<R> {
        Reader {
            io,
            buf: Vec::new(),
            ended: false,
        }
    }

    pub async fn more(&mut self) -> bool {
        self.buf.reserve(16 * 1024);
        match tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.buf),
        )
        .await
        {
            Ok(Ok(n)) if n > 0 => true,
            _ => {
                self.ended = true;
                false
            }
        }
    }

    /// One line, without its CRLF.
    pub async fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return Some(line);
            }
            if !self.more().await {
                return None;
            }
        }
    }

    pub async fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.more().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// The next answer (an interim 1xx is an answer of its own); `None` when the stream
    /// ends before a whole one.
    pub async fn answer(&mut self, head_request: bool) -> Option<Answer> {
        let status_line = String::from_utf8(self.line().await?).ok()?;
        let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let line = String::from_utf8(self.line().await?).ok()?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':')?;
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
            return Some(answer);
        }
        if answer.header("transfer-encoding").is_some() {
            loop {
                let size_line = String::from_utf8(self.line().await?).ok()?;
                let size = size_line.split(';').next()?.trim();
                let size = usize::from_str_radix(size, 16).ok()?;
                if size == 0 {
                    break;
                }
                let data = self.take(size).await?;
                answer.body.extend(data);
                if !self.line().await?.is_empty() {
                    return None;
                }
            }
            loop {
                let line = String::from_utf8(self.line().await?).ok()?;
                if line.is_empty() {
                    return Some(answer);
                }
                answer.trailers.push(line);
            }
        }
        if let Some(len) = answer.header("content-length") {
            answer.body = self.take(len.parse().ok()?).await?;
            return Some(answer);
        }
        while self.more().await {}
        answer.body = std::mem::take(&mut self.buf);
        Some(answer)
    }
}

/// The answers a site's bytes make, read with the same rules.
pub async fn answers_in(bytes: &[u8], head_request: bool) -> Vec<Answer> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(a) = r.answer(head_request).await {
        out.push(a);
    }
    out
}
