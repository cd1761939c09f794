//! The lean path for plain bodiless requests (`src/proxy/lean.rs`): what the site receives
//! and what the client gets back, byte for byte, over raw sockets on both plain listeners;
//! every framing a site may answer with; keep-alive to the site and its failures; and the
//! requests it must leave to the full pipeline. Each check also runs with
//! `proxy.fast_path: false`, and both paths must deliver the same bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// A site that answers each request head with fixed bytes (by path) and records every
/// byte it received.
struct ScriptedSite {
    addr: SocketAddr,
    /// Bytes received, per connection.
    conns: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// The answer to a request for `path` (and whether the site closes the connection after it).
fn script(method: &str, path: &str) -> (Vec<u8>, bool) {
    let (answer, close): (&[u8], bool) = match path {
        "/cl" => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Site: One\r\n\r\nhello", false),
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=5\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n",
            false,
        ),
        "/eof" => (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the site closes", true),
        "/not-modified" => (b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n", false),
        "/early" => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        // Answers, then closes without saying so: the gateway's pooled connection is dead.
        "/bye" => (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye", true),
        "/big" => {
            let body = "x".repeat(300_000);
            let a = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            return (a.into_bytes(), false);
        }
        "/bad-length" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            true,
        ),
        // Never answers.
        "/stall" => (b"", false),
        _ => (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false),
    };
    let mut answer = answer.to_vec();
    if method == "HEAD" && path == "/cl" {
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Site: One\r\n\r\n".to_vec();
    }
    (answer, close)
}

impl ScriptedSite {
    async fn start() -> ScriptedSite {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let index = {
                    let mut c = all.lock();
                    c.push(Vec::new());
                    c.len() - 1
                };
                let all = all.clone();
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = find(&pending, b"\r\n\r\n") {
                            let head: Vec<u8> = pending.drain(..end + 4).collect();
                            let line = String::from_utf8_lossy(&head);
                            let mut parts = line.split(' ');
                            let method = parts.next().unwrap_or("").to_string();
                            let path = parts.next().unwrap_or("").to_string();
                            let (answer, close) = script(&method, &path);
                            if tcp.write_all(&answer).await.is_err() || close {
                                return;
                            }
                        }
                        match tcp.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                all.lock()[index].extend_from_slice(&chunk[..n]);
                                pending.extend_from_slice(&chunk[..n]);
                            }
                        }
                    }
                });
            }
        });
        ScriptedSite { addr, conns }
    }

    fn received(&self) -> Vec<u8> {
        self.conns.lock().concat()
    }

    fn connections(&self) -> usize {
        self.conns.lock().len()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct Setup {
    site: ScriptedSite,
    gw: Gateway,
    /// The transparent HTTP listener.
    http: SocketAddr,
    /// The gateway's own copy of the fixture rules.
    rules: tempfile::TempDir,
}

async fn setup(fast_path: bool) -> Setup {
    let rules = fixture_rules_copy();
    let site = ScriptedSite::start().await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:80", site.addr)
        .resolve("plain.example:80", site.addr);
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    b.config.transparent.http_listen = vec![http];
    b.config.proxy.fast_path = fast_path;
    b.config.proxy.connect_ports = vec![80, 443];
    b.config.proxy.header_timeout_seconds = 1;
    b.config.upstream.read_timeout_ms = 1000;
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    Setup {
        site,
        gw,
        http,
        rules,
    }
}

/// Read one answer of `len` bytes, or until the connection closes when `len` is `None`.
async fn read_answer(s: &mut TcpStream, len: Option<usize>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    let want = len.unwrap_or(usize::MAX);
    while out.len() < want {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// Whether the gateway closed the connection (and sent nothing more).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(3), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

const VIEWS: &str =
    r#"permeable_requests_total{action="allow",activity="view",group="unknown",site="x"}"#;
const HEAD_IN: &[u8] = b"GET /cl HTTP/1.1\r\nHost: x.com\r\nUser-Agent: probe/1.0\r\nX-Permeable-User: mallory\r\nAccept: */*\r\nProxy-Connection: keep-alive\r\nX-Custom-Case: MiXeD\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\n";
const HEAD_UP: &[u8] = b"GET /cl HTTP/1.1\r\nHost: x.com\r\nUser-Agent: probe/1.0\r\nAccept: */*\r\nX-Custom-Case: MiXeD\r\n\r\n";
const CL_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Site: One\r\n\r\nhello";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodiless_requests_arrive_and_answers_return_byte_for_byte() {
    let s = setup(true).await;
    let views_before = s.gw.metric(VIEWS).await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    let mut got = Vec::new();
    let requests: [(&[u8], usize); 5] = [
        (HEAD_IN, CL_ANSWER.len()),
        (
            b"GET /chunked HTTP/1.1\r\nHost: x.com\r\n\r\n",
            script("GET", "/chunked").0.len(),
        ),
        (
            b"HEAD /cl HTTP/1.1\r\nHost: x.com\r\n\r\n",
            script("HEAD", "/cl").0.len(),
        ),
        (
            b"GET /not-modified HTTP/1.1\r\nHost: x.com\r\nIf-None-Match: \"v1\"\r\n\r\n",
            script("GET", "/not-modified").0.len(),
        ),
        (
            b"GET /early HTTP/1.1\r\nHost: x.com\r\n\r\n",
            script("GET", "/early").0.len(),
        ),
    ];
    for (request, len) in requests {
        c.write_all(request).await.unwrap();
        got.extend(read_answer(&mut c, Some(len)).await);
    }
    // Two requests in one write (pipelined), then one answered until the site closes.
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: x.com\r\n\r\nGET /cl HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    got.extend(read_answer(&mut c, Some(2 * CL_ANSWER.len())).await);
    c.write_all(b"GET /eof HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    got.extend(read_answer(&mut c, None).await);
    // (Metrics are shared by the gateways of this test process: at least ours.)
    let views = s.gw.metric(VIEWS).await - views_before;
    assert!(
        views >= 8.0,
        "every request counted as a view of x: {views}"
    );
    let (received, conns) = (s.site.received(), s.site.connections());
    // What the site got: the heads as sent, less identity and proxy headers.
    assert!(
        received.starts_with(HEAD_UP),
        "the site got {:?}",
        String::from_utf8_lossy(&received)
    );
    let text = String::from_utf8_lossy(&received);
    for gone in ["mallory", "Proxy-", "X-Permeable"] {
        assert!(!text.contains(gone), "{gone} reached the site: {text}");
    }
    assert_eq!(text.matches("HTTP/1.1\r\n").count(), 8, "{text}");
    assert_eq!(conns, 1, "one connection to the site carried every request");
    // What the client got: each answer exactly as the site sent it, in order.
    let mut expected = CL_ANSWER.to_vec();
    for (m, p) in [
        ("GET", "/chunked"),
        ("HEAD", "/cl"),
        ("GET", "/not-modified"),
        ("GET", "/early"),
        ("GET", "/cl"),
        ("GET", "/cl"),
        ("GET", "/eof"),
    ] {
        expected.extend(script(m, p).0);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );

    // The full pipeline sends the site the same head lines. (Its answers differ: Pingora adds
    // Date and Connection, re-frames chunked bodies without their trailers, and does not
    // answer pipelined requests; the lean path relays what the site sent.)
    let s = setup(false).await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(HEAD_IN).await.unwrap();
    let answer = read_answer(&mut c, Some(CL_ANSWER.len())).await;
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"));
    // The same lines; the pipeline may reorder them, the lean path keeps the client's order.
    let lines = |b: &[u8]| {
        let mut l: Vec<String> = String::from_utf8_lossy(b)
            .split("\r\n")
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    assert_eq!(
        lines(&s.site.received()),
        lines(HEAD_UP),
        "both paths send the site the same header lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn absolute_form_requests_on_the_explicit_listener_take_the_same_way() {
    let s = setup(true).await;
    let mut c = TcpStream::connect(s.gw.proxy).await.unwrap();
    c.write_all(b"GET http://x.com/cl HTTP/1.1\r\nHost: x.com\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut c, Some(CL_ANSWER.len())).await, CL_ANSWER);
    // The same connection then tunnels (blindly: not a catalogue site).
    c.write_all(b"CONNECT plain.example:80 HTTP/1.1\r\nHost: plain.example:80\r\n\r\n")
        .await
        .unwrap();
    let established = read_answer(&mut c, Some(39)).await;
    assert!(
        established.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&established)
    );
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: x.com\r\nX-Tunnelled: 1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut c, Some(CL_ANSWER.len())).await, CL_ANSWER);
    let text = String::from_utf8_lossy(&s.site.received()).into_owned();
    assert!(
        text.starts_with("GET /cl HTTP/1.1\r\nHost: x.com\r\nAccept: */*\r\n\r\n"),
        "origin form, proxy headers gone: {text:?}"
    );
    assert!(text.contains("X-Tunnelled: 1"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_the_site_closed_is_replaced_and_large_answers_stream() {
    let s = setup(true).await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"GET /bye HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_answer(&mut c, Some(script("GET", "/bye").0.len())).await,
        script("GET", "/bye").0
    );
    // The site closed its end after answering: the next request must not fail for it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..3 {
        c.write_all(HEAD_IN).await.unwrap();
        assert_eq!(read_answer(&mut c, Some(CL_ANSWER.len())).await, CL_ANSWER);
    }
    assert_eq!(
        s.site.connections(),
        2,
        "one new connection after the closed one"
    );
    let big = script("GET", "/big").0;
    c.write_all(b"GET /big HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut c, Some(big.len())).await, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_get_the_gateways_answer_and_close() {
    let s = setup(true).await;
    let protocol = r#"permeable_upstream_errors_total{kind="protocol",site="x"}"#;
    let connect = r#"permeable_upstream_errors_total{kind="connect",site="x"}"#;
    let (protocol_before, connect_before) =
        (s.gw.metric(protocol).await, s.gw.metric(connect).await);
    let views_before = s.gw.metric(VIEWS).await;
    // An answer that frames its body two ways: refused, and nothing relayed.
    let answer = raw_exchange(
        s.http,
        b"GET /bad-length HTTP/1.1\r\nHost: x.com\r\nAccept: application/json\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("x-permeable-request-id: "), "{answer}");
    assert!(
        answer.contains("the site sent an invalid response"),
        "{answer}"
    );
    assert!(!answer.contains("hello"), "{answer}");
    assert!(s.gw.metric(protocol).await > protocol_before);

    // A site that does not answer within upstream.read_timeout_ms (1 s here).
    let started = std::time::Instant::now();
    let answer = raw_exchange(s.http, b"GET /stall HTTP/1.1\r\nHost: x.com\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        answer.contains("the site did not answer in time"),
        "{answer}"
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // A site that refuses connections.
    let down = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut b = GatewayBuilder::new().resolve("x.com:80", down);
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    b.config.transparent.http_listen = vec![http];
    let gw = b.start().await;
    let answer = raw_exchange(
        http,
        b"HEAD /cl HTTP/1.1\r\nHost: x.com\r\nAccept: text/html\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains("x-permeable-reason: the site refused the connection"),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\n"), "no body for HEAD: {answer}");
    assert!(gw.metric(connect).await > connect_before);
    assert!(gw.metric(VIEWS).await >= views_before + 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_the_lean_path_declines_go_through_the_pipeline() {
    let s = setup(true).await;
    let policy = std::fs::read_to_string(s.rules.path().join("policy.yaml")).unwrap();
    let version = replace_policy_and_reload(
        &s.gw,
        s.rules.path(),
        &policy.replace(
            "rules:\n",
            "rules:\n  - id: no-x-profiles\n    when: { sites: [x], activities: [view] }\n    unless: { groups: [staff] }\n    action: block\n    message: Profiles on X are off limits.\n",
        ),
    )
    .await;
    assert!(!version.is_empty());
    // A view the rules block: the block page, nothing sent to the site.
    let answer = raw_exchange(
        s.http,
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\nAccept: application/json\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("Profiles on X are off limits."), "{answer}");
    assert!(s.site.received().is_empty());

    // A bodied request reaches the site through the pipeline; an HTTP/1.0 view is blocked.
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: x.com\r\nContent-Length: 4\r\n\r\nping")
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&read_answer(&mut c, Some(45)).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let got = String::from_utf8_lossy(&s.site.received()).into_owned();
    assert!(
        got.starts_with("POST /upload HTTP/1.1\r\n") && got.ends_with("\r\n\r\nping"),
        "{got:?}"
    );
    let answer = raw_exchange(s.http, b"GET /cl HTTP/1.0\r\nHost: x.com\r\n\r\n").await;
    assert!(answer.contains(" 403 "), "{answer}");

    // A head that never completes is cut at proxy.header_timeout_seconds.
    let timeouts =
        s.gw.metric(r#"permeable_client_timeouts_total{phase="head"}"#)
            .await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: x.com\r\n")
        .await
        .unwrap();
    assert!(closed(&mut c).await, "an incomplete head is cut");
    assert!(
        s.gw.metric(r#"permeable_client_timeouts_total{phase="head"}"#)
            .await
            > timeouts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_keep_alive_connections_close_as_soon_as_the_gateway_stops() {
    let site = ScriptedSite::start().await;
    let mut b = GatewayBuilder::new().resolve("x.com:80", site.addr);
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    b.config.transparent.http_listen = vec![http];
    // Neither the wait for a next request nor the grace period ends these connections
    // within the test: only the gateway's stopping does.
    b.config.proxy.header_timeout_seconds = 60;
    b.config.grace_period_seconds = 6;
    let gw = b.start().await;
    // One connection that carried requests (its wait for the next one began after an
    // answer), one that never sent anything.
    let mut used = TcpStream::connect(http).await.unwrap();
    for _ in 0..2 {
        used.write_all(b"GET /cl HTTP/1.1\r\nHost: x.com\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_answer(&mut used, Some(CL_ANSWER.len())).await,
            CL_ANSWER
        );
    }
    let mut fresh = TcpStream::connect(http).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut probe = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), used.read(&mut probe))
            .await
            .is_err(),
        "the idle connection stays open while the gateway runs"
    );
    gw.shutdown_graceful();
    assert!(closed(&mut used).await, "the used connection was closed");
    assert!(closed(&mut fresh).await, "the fresh connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fields_the_lean_path_leaves_to_the_pipeline_arrive_as_the_pipeline_sends_them() {
    // A GET with a body in either framing, a protocol switch, a connection not kept
    // alive: the lean path must decline each (relaying the head alone would leave a body
    // to be read as a next request), so both settings deliver the same bytes.
    let cases: [&[u8]; 4] = [
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\nContent-Length: 4\r\n\r\nping",
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\nTRANSFER-ENCODING: chunked\r\n\r\n4\r\nping\r\n0\r\n\r\n",
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\nUpgrade: websocket\r\n\r\n",
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\nconnection: close\r\n\r\n",
    ];
    let mut seen: Vec<Vec<(Vec<u8>, String)>> = Vec::new();
    for fast_path in [true, false] {
        let s = setup(fast_path).await;
        let mut per_case = Vec::new();
        for case in cases {
            let before = s.site.received().len();
            // Until the answer's body ("hello") is in, or the gateway closes.
            let mut c = TcpStream::connect(s.http).await.unwrap();
            c.write_all(case).await.unwrap();
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            while !answer.ends_with(b"hello") {
                match tokio::time::timeout(Duration::from_secs(3), c.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
                    _ => break,
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status = answer.lines().next().unwrap_or("").to_string();
            per_case.push((s.site.received()[before..].to_vec(), status));
        }
        seen.push(per_case);
    }
    for (i, (lean, pipeline)) in seen[0].iter().zip(&seen[1]).enumerate() {
        assert_eq!(
            (String::from_utf8_lossy(&lean.0), &lean.1),
            (String::from_utf8_lossy(&pipeline.0), &pipeline.1),
            "case {i}"
        );
    }
    // The bodies reached the site as bodies.
    for i in [0, 1] {
        assert!(
            find(&seen[0][i].0, b"ping").is_some(),
            "case {i}: {:?}",
            String::from_utf8_lossy(&seen[0][i].0)
        );
    }
}
