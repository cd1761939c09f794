//! Plain HTTP through the pipeline (the transparent HTTP listener, absolute-form requests on
//! the explicit one), over raw sockets: what the site receives and what the client gets
//! back in every framing a site may answer with (Content-Length, chunked with trailers,
//! until close, HEAD and 304, 103 before the answer); pipelined requests; keep-alive to the
//! site and a connection the site closed; failures (conflicting lengths, a stalled or
//! refused site); blocks, bodies and HTTP/1.0 decided by the same phases; a deadline for
//! every request head on a connection, not only the first.
//!
//! Status, the site's header fields and the payload arrive unchanged, and nothing is added
//! but what Pingora 0.9.1 adds whatever the gateway asks (docs/security.md, "Answers arrive
//! as the site sent them"): its own `Date` and `Connection`, its own chunk sizes (chunk
//! extensions and HTTP/1 trailers do not survive). An answer the site ended by closing
//! reaches the client the same way: no framing the site did not send, and the client's
//! connection closes after it. (`answers.rs` holds the same over TLS, both protocols.)

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
            let body: String = (0..300_000u32)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
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

    fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received()).into_owned()
    }

    /// What the site has received once `done` says it is all there, or after 5 s. The site
    /// answers on a request's head, so a client can hold its answer while the request's
    /// body is still on its way to the site.
    async fn received_when(&self, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.received();
            if done(&got) || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn connections(&self) -> usize {
        self.conns.lock().len()
    }
}

/// Fields Pingora adds to an answer it relays: the date of its own answer, and
/// `Connection` for the client connection it keeps or closes.
const ADDED_BY_THE_PIPELINE: [&str; 2] = ["date", "connection"];

/// `got` is the answer the site sent in `sent` as the pipeline relays it: the same status,
/// every field the site sent (framing fields as the re-framing allows), the same payload.
fn assert_relayed(got: &Answer, sent: &Answer, what: &str) {
    assert_eq!(got.status, sent.status, "{what}: {got:?}");
    assert_eq!(
        String::from_utf8_lossy(&got.body),
        String::from_utf8_lossy(&sent.body),
        "{what}: the payload arrives unchanged"
    );
    for (name, value) in &sent.headers {
        assert_eq!(
            got.header(name),
            Some(value.as_str()),
            "{what}: the site's {name} arrives: {got:?}"
        );
    }
    for (name, _) in &got.headers {
        let the_sites = sent.header(name).is_some();
        let added = ADDED_BY_THE_PIPELINE.contains(&name.as_str());
        assert!(the_sites || added, "{what}: {name} was added: {got:?}");
    }
    // Pingora 0.9.1 does not write HTTP/1 trailers (they are dropped); what does arrive
    // must be the site's own.
    assert!(
        got.trailers.is_empty() || got.trailers == sent.trailers,
        "{what}: trailers {:?}",
        got.trailers
    );
}

struct Setup {
    site: ScriptedSite,
    gw: Gateway,
    /// The transparent HTTP listener.
    http: SocketAddr,
    /// The gateway's own copy of the fixture rules.
    rules: tempfile::TempDir,
}

async fn setup() -> Setup {
    let rules = fixture_rules_copy();
    let site = ScriptedSite::start().await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:80", site.addr)
        .resolve("plain.example:80", site.addr);
    let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    b.config.transparent.http_listen = vec![http];
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
/// What the site receives for [`HEAD_IN`]: the head as sent, less identity and proxy fields
/// (in an order of Pingora's).
const HEAD_UP: &[u8] = b"GET /cl HTTP/1.1\r\nHost: x.com\r\nUser-Agent: probe/1.0\r\nAccept: */*\r\nX-Custom-Case: MiXeD\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_answer_framing_reaches_the_client_with_its_payload_unchanged() {
    let s = setup().await;
    let views_before = s.gw.metric(VIEWS).await;
    let c = TcpStream::connect(s.http).await.unwrap();
    let mut c = Reader::new(c);
    // (request, method and path of the site's script it gets)
    let requests: [(&[u8], &str, &str); 6] = [
        (HEAD_IN, "GET", "/cl"),
        (
            b"GET /chunked HTTP/1.1\r\nHost: x.com\r\n\r\n",
            "GET",
            "/chunked",
        ),
        (b"HEAD /cl HTTP/1.1\r\nHost: x.com\r\n\r\n", "HEAD", "/cl"),
        (
            b"GET /not-modified HTTP/1.1\r\nHost: x.com\r\nIf-None-Match: \"v1\"\r\n\r\n",
            "GET",
            "/not-modified",
        ),
        // 103 Early Hints, then the answer.
        (
            b"GET /early HTTP/1.1\r\nHost: x.com\r\n\r\n",
            "GET",
            "/early",
        ),
        // Ended by the site closing its connection; so is the client's.
        (b"GET /eof HTTP/1.1\r\nHost: x.com\r\n\r\n", "GET", "/eof"),
    ];
    for (request, method, path) in requests {
        c.io.write_all(request).await.unwrap();
        for sent in answers_in(&script(method, path).0, method == "HEAD").await {
            let got = c.answer(method == "HEAD").await;
            let got = got.unwrap_or_else(|| panic!("{method} {path}: no answer"));
            assert_relayed(&got, &sent, &format!("{method} {path}"));
        }
    }
    assert!(
        c.ended && closed(&mut c.io).await,
        "the connection closes after /eof"
    );
    // Two requests in one write (pipelined): both answered, in order, on the same
    // connection (the site closed its end after /eof: a new one is opened).
    let mut c = Reader::new(TcpStream::connect(s.http).await.unwrap());
    c.io.write_all(
        b"GET /cl HTTP/1.1\r\nHost: x.com\r\n\r\nGET /chunked HTTP/1.1\r\nHost: x.com\r\n\r\n",
    )
    .await
    .unwrap();
    for path in ["/cl", "/chunked"] {
        let sent = &answers_in(&script("GET", path).0, false).await[0];
        let got = c.answer(false).await.expect("a pipelined answer");
        assert_relayed(&got, sent, &format!("pipelined {path}"));
    }
    assert!(
        c.buf.is_empty() && !c.ended,
        "nothing more, connection open"
    );

    // (Metrics are shared by the gateways of this test process: at least ours.)
    let views = s.gw.metric(VIEWS).await - views_before;
    assert!(
        views >= 8.0,
        "every request counted as a view of x: {views}"
    );
    let text = s.site.received_text();
    // What the site got: the heads as sent, less identity and proxy headers. (Removing
    // fields moves others: the order of fields of different names carries no meaning.)
    let first_head = |t: &str| {
        let head = &t[..t.find("\r\n\r\n").map_or(0, |e| e + 4)];
        let mut lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
        lines[1..].sort();
        lines
    };
    assert_eq!(
        first_head(&text),
        first_head(&String::from_utf8_lossy(HEAD_UP)),
        "the site got {text:?}"
    );
    for gone in ["mallory", "Proxy-", "X-Permeable"] {
        assert!(!text.contains(gone), "{gone} reached the site: {text}");
    }
    let lines: Vec<&str> = text
        .split("\r\n")
        .filter(|l| l.contains(" HTTP/1.1"))
        .collect();
    assert_eq!(
        lines,
        [
            "GET /cl HTTP/1.1",
            "GET /chunked HTTP/1.1",
            "HEAD /cl HTTP/1.1",
            "GET /not-modified HTTP/1.1",
            "GET /early HTTP/1.1",
            "GET /eof HTTP/1.1",
            "GET /cl HTTP/1.1",
            "GET /chunked HTTP/1.1",
        ],
        "{text}"
    );
    assert!(text.contains("If-None-Match: \"v1\"\r\n"), "{text}");
    assert_eq!(
        s.site.connections(),
        2,
        "one connection to the site until it closed after /eof, then one more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn absolute_form_requests_on_the_explicit_listener_reach_the_site_in_origin_form() {
    let s = setup().await;
    let c = TcpStream::connect(s.gw.proxy).await.unwrap();
    let mut c = Reader::new(c);
    c.io.write_all(b"GET http://x.com/cl HTTP/1.1\r\nHost: x.com\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n")
        .await
        .unwrap();
    let sent = &answers_in(&script("GET", "/cl").0, false).await[0];
    assert_relayed(&c.answer(false).await.expect("an answer"), sent, "GET");
    assert_eq!(
        s.site.received_text(),
        "GET /cl HTTP/1.1\r\nHost: x.com\r\nAccept: */*\r\n\r\n",
        "origin form, proxy headers gone"
    );
    // That connection is HTTP now: a CONNECT on it is refused, and nothing is tunnelled.
    // (Clients open a connection per tunnel.)
    c.io.write_all(b"CONNECT plain.example:80 HTTP/1.1\r\nHost: plain.example:80\r\n\r\nGET /cl HTTP/1.1\r\nHost: x.com\r\nX-Tunnelled: 1\r\n\r\n")
        .await
        .unwrap();
    let refused = c.answer(false).await.expect("an answer to the CONNECT");
    assert_eq!(refused.status, 405, "{refused:?}");
    assert!(closed(&mut c.io).await, "and the connection closes");
    assert!(!s.site.received_text().contains("X-Tunnelled"));

    // On a connection of its own the CONNECT tunnels (blindly: not a catalogue site), and
    // bytes sent right behind it go through the tunnel, byte for byte both ways.
    let mut t = TcpStream::connect(s.gw.proxy).await.unwrap();
    t.write_all(b"CONNECT plain.example:80 HTTP/1.1\r\nHost: plain.example:80\r\n\r\nGET /cl HTTP/1.1\r\nHost: x.com\r\nX-Tunnelled: 1\r\n\r\n")
        .await
        .unwrap();
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let mut got = vec![0u8; established.len() + script("GET", "/cl").0.len()];
    tokio::time::timeout(Duration::from_secs(5), t.read_exact(&mut got))
        .await
        .expect("in time")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&[&established[..], &script("GET", "/cl").0].concat())
    );
    assert!(
        s.site
            .received_text()
            .ends_with("GET /cl HTTP/1.1\r\nHost: x.com\r\nX-Tunnelled: 1\r\n\r\n"),
        "{:?}",
        s.site.received_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_the_site_closed_is_replaced_and_large_answers_stream() {
    let s = setup().await;
    let c = TcpStream::connect(s.http).await.unwrap();
    let mut c = Reader::new(c);
    c.io.write_all(b"GET /bye HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    let bye = &answers_in(&script("GET", "/bye").0, false).await[0];
    assert_relayed(&c.answer(false).await.expect("an answer"), bye, "/bye");
    // The site closed its end after answering: the next request must not fail for it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cl = &answers_in(&script("GET", "/cl").0, false).await[0];
    for i in 0..3 {
        c.io.write_all(HEAD_IN).await.unwrap();
        let got = c.answer(false).await.expect("an answer");
        assert_relayed(&got, cl, &format!("request {i} after the site closed"));
    }
    assert_eq!(
        s.site.connections(),
        2,
        "one new connection after the closed one, kept for the next requests"
    );
    let big = &answers_in(&script("GET", "/big").0, false).await[0];
    c.io.write_all(b"GET /big HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    assert_relayed(&c.answer(false).await.expect("an answer"), big, "/big");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_get_the_gateways_answer_and_close() {
    let s = setup().await;
    let protocol = r#"permeable_upstream_errors_total{kind="protocol",site="x"}"#;
    let timeout = r#"permeable_upstream_errors_total{kind="timeout",site="x"}"#;
    let connect = r#"permeable_upstream_errors_total{kind="connect",site="x"}"#;
    let before = [
        s.gw.metric(protocol).await,
        s.gw.metric(timeout).await,
        s.gw.metric(connect).await,
        s.gw.metric(VIEWS).await,
    ];
    // An answer that frames its body two ways: refused, and nothing of it relayed.
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
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(!answer.contains("hello"), "{answer}");
    assert!(s.gw.metric(protocol).await > before[0]);

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
    assert!(s.gw.metric(timeout).await > before[1]);

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
    assert!(gw.metric(connect).await > before[2]);
    assert!(gw.metric(VIEWS).await >= before[3] + 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocks_bodies_and_http_1_0_go_through_the_same_phases() {
    let s = setup().await;
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
    assert!(
        answer.contains("x-permeable-rule: no-x-profiles"),
        "{answer}"
    );
    assert!(answer.contains("Profiles on X are off limits."), "{answer}");
    assert!(s.site.received().is_empty());

    // A request with a body reaches the site with it; an HTTP/1.0 view is blocked too.
    let c = TcpStream::connect(s.http).await.unwrap();
    let mut c = Reader::new(c);
    c.io.write_all(b"POST /upload HTTP/1.1\r\nHost: x.com\r\nContent-Length: 4\r\n\r\nping")
        .await
        .unwrap();
    assert_eq!(c.answer(false).await.expect("an answer").status, 404);
    let got = s.site.received_when(|r| r.ends_with(b"ping")).await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(
        got.starts_with("POST /upload HTTP/1.1\r\n") && got.ends_with("\r\n\r\nping"),
        "{got:?}"
    );
    let answer = raw_exchange(s.http, b"GET /cl HTTP/1.0\r\nHost: x.com\r\n\r\n").await;
    assert_eq!(answer.split(' ').nth(1), Some("403"), "{answer}");
    assert_eq!(s.site.received_text(), got, "nothing more reached the site");

    // A head that never completes is cut at proxy.header_timeout_seconds.
    let timeouts = r#"permeable_client_timeouts_total{phase="head"}"#;
    let before = s.gw.metric(timeouts).await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: x.com\r\n")
        .await
        .unwrap();
    assert!(closed(&mut c).await, "an incomplete head is cut");
    assert!(s.gw.metric(timeouts).await > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_head_on_a_connection_has_its_own_deadline() {
    // proxy.header_timeout_seconds is 1: each head must be complete within a second of the
    // previous answer, however the connection began.
    let s = setup().await;
    let timeouts = r#"permeable_client_timeouts_total{phase="head"}"#;
    for listener in [s.http, s.gw.proxy] {
        let before = s.gw.metric(timeouts).await;
        let (request, trickled): (&[u8], &[u8]) = if listener == s.http {
            (
                b"GET /cl HTTP/1.1\r\nHost: x.com\r\n\r\n",
                b"GET /cl HTTP/1.1\r\n",
            )
        } else {
            (
                b"GET http://x.com/cl HTTP/1.1\r\nHost: x.com\r\n\r\n",
                b"GET http://x.com/cl HTTP/1.1\r\n",
            )
        };
        let c = TcpStream::connect(listener).await.unwrap();
        let mut c = Reader::new(c);
        let cl = &answers_in(&script("GET", "/cl").0, false).await[0];
        // Heads sent in time, spread over more than the deadline, are all served.
        for _ in 0..3 {
            c.io.write_all(request).await.unwrap();
            assert_relayed(&c.answer(false).await.expect("an answer"), cl, "in time");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let requests = s.site.received_text().matches(" HTTP/1.1\r\n").count();
        // The next head trickles in, a field line every 300 ms: cut within the deadline.
        let started = std::time::Instant::now();
        c.io.write_all(trickled).await.unwrap();
        let mut cut = false;
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let line = format!("X-Slow-{i}: 1\r\n");
            if c.io.write_all(line.as_bytes()).await.is_err() {
                cut = true;
                break;
            }
            let mut probe = [0u8; 64];
            if let Ok(r) =
                tokio::time::timeout(Duration::from_millis(1), c.io.read(&mut probe)).await
            {
                assert!(
                    matches!(r, Ok(0) | Err(_)),
                    "closed without an answer: {r:?}"
                );
                cut = true;
                break;
            }
        }
        let waited = started.elapsed();
        assert!(
            cut,
            "a trickling head on a kept-alive connection was not cut"
        );
        assert!(waited < Duration::from_secs(3), "cut late: {waited:?}");
        assert!(s.gw.metric(timeouts).await > before);
        assert_eq!(
            s.site.received_text().matches(" HTTP/1.1\r\n").count(),
            requests,
            "the trickled request never reached the site"
        );
    }
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
    // On each plain listener: one connection that carried requests (it waits for the next
    // one inside the pipeline), one that never sent anything.
    let cl = &answers_in(&script("GET", "/cl").0, false).await[0];
    let mut idle = Vec::new();
    for (listener, request) in [
        (http, &b"GET /cl HTTP/1.1\r\nHost: x.com\r\n\r\n"[..]),
        (
            gw.proxy,
            b"GET http://x.com/cl HTTP/1.1\r\nHost: x.com\r\n\r\n",
        ),
    ] {
        let used = TcpStream::connect(listener).await.unwrap();
        let mut used = Reader::new(used);
        for _ in 0..2 {
            used.io.write_all(request).await.unwrap();
            assert_relayed(&used.answer(false).await.expect("an answer"), cl, "used");
        }
        idle.push(used.io);
        idle.push(TcpStream::connect(listener).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut probe = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), idle[0].read(&mut probe))
            .await
            .is_err(),
        "an idle connection stays open while the gateway runs"
    );
    gw.shutdown_graceful();
    for (i, c) in idle.iter_mut().enumerate() {
        assert!(closed(c).await, "idle connection {i} was closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bodies_on_a_get_an_upgrade_and_connection_close_reach_the_site_as_framed() {
    // A GET with a body in either framing must reach the site with its body as a body
    // (relaying the head alone would leave the body to be read as a next request); an
    // upgrade the site does not take and a connection the client closes are answered.
    let s = setup().await;
    // (request, how what the site receives ends, a field it receives)
    let cases: [(&[u8], &str, &str); 4] = [
        (
            b"GET /cl HTTP/1.1\r\nHost: x.com\r\nContent-Length: 4\r\n\r\nping",
            "\r\n\r\nping",
            "Content-Length: 4\r\n",
        ),
        (
            b"GET /cl HTTP/1.1\r\nHost: x.com\r\nTRANSFER-ENCODING: chunked\r\n\r\n4\r\nping\r\n0\r\n\r\n",
            "\r\n\r\n4\r\nping\r\n0\r\n\r\n",
            "TRANSFER-ENCODING: chunked\r\n",
        ),
        (
            b"GET /cl HTTP/1.1\r\nHost: x.com\r\nUpgrade: websocket\r\n\r\n",
            "\r\n\r\n",
            "Upgrade: websocket\r\n",
        ),
        (
            b"GET /cl HTTP/1.1\r\nHost: x.com\r\nconnection: close\r\n\r\n",
            "\r\n\r\n",
            "Host: x.com\r\n",
        ),
    ];
    let cl = &answers_in(&script("GET", "/cl").0, false).await[0];
    for (i, (case, ends, field)) in cases.into_iter().enumerate() {
        let before = s.site.received().len();
        let c = TcpStream::connect(s.http).await.unwrap();
        let mut c = Reader::new(c);
        c.io.write_all(case).await.unwrap();
        let got = c.answer(false).await;
        let got = got.unwrap_or_else(|| panic!("case {i}: no answer"));
        assert_relayed(&got, cl, &format!("case {i}"));
        if i == 3 {
            assert!(closed(&mut c.io).await, "the client asked for the close");
        } else {
            // Nothing but the answer: no second answer to a body read as a request.
            let mut more = [0u8; 64];
            let late = tokio::time::timeout(Duration::from_millis(300), c.io.read(&mut more));
            assert!(late.await.is_err(), "case {i}: more than one answer");
        }
        assert!(
            c.buf.is_empty(),
            "case {i}: {:?}",
            String::from_utf8_lossy(&c.buf)
        );
        let received = s
            .site
            .received_when(|r| r.len() > before && r[before..].ends_with(ends.as_bytes()))
            .await;
        let received = String::from_utf8_lossy(&received[before..]);
        assert_eq!(
            received.matches(" HTTP/1.1\r\n").count(),
            1,
            "case {i}: one request: {received:?}"
        );
        assert!(
            received.starts_with("GET /cl HTTP/1.1\r\n")
                && received.ends_with(ends)
                && received
                    .to_ascii_lowercase()
                    .contains(&field.to_ascii_lowercase()),
            "case {i}: {received:?}"
        );
    }
}
