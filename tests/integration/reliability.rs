//! Reliability and security: hostile and malformed input, faults, access control and load.
//!
//! Every test drives the gateway in-process with real clients against real local servers
//! and asserts what the client got, what the upstream received (nothing, for anything
//! malformed) and what the metrics say. Load tests are bounded in count and time and stay
//! on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

const TWEET_PATH: &str = "/i/api/graphql/AbC123/CreateTweet";
const TWEET: &str = "https://x.com/i/api/graphql/AbC123/CreateTweet";
/// An AWS access key id of the documented example shape: the fixture rules block it.
const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";

fn tweet(text: &str) -> String {
    serde_json::json!({"variables": {"tweet_text": text}, "queryId": "AbC123"}).to_string()
}

// ---------------------------------------------------------------------------------------
// Real parts of our own: a raw upstream that records bytes, raw clients, tunnels.
// ---------------------------------------------------------------------------------------

/// How a [`RawUpstream`] misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Answers every complete request with `200 ok`.
    None,
    /// Closes the connection (with unread data: a reset) once a request head arrived.
    CloseAfterHead,
    /// Sends a response head promising 100000 bytes, 100 of them, then closes.
    CloseMidResponse,
    /// Accepts and reads, never answers.
    Stall,
    /// Negotiates h2 by ALPN, then speaks HTTP/1.1 and garbage instead of HTTP/2 frames.
    BadHttp2,
}

/// An HTTP/1.1 server written against raw bytes, so that a test sees exactly what the
/// gateway sent: every connection's bytes and how many requests were complete.
struct RawUpstream {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Vec<u8>>>>,
    complete: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>, fault: Fault) -> RawUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let complete = Arc::new(AtomicUsize::new(0));
        let tls = tls.map(|cfg| {
            let mut cfg = (*cfg).clone();
            cfg.alpn_protocols = if fault == Fault::BadHttp2 {
                vec![b"h2".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let (c, n) = (conns.clone(), complete.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let index = {
                    let mut all = c.lock();
                    all.push(Vec::new());
                    all.len() - 1
                };
                let (c, n, tls) = (c.clone(), n.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(tcp).await {
                                serve_raw(s, fault, c, index, n).await;
                            }
                        }
                        None => serve_raw(tcp, fault, c, index, n).await,
                    }
                });
            }
        });
        RawUpstream {
            addr,
            conns,
            complete,
        }
    }

    /// Bytes received, all connections together.
    fn bytes(&self) -> Vec<u8> {
        self.conns.lock().concat()
    }

    /// Forget what was received so far (connections stay open).
    fn reset(&self) {
        self.conns.lock().iter_mut().for_each(Vec::clear);
        self.complete.store(0, Ordering::SeqCst);
    }

    /// Complete requests received.
    fn complete(&self) -> usize {
        self.complete.load(Ordering::SeqCst)
    }
}

async fn serve_raw<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    fault: Fault,
    conns: Arc<Mutex<Vec<Vec<u8>>>>,
    index: usize,
    complete: Arc<AtomicUsize>,
) {
    if fault == Fault::BadHttp2 {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x00\x00\xff\xff\xff\xff")
            .await;
        let _ = s.flush().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        return;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        conns.lock()[index].extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
        while let Some((head_len, body_len)) = request_extent(&buf) {
            if fault == Fault::CloseAfterHead {
                return; // unread body bytes make this a reset
            }
            let Some(total) = body_len.map(|b| head_len + b) else {
                break; // the body is not all here yet
            };
            if buf.len() < total {
                break;
            }
            buf.drain(..total);
            complete.fetch_add(1, Ordering::SeqCst);
            match fault {
                Fault::Stall => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                Fault::CloseMidResponse => {
                    let mut resp =
                        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: text/plain\r\n\r\n"
                            .to_vec();
                    resp.extend_from_slice(&[b'a'; 100]);
                    let _ = s.write_all(&resp).await;
                    let _ = s.flush().await;
                    return;
                }
                _ => {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Upstream: raw\r\n\r\nok",
                        )
                        .await;
                }
            }
        }
    }
}

/// `Some((head length, Some(body length)))` once a request head is complete; the body
/// length is `None` while a chunked body is incomplete.
fn request_extent(buf: &[u8]) -> Option<(usize, Option<usize>)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        // Walk the chunks.
        let mut pos = head_len;
        loop {
            let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            let size = std::str::from_utf8(&buf[pos..line_end]).ok()?;
            let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                let end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos + 2;
                return Some((head_len, Some(end - head_len)));
            }
            if buf.len() < pos + size + 2 {
                return Some((head_len, None));
            }
            pos += size + 2;
        }
    }
    let len = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some((head_len, Some(len)))
}

type Tunnel = tokio_rustls::client::TlsStream<TcpStream>;

/// `CONNECT host:443` through the gateway, then TLS (HTTP/1.1) trusting the gateway's CA.
async fn tunnel(gw: &Gateway, host: &str) -> Tunnel {
    tunnel_offering(gw, host, &[b"http/1.1"]).await
}

/// [`tunnel`], offering these ALPN protocols.
async fn tunnel_offering(gw: &Gateway, host: &str, alpn: &[&[u8]]) -> Tunnel {
    let mut tcp = TcpStream::connect(gw.proxy).await.unwrap();
    tcp.write_all(format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tokio_rustls::TlsConnector::from(tls_client_config(gw, alpn))
        .connect(host.to_string().try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Write (a gateway that already answered may stop reading: errors are expected) and
/// read the answer until close.
async fn send_and_read<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> (String, bool) {
    let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(bytes)).await;
    let _ = s.flush().await;
    read_answer(s, Duration::from_secs(5)).await
}

// ---------------------------------------------------------------------------------------
// Framing: request smuggling and malformed heads, explicit proxy and intercepted tunnel.
// ---------------------------------------------------------------------------------------

/// What must happen to a malformed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Refused from its head: 400 or 431, connection closed, upstream got not one byte.
    Refused,
    /// Broken in its body: no success answer, connection closed, no complete request upstream.
    NotDelivered,
    /// Characters that are illegal in a request target are percent-encoded (as Pingora
    /// does): the site receives one well-formed request with that target, `(raw, escaped)`.
    Escaped(&'static str, &'static str),
}

/// Malformed requests; `{T}` is the request target (absolute or origin form).
fn framing_cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let big = "a".repeat(2 << 20);
    let many: String = (0..400).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&'static str, String, Expect)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG".into(),
            Expect::Refused,
        ),
        (
            "two different Content-Lengths",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde".into(),
            Expect::Refused,
        ),
        (
            "Content-Length list",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nContent-Length: 3, 5\r\n\r\nabcde".into(),
            Expect::Refused,
        ),
        (
            "negative Content-Length",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nContent-Length: -1\r\n\r\nabcde".into(),
            Expect::Refused,
        ),
        (
            "Content-Length with a sign",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nContent-Length: +5\r\n\r\nabcde".into(),
            Expect::Refused,
        ),
        (
            "Transfer-Encoding not ending in chunked",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "unknown Transfer-Encoding",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "space before the colon",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "obsolete line folding",
            "GET {T} HTTP/1.1\r\nHost: x.com\r\nX-Folded: a\r\n  b\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "bare LF line ends",
            "GET {T} HTTP/1.1\nHost: x.com\nX-A: b\n\n".into(),
            Expect::Refused,
        ),
        (
            "bare LF inside the head",
            "GET {T} HTTP/1.1\r\nHost: x.com\nX-A: b\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "NUL in a header value",
            "GET {T} HTTP/1.1\r\nHost: x.com\r\nX-A: a\0b\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "invalid method",
            "G(T {T} HTTP/1.1\r\nHost: x.com\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "invalid version",
            "GET {T} HTTP/7.1\r\nHost: x.com\r\n\r\n".into(),
            Expect::Refused,
        ),
        (
            "space in the target",
            "GET {T}a b HTTP/1.1\r\nHost: x.com\r\nConnection: close\r\n\r\n".into(),
            Expect::Escaped("a b", "a%20b"),
        ),
        (
            "control character in the target",
            "GET {T}a\x01b HTTP/1.1\r\nHost: x.com\r\nConnection: close\r\n\r\n".into(),
            Expect::Escaped("a\x01b", "a%01b"),
        ),
        (
            "oversized header",
            format!("GET {{T}} HTTP/1.1\r\nHost: x.com\r\nX-Big: {big}\r\n\r\n"),
            Expect::Refused,
        ),
        (
            "too many headers",
            format!("GET {{T}} HTTP/1.1\r\nHost: x.com\r\n{many}\r\n"),
            Expect::Refused,
        ),
        (
            "invalid chunk size",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".into(),
            Expect::NotDelivered,
        ),
        (
            "chunk size overflow",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n".into(),
            Expect::NotDelivered,
        ),
        (
            "chunk without its CRLF",
            "POST {T} HTTP/1.1\r\nHost: x.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n".into(),
            Expect::NotDelivered,
        ),
    ];
    cases
        .into_iter()
        .map(|(name, text, expect)| (name, text.into_bytes(), expect))
        .collect()
}

fn with_target(template: &[u8], target: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() + target.len());
    let mut i = 0;
    while i < template.len() {
        if template[i..].starts_with(b"{T}") {
            out.extend_from_slice(target.as_bytes());
            i += 3;
        } else {
            out.push(template[i]);
            i += 1;
        }
    }
    out
}

struct FramingSetup {
    plain: RawUpstream,
    tls: RawUpstream,
    gw: Gateway,
}

async fn framing_setup() -> FramingSetup {
    let ca = TestCa::new("upstream test CA");
    let plain = RawUpstream::start(None, Fault::None).await;
    let tls = RawUpstream::start(Some(ca.server_config(&["x.com"])), Fault::None).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:80", plain.addr)
        .resolve("x.com:443", tls.addr)
        .upstream_ca(&ca.pem)
        .start()
        .await;
    FramingSetup { plain, tls, gw }
}

fn check_framing(
    name: &str,
    where_: &str,
    expect: Expect,
    answer: &str,
    closed: bool,
    up: &RawUpstream,
) {
    let code = status(answer);
    let first_line = answer.lines().next().unwrap_or("");
    match expect {
        Expect::Refused => {
            assert!(
                code == 400 || code == 431,
                "{where_}: {name}: expected 400/431, got {first_line:?}"
            );
            assert!(
                up.bytes().is_empty(),
                "{where_}: {name}: the upstream received {:?}",
                String::from_utf8_lossy(&up.bytes())
            );
        }
        Expect::Escaped(raw, escaped) => {
            assert_eq!(code, 200, "{where_}: {name}: {first_line:?}");
            let got = String::from_utf8_lossy(&up.bytes()).into_owned();
            let line = got.lines().next().unwrap_or("");
            assert!(
                line.contains(escaped) && !line.contains(raw),
                "{where_}: {name}: the site got {line:?}"
            );
            assert_eq!(up.complete(), 1, "{where_}: {name}");
            return;
        }
        Expect::NotDelivered => {
            assert!(
                !(200..400).contains(&code),
                "{where_}: {name}: expected no success, got {first_line:?}"
            );
            assert_eq!(
                up.complete(),
                0,
                "{where_}: {name}: the upstream received a complete request: {:?}",
                String::from_utf8_lossy(&up.bytes())
            );
        }
    }
    assert!(
        closed,
        "{where_}: {name}: connection left open after {first_line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_framing_on_the_explicit_proxy_is_refused() {
    let s = framing_setup().await;
    for (name, template, expect) in framing_cases() {
        s.plain.reset();
        let bytes = with_target(&template, "http://x.com/upload");
        let mut tcp = TcpStream::connect(s.gw.proxy).await.unwrap();
        let (answer, closed) = send_and_read(&mut tcp, &bytes).await;
        check_framing(name, "explicit proxy", expect, &answer, closed, &s.plain);
    }
    // The gateway still serves well-formed requests.
    let answer = raw_exchange(
        s.gw.proxy,
        b"GET http://x.com/ok HTTP/1.1\r\nHost: x.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(s.plain.complete(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_framing_inside_an_intercepted_tunnel_is_refused() {
    let s = framing_setup().await;
    for (name, template, expect) in framing_cases() {
        s.tls.reset();
        let bytes = with_target(&template, "/upload");
        let mut tls = tunnel(&s.gw, "x.com").await;
        let (answer, closed) = send_and_read(&mut tls, &bytes).await;
        check_framing(name, "intercepted tunnel", expect, &answer, closed, &s.tls);
    }
    let mut tls = tunnel(&s.gw, "x.com").await;
    let (answer, _) = send_and_read(
        &mut tls,
        b"GET /ok HTTP/1.1\r\nHost: x.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_connect_requests_are_refused() {
    let gw = GatewayBuilder::new().start().await;
    let big = "a".repeat(64 * 1024);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("no port", b"CONNECT x.com HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("port 0", b"CONNECT x.com:0 HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "port overflow",
            b"CONNECT x.com:70000 HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "path target",
            b"CONNECT /x.com:443 HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "userinfo",
            b"CONNECT user@x.com:443 HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "empty label",
            b"CONNECT x..com:443 HTTP/1.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            "bare LF",
            b"CONNECT x.com:443 HTTP/1.1\nHost: x.com\n\n".to_vec(),
            400,
        ),
        (
            "obsolete folding",
            b"CONNECT x.com:443 HTTP/1.1\r\nHost: x.com\r\n  y\r\n\r\n".to_vec(),
            400,
        ),
        (
            "oversized head",
            format!("CONNECT x.com:443 HTTP/1.1\r\nX-Big: {big}\r\n\r\n").into_bytes(),
            431,
        ),
    ];
    for (name, bytes, want) in cases {
        let mut tcp = TcpStream::connect(gw.proxy).await.unwrap();
        let (answer, closed) = send_and_read(&mut tcp, &bytes).await;
        assert_eq!(status(&answer), want, "{name}: {answer}");
        assert!(closed, "{name}: connection left open");
    }
}

// ---------------------------------------------------------------------------------------
// Bodies: truncated, too long, undecodable, bombs, huge numbers of fields.
// ---------------------------------------------------------------------------------------

async fn x_setup() -> (TestCa, Upstream, Gateway) {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com", "forms.example"]))).await;
    let rules = rules_with_forms();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .resolve("forms.example:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    // The rules were compiled at start; the directory may go.
    drop(rules);
    (ca, x, gw)
}

/// The fixture rules plus a site whose posts carry a form field and multipart parts.
fn rules_with_forms() -> tempfile::TempDir {
    let dir = fixture_rules_copy();
    std::fs::write(
        dir.path().join("sites/forms.yaml"),
        "site: forms\nname: Forms (test)\ndomains: [forms.example]\nactivities:\n  - activity: post\n    method: POST\n    path: '^/form$'\n    content:\n      - form: text\n  - activity: comment\n    method: POST\n    path: '^/multipart$'\n    content:\n      - multipart: '*'\n  - activity: view\n    method: GET\n",
    )
    .unwrap();
    dir
}

/// No byte of a blocked body reached the site. (A body too large to be read before the
/// site is contacted is held back while it streams: the site may then see the request
/// head of an upload that is aborted, never its body.)
fn no_body_delivered(up: &Upstream, what: &str) {
    for r in up.received.lock().iter() {
        assert_eq!(r.body_len, 0, "{what}: body bytes reached the site");
    }
}

async fn post(
    gw: &Gateway,
    url: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = gw
        .intercepting_client()
        .post(url)
        .header("accept", "application/json")
        .header("content-type", content_type);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncated_body_is_never_delivered() {
    let (_ca, x, gw) = x_setup().await;
    // Small declared body (read before the site is contacted) and a large one (streamed).
    for declared in [200usize, 200_000] {
        let mut tls = tunnel(&gw, "x.com").await;
        let head = format!(
            "POST {TWEET_PATH} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(tweet("only part of it").as_bytes())
            .await
            .unwrap();
        tls.flush().await.unwrap();
        tls.shutdown().await.unwrap();
        let (answer, closed) = read_answer(&mut tls, Duration::from_secs(5)).await;
        assert!(
            !(200..400).contains(&status(&answer)),
            "declared {declared}: {answer}"
        );
        assert!(closed);
    }
    assert!(
        x.received.lock().iter().all(|r| r.body.is_empty()),
        "no part of a truncated body reaches the site"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bytes_beyond_the_declared_length_are_read_as_the_next_request() {
    // Never as part of the body: the site gets exactly the declared body, and what follows
    // is a request of its own, decided by the rules like any other (pipelining), or
    // refused when it is not one.
    let (_ca, x, gw) = x_setup().await;
    let body = tweet("hello");
    let post = |after: &str| {
        format!(
            "POST {TWEET_PATH} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}{after}",
            body.len()
        )
    };
    let first_is_the_declared_body = |what: &str| {
        let got = x.received.lock();
        assert_eq!(got[0].method, "POST", "{what}");
        assert_eq!(
            got[0].body,
            body.as_bytes(),
            "{what}: the declared body, exactly"
        );
    };

    // A request line with an unusual method: a request, relayed as one, with no body.
    let mut tls = tunnel(&gw, "x.com").await;
    tls.write_all(post("GARBAGE-AFTER-THE-BODY /x HTTP/1.1\r\nHost: x.com\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answers = read_responses(&mut tls, 2).await;
    let (first, second) = (&answers[0], &answers[1]);
    assert_eq!(status(first), 200, "{first}");
    assert_eq!(status(second), 200, "{second}");
    assert_eq!(x.count(), 2);
    first_is_the_declared_body("an extension method");
    let next = x.last().unwrap();
    assert_eq!(
        (next.method.as_str(), next.path.as_str(), next.body_len),
        ("GARBAGE-AFTER-THE-BODY", "/x", 0)
    );

    // A post carrying a secret right behind an allowed one: blocked, never sent.
    x.received.lock().clear();
    let secret = tweet(&format!("key {SECRET}"));
    let mut tls = tunnel(&gw, "x.com").await;
    let pipelined = format!(
        "POST {TWEET_PATH} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n{secret}",
        secret.len()
    );
    tls.write_all(post(&pipelined).as_bytes()).await.unwrap();
    let answers = read_responses(&mut tls, 2).await;
    let (first, second) = (&answers[0], &answers[1]);
    assert_eq!(status(first), 200, "{first}");
    assert_eq!(status(second), 403, "{second}");
    assert!(second.contains("x-permeable-action: block"), "{second}");
    assert_eq!(x.count(), 1, "the blocked post never reached the site");
    first_is_the_declared_body("a pipelined secret");

    // Bytes that are no request at all: 400, and nothing more reaches the site.
    x.received.lock().clear();
    let mut tls = tunnel(&gw, "x.com").await;
    let (answer, closed) = send_and_read(&mut tls, post("GARBAGE\r\n\r\n").as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
    let second = answer
        .match_indices("HTTP/1.1 ")
        .nth(1)
        .map(|(i, _)| &answer[i..]);
    assert!(
        second.is_none_or(|s| status(s) == 400),
        "the extra bytes are answered as a malformed request: {answer}"
    );
    assert!(closed);
    assert_eq!(x.count(), 1, "the site got exactly one request");
    first_is_the_declared_body("bytes that are no request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn undecodable_posts_are_blocked_as_uninspectable() {
    let (_ca, x, gw) = x_setup().await;
    let mut bad_utf8 = br#"{"variables":{"tweet_text":"caf"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(br#""}}"#);
    let deep = format!("{}{}", "{\"a\":[".repeat(50_000), "]}".repeat(50_000));
    // (what, Content-Type, extra headers, body, the metric's reason)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "invalid UTF-8 in JSON",
            "application/json",
            vec![],
            bad_utf8,
            "malformed",
        ),
        (
            "deeply nested JSON",
            "application/json",
            vec![],
            deep.into_bytes(),
            "too_deep",
        ),
        (
            "not JSON at all",
            "application/json",
            vec![],
            b"{\"variables\": ".to_vec(),
            "malformed",
        ),
        (
            "unknown Content-Encoding",
            "application/json",
            vec![("content-encoding", "compress")],
            tweet("hi").into_bytes(),
            "bad_encoding",
        ),
        (
            "gzip that is not gzip",
            "application/json",
            vec![("content-encoding", "gzip")],
            tweet("hi").into_bytes(),
            "bad_encoding",
        ),
        (
            "a binary encoding of the post",
            "application/x-protobuf",
            vec![],
            vec![0x0a, 0x05, 0xff, 0x00, 0x01, 0x80, 0xfe],
            "binary",
        ),
    ];
    for (name, ct, extra, body, reason) in cases {
        let series = format!("permeable_uninspectable_total{{site=\"x\",reason=\"{reason}\"}}");
        let before = gw.metric(&series).await;
        let resp = post(&gw, TWEET, ct, &extra, body).await;
        assert_eq!(resp.status(), 403, "{name}");
        assert_eq!(
            resp.headers().get("x-permeable-rule").unwrap(),
            "block-uninspectable",
            "{name}"
        );
        assert_eq!(gw.metric(&series).await, before + 1.0, "{name}: {series}");
    }
    no_body_delivered(&x, "uninspectable posts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gzip_bomb_is_uninspectable_and_memory_stays_bounded() {
    use std::io::Write;
    let (_ca, x, gw) = x_setup().await;
    // 32 MiB of JSON-ish text that compresses to well under the pre-read limit.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(b"{\"variables\":{\"tweet_text\":\"").unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..32 {
        enc.write_all(&zeros).unwrap();
    }
    enc.write_all(b"\"}}").unwrap();
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 64 * 1024, "bomb is {} bytes", bomb.len());
    let before = rss_kib();
    let too_large = "permeable_uninspectable_total{site=\"x\",reason=\"too_large\"}";
    let bombs_before = gw.metric(too_large).await;
    for _ in 0..3 {
        let resp = post(
            &gw,
            TWEET,
            "application/json",
            &[("content-encoding", "gzip")],
            bomb.clone(),
        )
        .await;
        assert_eq!(resp.status(), 403);
        assert_eq!(
            resp.headers().get("x-permeable-rule").unwrap(),
            "block-uninspectable"
        );
    }
    assert_eq!(gw.metric(too_large).await, bombs_before + 3.0);
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "memory grew by {grown_mib} MiB on a gzip bomb"
    );
    assert_eq!(x.count(), 0);
    // A small gzip body that inflates within the limits is inspected and allowed.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(tweet("compressed hello").as_bytes()).unwrap();
    let resp = post(
        &gw,
        TWEET,
        "application/json",
        &[("content-encoding", "gzip")],
        enc.finish().unwrap(),
    )
    .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_numbers_of_form_fields_and_parts_are_still_inspected() {
    let (_ca, x, gw) = x_setup().await;
    let before = rss_kib();
    // 200,000 form fields, the text last: the secret in it is still found.
    let mut form = "a=1&".repeat(200_000);
    form.push_str(&format!("text={SECRET}"));
    let resp = post(
        &gw,
        "https://forms.example/form",
        "application/x-www-form-urlencoded",
        &[],
        form.into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let rule = resp.headers().get("x-permeable-rule").unwrap().clone();
    let why = resp.text().await.unwrap();
    assert_eq!(rule, "block-secrets", "{why}");

    // 12,000 multipart parts (under inspection.max_body), the secret in the last.
    let mut mp = String::new();
    for i in 0..12_000 {
        mp.push_str(&format!(
            "--BOUNDARY\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n"
        ));
    }
    mp.push_str(&format!(
        "--BOUNDARY\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{SECRET}\r\n--BOUNDARY--\r\n"
    ));
    let resp = post(
        &gw,
        "https://forms.example/multipart",
        "multipart/form-data; boundary=BOUNDARY",
        &[],
        mp.into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers().get("x-permeable-rule").unwrap(),
        "block-secrets"
    );
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 128, "memory grew by {grown_mib} MiB");
    no_body_delivered(&x, "blocked forms");

    // Harmless: delivered byte for byte.
    let form = "a=1&".repeat(50_000) + "text=hello";
    let resp = post(
        &gw,
        "https://forms.example/form",
        "application/x-www-form-urlencoded",
        &[],
        form.clone().into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(x.last().unwrap().body, form.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_without_its_closing_boundary_is_uninspectable() {
    let (_ca, x, gw) = x_setup().await;
    for body in [
        // One part, never closed.
        format!("--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{SECRET}\r\n"),
        // A closed part, then one that is not.
        format!("--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n--B\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{SECRET}"),
    ] {
        let resp = post(
            &gw,
            "https://forms.example/multipart",
            "multipart/form-data; boundary=B",
            &[],
            body.into_bytes(),
        )
        .await;
        assert_eq!(resp.status(), 403);
        let rule = resp.headers().get("x-permeable-rule").unwrap().to_str().unwrap().to_string();
        assert!(
            rule == "block-uninspectable" || rule == "block-secrets",
            "{rule}"
        );
    }
    no_body_delivered(&x, "unterminated multipart");
}

// ---------------------------------------------------------------------------------------
// Faults: the site refuses, resets, stalls, lies about TLS or HTTP/2; DNS; disks; rules; CA.
// ---------------------------------------------------------------------------------------

struct Faults {
    _ca: TestCa,
    healthy: Upstream,
    _ups: Vec<RawUpstream>,
    gw: Gateway,
}

/// One gateway, a healthy x.com and a misbehaving upstream per subdomain of x.com (all
/// catalogue hosts, so all intercepted).
async fn faults() -> Faults {
    let ca = TestCa::new("upstream test CA");
    let healthy = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", healthy.addr)
        .upstream_ca(&ca.pem);
    let mut ups = Vec::new();
    for (name, fault) in [
        ("reset-request.x.com", Fault::CloseAfterHead),
        ("reset-response.x.com", Fault::CloseMidResponse),
        ("stall.x.com", Fault::Stall),
        ("bad-h2.x.com", Fault::BadHttp2),
    ] {
        let up = RawUpstream::start(Some(ca.server_config(&[name])), fault).await;
        b = b.resolve(&format!("{name}:443"), up.addr);
        ups.push(up);
    }
    // A site presenting a certificate for another name, and one with an expired one.
    let wrong = Upstream::start(Some(ca.server_config(&["elsewhere.example"]))).await;
    b = b.resolve("wrong-name.x.com:443", wrong.addr);
    let (expired_pem, expired_cfg) = expired_server_config(&["expired.x.com"]);
    let expired = Upstream::start(Some(expired_cfg)).await;
    b = b.resolve("expired.x.com:443", expired.addr);
    b.upstream_ca = Some(format!("{}{}", ca.pem, expired_pem));
    // Nobody listens there.
    b = b.resolve(
        "refused.x.com:443",
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let gw = b.start().await;
    Faults {
        _ca: ca,
        healthy,
        _ups: ups,
        gw,
    }
}

/// A CA (PEM) and a server config whose certificate expired in 2021.
fn expired_server_config(names: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "expired test CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone(), ca.der().clone()], key_der)
    .unwrap();
    (ca.pem(), Arc::new(cfg))
}

/// The site still answers through the same gateway.
async fn still_serving(f: &Faults) {
    let before = f.healthy.count();
    let resp =
        f.gw.intercepting_client()
            .get("https://x.com/still-here")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(f.healthy.count(), before + 1);
}

async fn upstream_errors(gw: &Gateway, kind: &str) -> f64 {
    gw.metric(&format!(
        "permeable_upstream_errors_total{{site=\"x\",kind=\"{kind}\"}}"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_faults_get_clear_answers_and_metrics() {
    let f = faults().await;
    let client = f.gw.intercepting_client();
    // (host, method, expected status, metric kind)
    let cases = [
        ("refused.x.com", "GET", 502, "connect"),
        ("stall.x.com", "GET", 504, "timeout"),
        ("wrong-name.x.com", "GET", 502, "tls"),
        ("expired.x.com", "GET", 502, "tls"),
        ("bad-h2.x.com", "GET", 502, "protocol"),
        ("reset-request.x.com", "POST", 502, "reset"),
    ];
    for (host, method, want, kind) in cases {
        let before = upstream_errors(&f.gw, kind).await;
        let req = if method == "POST" {
            // A long upload the site resets while it is still being sent.
            let chunk = bytes::Bytes::from(vec![b'u'; 64 * 1024]);
            let stream = futures_util::stream::iter(
                (0..64).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            client
                .post(format!("https://{host}/upload"))
                .body(reqwest::Body::wrap_stream(stream))
        } else {
            client.get(format!("https://{host}/page"))
        };
        let resp = req.header("accept", "application/json").send().await;
        let resp = resp.unwrap_or_else(|e| panic!("{host}: the client got no answer: {e}"));
        assert_eq!(resp.status(), want, "{host}");
        assert!(
            resp.headers().get("x-permeable-reason").is_some(),
            "{host}: the answer says why"
        );
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{host}: {body}"
        );
        assert!(
            upstream_errors(&f.gw, kind).await > before,
            "{host}: permeable_upstream_errors_total{{kind={kind:?}}} did not move"
        );
        still_serving(&f).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_closing_mid_response_is_not_passed_off_as_complete() {
    let f = faults().await;
    let resp =
        f.gw.intercepting_client()
            .get("https://reset-response.x.com/page")
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 200, "the head had already arrived");
    assert!(
        resp.bytes().await.is_err(),
        "a body cut short must reach the client as an error, not as a complete answer"
    );
    still_serving(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn names_that_do_not_resolve_get_a_clear_502() {
    let gw = GatewayBuilder::new().start().await;
    let before = gw
        .metric("permeable_upstream_errors_total{site=\"other\",kind=\"dns\"}")
        .await;
    let answer = raw_exchange(
        gw.proxy,
        b"GET http://no-such-host.invalid/ HTTP/1.1\r\nHost: no-such-host.invalid\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), 502, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("resolve"), "{answer}");
    let answer = raw_exchange(
        gw.proxy,
        b"CONNECT no-such-host.invalid:443 HTTP/1.1\r\nHost: no-such-host.invalid:443\r\n\r\n",
    )
    .await;
    assert_eq!(status(&answer), 502, "{answer}");
    assert!(
        gw.metric("permeable_upstream_errors_total{site=\"other\",kind=\"dns\"}")
            .await
            >= before + 2.0
    );
}

/// A DNS server on UDP loopback answering from a table: names with their addresses and
/// how long to wait before answering; anything else is NXDOMAIN. Records the questions.
struct DnsServer {
    addr: SocketAddr,
    questions: Arc<Mutex<Vec<(String, u16)>>>,
}

impl DnsServer {
    async fn start(table: Vec<(&'static str, Vec<std::net::IpAddr>, Duration)>) -> DnsServer {
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let questions: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
        let asked = questions.clone();
        let table = Arc::new(table);
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    return;
                };
                let query = buf[..n].to_vec();
                let Some((name, qtype, question_end)) = dns_question(&query) else {
                    continue;
                };
                asked.lock().push((name.clone(), qtype));
                let (socket, table) = (socket.clone(), table.clone());
                tokio::spawn(async move {
                    let entry = table.iter().find(|(n, _, _)| *n == name);
                    if let Some((_, _, delay)) = entry {
                        tokio::time::sleep(*delay).await;
                    }
                    let mut answer = query[..question_end].to_vec();
                    // QR, RD, RA, and NXDOMAIN when the name is not in the table.
                    answer[2] = 0x81;
                    answer[3] = if entry.is_some() { 0x80 } else { 0x83 };
                    answer[8..12].copy_from_slice(&[0, 0, 0, 0]); // no authority, no additional
                    let mut count = 0u16;
                    for ip in entry.map(|e| e.1.as_slice()).unwrap_or_default() {
                        let rdata = match (ip, qtype) {
                            (std::net::IpAddr::V4(v4), 1) => v4.octets().to_vec(),
                            (std::net::IpAddr::V6(v6), 28) => v6.octets().to_vec(),
                            _ => continue,
                        };
                        answer.extend_from_slice(&[0xc0, 12]); // the question's name
                        answer.extend_from_slice(&qtype.to_be_bytes());
                        answer.extend_from_slice(&[0, 1, 0, 0, 0, 60]); // IN, TTL 60 s
                        answer.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                        answer.extend_from_slice(&rdata);
                        count += 1;
                    }
                    answer[6..8].copy_from_slice(&count.to_be_bytes());
                    let _ = socket.send_to(&answer, from).await;
                });
            }
        });
        DnsServer { addr, questions }
    }

    /// How many times the IPv4 address of `name` was asked for. (Empty IPv6 answers carry
    /// no SOA record here, so they are not cached and are asked for again each time.)
    fn asked(&self, name: &str) -> usize {
        let questions = self.questions.lock();
        questions.iter().filter(|q| q.0 == name && q.1 == 1).count()
    }
}

/// The name (lowercase, without the final dot), type and end offset of a query's question.
fn dns_question(msg: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(msg.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(at)?, *msg.get(at + 1)?]);
    Some((labels.join("."), qtype, at + 4))
}

/// A listener that only counts who connects to it.
async fn connection_counter(ip: [u8; 4]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dns_answers_are_checked_and_a_slow_dns_server_gets_a_504() {
    use std::net::IpAddr;
    let site = Upstream::start(None).await;
    // Something listening where the hostile answers point, to show nothing reaches it.
    let (guard, guard_hits) = connection_counter([127, 0, 0, 2]).await;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let now = Duration::ZERO;
    let dns = DnsServer::start(vec![
        ("site.example", vec![ip("127.0.0.1")], now),
        ("evil.example", vec![ip("127.0.0.2")], now),
        ("metadata.example", vec![ip("169.254.169.254")], now),
        ("mixed.example", vec![ip("1.1.1.1"), ip("127.0.0.2")], now),
        ("v6-local.example", vec![ip("1.1.1.1"), ip("::1")], now),
        (
            "slow.example",
            vec![ip("127.0.0.1")],
            Duration::from_secs(12),
        ),
    ])
    .await;
    let mut b = GatewayBuilder::new();
    b.config.upstream.nameservers = vec![dns.addr];
    // Long enough for a loopback DNS server to answer on a busy machine, far shorter than
    // the slow server's delay.
    b.config.upstream.dns_timeout_ms = 2000;
    // The site's own address is allowed, as an organisation allows a proxy it relies on.
    b.config.upstream.allow_private = vec!["127.0.0.1/32".parse().unwrap()];
    let gw = b.start().await;
    let get = |host: &str, port: u16| {
        format!("GET http://{host}:{port}/page HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n")
    };

    // A name the DNS server answers is reached, and its answer is cached for its TTL.
    let port = site.addr.port();
    for _ in 0..2 {
        let answer = raw_exchange(gw.proxy, get("site.example", port).as_bytes()).await;
        assert_eq!(status(&answer), 200, "{answer}");
    }
    assert_eq!(site.count(), 2);
    assert!(dns.asked("site.example") >= 1);
    let asked = dns.asked("site.example");
    let answer = raw_exchange(gw.proxy, get("site.example", port).as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert_eq!(
        dns.asked("site.example"),
        asked,
        "the cached answer is used"
    );

    // Public names whose answers point inside are refused, for requests and tunnels alike.
    let refused_before = gw.metric("permeable_tunnels_total{mode=\"refused\"}").await;
    for name in [
        "evil.example",
        "metadata.example",
        "mixed.example",
        "v6-local.example",
    ] {
        let answer = raw_exchange(gw.proxy, get(name, guard.port()).as_bytes()).await;
        assert_eq!(status(&answer), 403, "{name}: {answer}");
        assert!(answer.contains("private"), "{name}: {answer}");
        let connect = format!(
            "CONNECT {name}:{p} HTTP/1.1\r\nHost: {name}:{p}\r\n\r\n",
            p = guard.port()
        );
        let answer = raw_exchange(gw.proxy, connect.as_bytes()).await;
        assert_eq!(status(&answer), 403, "{name}: {answer}");
    }
    assert_eq!(
        guard_hits.load(Ordering::SeqCst),
        0,
        "nothing reached inside"
    );
    assert!(gw.metric("permeable_tunnels_total{mode=\"refused\"}").await >= refused_before + 4.0);

    // A name the server does not know: 502 with the reason.
    let dns_errors = "permeable_upstream_errors_total{site=\"other\",kind=\"dns\"}";
    let before = gw.metric(dns_errors).await;
    let answer = raw_exchange(gw.proxy, get("unknown.example", port).as_bytes()).await;
    assert_eq!(status(&answer), 502, "{answer}");
    assert!(answer.contains("resolve"), "{answer}");

    // A server that takes 12 s: both a request and a tunnel get a 504 after the 2 s DNS
    // timeout, and the gateway keeps answering others meanwhile.
    let proxy = gw.proxy;
    let slow_get = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let answer = raw_exchange(proxy, get("slow.example", port).as_bytes()).await;
        (answer, started.elapsed())
    });
    let slow_connect = tokio::spawn(async move {
        raw_exchange(
            proxy,
            b"CONNECT slow.example:443 HTTP/1.1\r\nHost: slow.example:443\r\n\r\n",
        )
        .await
    });
    while dns.asked("slow.example") == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let answer = raw_exchange(gw.proxy, get("site.example", port).as_bytes()).await;
    assert_eq!(status(&answer), 200, "{answer}");
    assert!(
        !slow_get.is_finished(),
        "the other request was answered first"
    );
    let (answer, took) = slow_get.await.unwrap();
    assert_eq!(status(&answer), 504, "{answer}");
    assert!(answer.contains("timed out"), "{answer}");
    assert!(
        took < Duration::from_secs(10),
        "answered at the DNS timeout, not the server's answer: {took:?}"
    );
    let answer = slow_connect.await.unwrap();
    assert_eq!(status(&answer), 504, "{answer}");
    assert!(gw.metric(dns_errors).await >= before + 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_audit_disk_does_not_stop_decisions() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.audit.output = "/dev/full".into();
    b.config.audit.all = true;
    let gw = b.start().await;
    for _ in 0..3 {
        let resp = post(
            &gw,
            TWEET,
            "application/json",
            &[],
            tweet(SECRET).into_bytes(),
        )
        .await;
        assert_eq!(resp.status(), 403, "blocks still happen");
        let resp = post(
            &gw,
            TWEET,
            "application/json",
            &[],
            tweet("fine").into_bytes(),
        )
        .await;
        assert_eq!(resp.status(), 200, "allowed posts still pass");
    }
    assert_eq!(x.count(), 3);
    assert!(
        gw.metric("permeable_audit_write_errors_total").await >= 1.0,
        "failed audit writes are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_the_rules_directory_keeps_the_running_rules() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let rules = fixture_rules_copy();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    let failures = gw
        .metric("permeable_rules_reloads_total{result=\"failure\"}")
        .await;
    std::fs::remove_dir_all(rules.path()).unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://{}/-/reload", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("rejected"), "{body}");
    // The running rules still block secrets and pass the rest.
    let resp = post(
        &gw,
        TWEET,
        "application/json",
        &[],
        tweet(SECRET).into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 403);
    let resp = post(
        &gw,
        TWEET,
        "application/json",
        &[],
        tweet("fine").into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let ready = reqwest::get(format!("http://{}/readyz", gw.admin))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a rejected reload leaves the gateway ready"
    );
    assert!(
        gw.metric("permeable_rules_reloads_total{result=\"failure\"}")
            .await
            > failures
    );
}

/// Runs the binary with a configuration; returns its exit code and stderr. Bounded: a
/// gateway that starts when it should not is killed and reported as such.
fn run_binary(config: &str, dir: &Path) -> (Option<i32>, String) {
    let path = dir.join("permeable.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_permeable"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, "still running after 10 s".into())
}

fn binary_config(dir: &Path, ca: Option<(&Path, &Path)>) -> String {
    let mut c = format!(
        "proxy:\n  listen: [\"127.0.0.1:{}\"]\nadmin:\n  listen: \"127.0.0.1:{}\"\nrules: {}\nstate_dir: {}\naudit:\n  output: \"off\"\n",
        free_port(),
        free_port(),
        fixture_rules().display(),
        dir.join("state").display()
    );
    if let Some((cert, key)) = ca {
        c.push_str(&format!(
            "ca:\n  cert: {}\n  key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    c
}

#[test]
fn ca_key_missing_or_readable_by_others_stops_start_up() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_permeable"))
        .args(["ca", "init", "--out"])
        .arg(&ca_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (cert, key) = (ca_dir.join("ca.crt"), ca_dir.join("ca.key"));

    // Configured key missing.
    let missing = ca_dir.join("nope.key");
    let (code, err) = run_binary(
        &binary_config(dir.path(), Some((&cert, &missing))),
        dir.path(),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nope.key"), "{err}");

    // Configured key readable by others.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = run_binary(&binary_config(dir.path(), Some((&cert, &key))), dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("readable by others"), "{err}");

    // The generated CA in the state directory lost its key: not silently replaced.
    let state_ca = dir.path().join("state/ca");
    std::fs::create_dir_all(&state_ca).unwrap();
    std::fs::copy(&cert, state_ca.join("ca.crt")).unwrap();
    let (code, err) = run_binary(&binary_config(dir.path(), None), dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("ca.key"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Access control: no open door into the organisation, identity, admin, minted leaves.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_destinations_are_refused_after_resolution() {
    let local = RawUpstream::start(None, Fault::None).await;
    let port = local.addr.port();
    let gw = GatewayBuilder::new().start().await;
    let refused_before = gw.metric("permeable_tunnels_total{mode=\"refused\"}").await;
    for authority in [
        format!("localhost:{port}"),
        format!("LOCALHOST.:{port}"),
        format!("[::1]:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("127.1:{port}"),
        format!("2130706433:{port}"),
        format!("0x7f000001:{port}"),
        "169.254.169.254".to_string(),
        "[fd00::1]:80".to_string(),
    ] {
        let req = format!(
            "GET http://{authority}/latest/meta-data/ HTTP/1.1\r\nHost: {authority}\r\n\r\n"
        );
        let answer = raw_exchange(gw.proxy, req.as_bytes()).await;
        let code = status(&answer);
        assert!(
            [400, 403, 502].contains(&code),
            "{authority}: {}",
            answer.lines().next().unwrap_or("")
        );
    }
    for target in ["localhost:443", "[::1]:443", "[::ffff:169.254.169.254]:443"] {
        let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        let answer = raw_exchange(gw.proxy, req.as_bytes()).await;
        assert_eq!(status(&answer), 403, "{target}: {answer}");
        assert!(answer.contains("private"), "{target}: {answer}");
    }
    assert!(local.bytes().is_empty(), "nothing reached the local server");
    assert!(gw.metric("permeable_tunnels_total{mode=\"refused\"}").await >= refused_before + 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intercept_all_still_refuses_local_destinations() {
    let mut b = GatewayBuilder::new();
    b.config.proxy.intercept = permeable::config::InterceptMode::All;
    let gw = b.start().await;
    for target in ["localhost:443", "[::1]:443", "169.254.169.254:443"] {
        let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        let answer = raw_exchange(gw.proxy, req.as_bytes()).await;
        assert_eq!(status(&answer), 403, "{target}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_token_guards_reload_but_not_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let mut b = GatewayBuilder::new();
    b.config.admin.token_file = Some(token_file);
    let gw = b.start().await;
    let admin = reqwest::Client::new();
    let reload = format!("http://{}/-/reload", gw.admin);
    let r = admin.post(&reload).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for wrong in [
        "Bearer nope",
        "Bearer s3cret-toke",
        "s3cret-token",
        "Basic s3cret-token",
    ] {
        let r = admin
            .post(&reload)
            .header("authorization", wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
    let r = admin
        .post(&reload)
        .header("authorization", "Bearer s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = admin
        .get(format!("http://{}/metrics", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200, "metrics stay open for scrapers");
}

#[test]
fn admin_off_loopback_without_a_token_refuses_to_start() {
    let mut config = permeable::config::Config::default();
    let state = tempfile::tempdir().unwrap();
    config.state_dir = Some(state.path().to_path_buf());
    config.rules = Some(fixture_rules());
    config.audit.output = "off".into();
    config.proxy.listen = vec![SocketAddr::from(([127, 0, 0, 1], free_port()))];
    config.admin.listen = SocketAddr::from(([0, 0, 0, 0], free_port()));
    match permeable::server::prepare(config, None, false) {
        Ok(_) => panic!("started with an unprotected admin port"),
        Err(e) => assert!(e.to_string().contains("token_file"), "{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_headers_from_untrusted_clients_are_stripped() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let plain = Upstream::start(None).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .resolve("x.com:80", plain.addr)
        .upstream_ca(&ca.pem)
        .start()
        .await;
    let spoof = [
        ("x-permeable-user", "ceo@example.com"),
        ("X-Permeable-Group", "reliability-spoofed"),
    ];
    // Intercepted (HTTP/2 to the client), and absolute-form.
    for (url, up) in [("https://x.com/home", &x), ("http://x.com/home", &plain)] {
        let mut req = gw.intercepting_client().get(url);
        for (k, v) in spoof {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{url}");
        let got = up.last().unwrap();
        assert!(
            got.header("x-permeable-user").is_none(),
            "{url}: {:?}",
            got.headers
        );
        assert!(
            got.header("x-permeable-group").is_none(),
            "{url}: {:?}",
            got.headers
        );
    }
    let spoofed = gw
        .metric("permeable_requests_total{group=\"reliability-spoofed\"}")
        .await;
    assert_eq!(
        spoofed, 0.0,
        "an untrusted group header never becomes a label"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaf_a_client_receives_is_not_a_ca() {
    let gw = GatewayBuilder::new().start().await;
    let tls = tunnel(&gw, "x.com").await;
    let chain = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(chain.len(), 2, "leaf and the gateway CA");
    let leaf = rcgen::CertificateParams::from_ca_cert_der(&chain[0]).unwrap();
    assert!(
        !matches!(leaf.is_ca, rcgen::IsCa::Ca(_)),
        "a minted leaf must never be a CA"
    );
    assert_eq!(leaf.subject_alt_names.len(), 1);
    assert!(matches!(
        &leaf.subject_alt_names[0],
        rcgen::SanType::DnsName(n) if n.as_str() == "x.com"
    ));
    let ca_der = rustls_pemfile::certs(&mut gw.ca_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(chain[1], ca_der);
}

// ---------------------------------------------------------------------------------------
// Load: reloads under traffic, graceful shutdown, slow clients, many connections.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_reloads_under_load_fail_no_request() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let rules = fixture_rules_copy();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    let gw = b.start().await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for worker in 0..3 {
        let client = gw.intercepting_client();
        let done = done.clone();
        loops.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                i += 1;
                // Views, allowed posts and blocked posts: each must get its own answer.
                let (want, resp) = match i % 3 {
                    0 => (
                        200,
                        client
                            .get(format!("https://x.com/feed/{worker}/{i}"))
                            .send()
                            .await,
                    ),
                    1 => (
                        200,
                        client
                            .post(TWEET)
                            .header("content-type", "application/json")
                            .body(tweet("hello"))
                            .send()
                            .await,
                    ),
                    _ => (
                        403,
                        client
                            .post(TWEET)
                            .header("content-type", "application/json")
                            .body(tweet(SECRET))
                            .send()
                            .await,
                    ),
                };
                match resp {
                    Ok(r) if r.status() == want => ok += 1,
                    Ok(r) => failed.push(format!("{i}: {}", r.status())),
                    Err(e) => failed.push(format!("{i}: {e}")),
                }
            }
            (ok, failed)
        }));
    }
    let original = std::fs::read_to_string(rules.path().join("policy.yaml")).unwrap();
    let mut versions = std::collections::BTreeSet::new();
    for n in 0..50 {
        // Each reload compiles a different rule set (a new version).
        let text = format!("{original}\n# reload {n}\n");
        versions.insert(replace_policy_and_reload(&gw, rules.path(), &text).await);
    }
    done.store(true, Ordering::SeqCst);
    let mut total = 0;
    for l in loops {
        let (ok, failed) = l.await.unwrap();
        assert!(
            failed.is_empty(),
            "failed requests during reloads: {failed:?}"
        );
        total += ok;
    }
    assert!(total >= 30, "only {total} requests ran during the reloads");
    assert_eq!(versions.len(), 50, "every reload swapped in a new version");
}

/// Every decision comes from exactly one rule-set version, whatever reloads happen around
/// it: version n's only rule is `marker-v{n}`, redacting on even n and blocking on odd n
/// (with "v{n}" in its message). For each post the rule named in the answer, the action
/// taken, the message, and the rule and version the audit trail records under the
/// answer's request id must all be version n's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_request_is_decided_by_exactly_one_rules_version() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let rules = fixture_rules_copy();
    std::fs::write(
        rules.path().join("detectors/marker.yaml"),
        "detectors:\n  - id: marker\n    category: custom.marker\n    regex: 'MARK-[0-9]+'\n",
    )
    .unwrap();
    let policy_for = |n: usize| {
        let (action, message) = if n.is_multiple_of(2) {
            ("redact", String::new())
        } else {
            ("block", format!("\n    message: Blocked by v{n}."))
        };
        format!(
            "rules:\n  - id: marker-v{n}\n    when: {{ categories: [custom.marker] }}\n    action: {action}{message}\n"
        )
    };
    let policy = rules.path().join("policy.yaml");
    std::fs::write(&policy, policy_for(0)).unwrap();
    let audit = tempfile::NamedTempFile::new().unwrap();
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.rules = Some(rules.path().to_path_buf());
    b.config.audit.output = audit.path().display().to_string();
    let gw = b.start().await;
    let mut version_of = std::collections::BTreeMap::new();
    let ready: serde_json::Value = gw.readyz().await;
    version_of.insert(0, ready["rules"]["version"].as_str().unwrap().to_string());

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for worker in 0..3 {
        let client = gw.intercepting_client();
        let done = done.clone();
        loops.push(tokio::spawn(async move {
            // (rule named in the answer, status, request id, the answer's body)
            let mut seen = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                i += 1;
                let r = client
                    .post(TWEET)
                    .header("content-type", "application/json")
                    .body(tweet(&format!("post {worker}-{i} MARK-{i}")))
                    .send()
                    .await
                    .expect("no request fails during reloads");
                let header = |n: &str| {
                    r.headers()
                        .get(n)
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default()
                };
                let (rule, id, status) = (
                    header("x-permeable-rule"),
                    header("x-permeable-request-id"),
                    r.status().as_u16(),
                );
                seen.push((rule, status, id, r.text().await.unwrap()));
            }
            seen
        }));
    }
    for n in 1..=50 {
        let version = replace_policy_and_reload(&gw, rules.path(), &policy_for(n)).await;
        version_of.insert(n, version);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut seen = Vec::new();
    for l in loops {
        seen.extend(l.await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let audit: std::collections::HashMap<String, serde_json::Value> =
        std::fs::read_to_string(audit.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["request_id"].is_string())
            .map(|e| (e["request_id"].as_str().unwrap().to_string(), e))
            .collect();
    let mut versions_seen = std::collections::BTreeSet::new();
    for (rule, status, id, body) in &seen {
        let n: usize = rule
            .strip_prefix("marker-v")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("every post is decided by a marker rule: {rule:?}"));
        versions_seen.insert(n);
        if n.is_multiple_of(2) {
            assert_eq!(*status, 200, "{rule}: version {n} redacts");
        } else {
            assert_eq!(*status, 403, "{rule}: version {n} blocks");
            assert!(
                body.contains(&format!("Blocked by v{n}.")),
                "{rule}: {body}"
            );
        }
        let event = audit
            .get(id)
            .unwrap_or_else(|| panic!("request {id} ({rule}) is in the audit trail"));
        assert_eq!(event["rule"], rule.as_str(), "{event}");
        assert_eq!(
            event["rules_version"].as_str(),
            Some(version_of[&n].as_str()),
            "request {id} was answered by version {n}'s rule, audited as {event}"
        );
    }
    // What reached the site was redacted by an even version, never blocked content.
    for received in x.received.lock().iter() {
        let body = String::from_utf8_lossy(&received.body);
        assert!(!body.contains("MARK-"), "a marker reached the site: {body}");
    }
    assert!(seen.len() >= 50, "only {} posts ran", seen.len());
    assert!(
        versions_seen.len() >= 10,
        "posts were decided by only {} versions",
        versions_seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_lets_a_slow_upload_finish() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.grace_period_seconds = 5;
    let gw = b.start().await;
    let client = gw.intercepting_client();
    // 40 chunks of 16 KiB, one every 50 ms: about 2 s of upload.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Mutex::new(Some(started_tx));
    let stream = futures_util::stream::iter(0..40).then(move |i| {
        if i == 1 {
            if let Some(tx) = started.lock().take() {
                let _ = tx.send(());
            }
        }
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'u'; 16 * 1024]))
        }
    });
    use futures_util::StreamExt;
    let upload = tokio::spawn(async move {
        client
            .post("https://x.com/upload")
            .header("content-length", (40 * 16 * 1024).to_string())
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
    });
    started_rx.await.unwrap();
    gw.shutdown_graceful();
    let resp = upload
        .await
        .unwrap()
        .expect("the in-flight upload completes");
    assert_eq!(resp.status(), 200);
    let got = x.last().unwrap();
    assert_eq!(got.body_len, 40 * 16 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_are_timed_out_without_starving_others() {
    let plain = Upstream::start(None).await;
    let mut b = GatewayBuilder::new().resolve("x.com:80", plain.addr);
    b.config.proxy.header_timeout_seconds = 2;
    let gw = b.start().await;
    let mut slow = Vec::new();
    for i in 0..30 {
        let proxy = gw.proxy;
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            // Half of them get past the first bytes; the rest send almost nothing.
            let start: &[u8] = if i % 2 == 0 {
                b"GET http://x.com/ HTTP/1.1\r\nHost: x.com\r\n"
            } else {
                b"GE"
            };
            let _ = s.write_all(start).await;
            // One byte every 200 ms for up to 10 s: never a complete head.
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if s.write_all(b"X").await.is_err() {
                    return true;
                }
                let mut probe = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    Ok(Ok(_)) => {
                        // An answer (408/400) is as good as a close; the close follows.
                        return true;
                    }
                    Err(_) => {}
                }
            }
            false
        }));
    }
    // Meanwhile, others are served.
    let client = gw.client(&[]);
    for i in 0..20 {
        let r = client
            .get(format!("http://x.com/ok/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut closed = 0;
    for s in slow {
        closed += usize::from(s.await.unwrap());
    }
    assert_eq!(closed, 30, "every slow client was cut off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_inside_a_tunnel_are_timed_out() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.proxy.header_timeout_seconds = 2;
    let gw = b.start().await;
    let mut tls = tunnel(&gw, "x.com").await;
    let cut = trickle(
        &mut tls,
        b"GET /home HTTP/1.1\r\nHost: x.com\r\n",
        b"X",
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    assert!(cut, "a slow head inside a tunnel was not cut off");
    assert_eq!(x.count(), 0);

    // A kept-alive tunnel: the next head gets its own deadline, from the previous answer.
    let mut tls = tunnel(&gw, "x.com").await;
    tls.write_all(b"GET /first HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    let head = read_one_response(&mut tls).await;
    assert_eq!(status(&head), 200, "{head}");
    let cut = trickle(
        &mut tls,
        b"GET /second HTTP/1.1\r\nHost: x.com\r\n",
        b"X",
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    assert!(cut, "a slow second head inside a tunnel was not cut off");
    assert_eq!(x.count(), 1, "only the first request reached the site");

    // A client that opens an intercepted tunnel and never finishes its TLS handshake is cut
    // off at the same deadline.
    let mut tcp = TcpStream::connect(gw.proxy).await.unwrap();
    tcp.write_all(b"CONNECT x.com:443 HTTP/1.1\r\nHost: x.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut established = [0u8; 39];
    tcp.read_exact(&mut established).await.unwrap();
    assert!(established.starts_with(b"HTTP/1.1 200"));
    tcp.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
    let (_, closed) = read_answer(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "an unfinished TLS handshake held the tunnel open");
}

/// Sends `head`, then `chunk` every `every` until the gateway cuts the connection
/// (`true`) or `limit` passes (`false`). An answer counts as a cut: the close follows.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    head: &[u8],
    chunk: &[u8],
    every: Duration,
    limit: Duration,
) -> bool {
    if s.write_all(head).await.is_err() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(every).await;
        if s.write_all(chunk).await.is_err() || s.flush().await.is_err() {
            return true;
        }
        let mut probe = [0u8; 512];
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await {
            let _ = r;
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_request_bodies_are_cut_without_starving_others() {
    let plain = Upstream::start(None).await;
    let mut b = GatewayBuilder::new().resolve("x.com:80", plain.addr);
    b.config.proxy.body_timeout_seconds = 1;
    b.config.proxy.body_min_bytes = 1024;
    let gw = b.start().await;
    let cut_series = "permeable_client_timeouts_total{phase=\"body\"}";
    let cuts_before = gw.metric(cut_series).await;
    let mut slow = Vec::new();
    // 50 bytes a second: a post the gateway inspects (read whole before deciding) and an
    // upload it streams to the site as it comes.
    for (path, len) in [
        ("/i/api/graphql/AbC123/CreateTweet", 2000),
        ("/upload/slowly", 100_000),
    ] {
        let proxy = gw.proxy;
        slow.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            let head = format!(
                "POST http://x.com{path} HTTP/1.1\r\nHost: x.com\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n{{\"a\":\""
            );
            trickle(
                &mut s,
                head.as_bytes(),
                b"aaaaaaaaaa",
                Duration::from_millis(200),
                Duration::from_secs(10),
            )
            .await
        }));
    }
    // Meanwhile: an upload at 4 KiB/s (slow, but above the floor) and a site that takes
    // 5 s to answer a complete body are both served.
    let client = gw.client(&[]);
    let steady = futures_util::stream::iter(0..20).then(|_| async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        Ok::<_, std::io::Error>(Bytes::from(vec![b'b'; 1024]))
    });
    let steady = client
        .post("http://x.com/upload/steady")
        .header("content-length", "20480")
        .body(reqwest::Body::wrap_stream(steady))
        .send();
    let waits = client
        .post("http://x.com/slow")
        .body(vec![b'c'; 10_000])
        .send();
    let (steady, waits) = tokio::join!(steady, waits);
    assert_eq!(steady.unwrap().status(), 200);
    assert_eq!(
        waits.unwrap().status(),
        200,
        "waiting on the site is not the client's fault"
    );
    for s in slow {
        assert!(s.await.unwrap(), "a slow body was not cut off");
    }
    assert!(gw.metric(cut_series).await >= cuts_before + 2.0);
    let received = plain.received.lock().clone();
    assert!(received
        .iter()
        .any(|r| r.path == "/upload/steady" && r.body_len == 20480));
    assert!(
        !received.iter().any(|r| r.path.contains("CreateTweet")),
        "nothing of the inspected post reached the site"
    );
    assert!(
        !received
            .iter()
            .any(|r| r.path == "/upload/slowly" && r.body_len == 100_000),
        "the streamed upload never completed at the site"
    );
}

/// HTTP/2 inside an intercepted tunnel: `CONNECT`, TLS with ALPN h2, then an h2 client.
async fn h2_tunnel(
    gw: &Gateway,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tls = tunnel_offering(gw, "x.com", &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    (send, tokio::spawn(conn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http2_clients_cannot_hold_the_gateway_open() {
    let ca = TestCa::new("upstream test CA");
    let x = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let mut b = GatewayBuilder::new()
        .resolve("x.com:443", x.addr)
        .upstream_ca(&ca.pem);
    b.config.proxy.header_timeout_seconds = 2;
    b.config.proxy.body_timeout_seconds = 1;
    b.config.proxy.body_min_bytes = 1024;
    let gw = b.start().await;
    let within = |d: u64| Duration::from_secs(d);

    // A connection that never sends a request is closed after header_timeout_seconds.
    let (_silent, silent) = h2_tunnel(&gw).await;
    // One that sent a request and then sits idle too.
    let (mut idle_send, idle) = h2_tunnel(&gw).await;
    let req = http::Request::get("https://x.com/home").body(()).unwrap();
    let (resp, _) = idle_send.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    // One that streams a post at 50 bytes a second is cut by the body check.
    let (mut slow_send, slow) = h2_tunnel(&gw).await;
    let req = http::Request::post(TWEET)
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (resp, mut body) = slow_send.send_request(req, false).unwrap();
    let trickler = tokio::spawn(async move {
        for _ in 0..50 {
            if body
                .send_data(Bytes::from_static(b"aaaaaaaaaa"), false)
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(
        tokio::time::timeout(within(8), resp)
            .await
            .unwrap()
            .is_err(),
        "the slow post got an answer"
    );
    trickler.abort();
    for (what, conn) in [("silent", silent), ("idle", idle), ("slow body", slow)] {
        tokio::time::timeout(within(8), conn)
            .await
            .unwrap_or_else(|_| panic!("the {what} HTTP/2 connection is still open"))
            .unwrap()
            .ok();
    }
    // A body held for inspection never left: at most the head reached the site.
    no_body_delivered(&x, "slow HTTP/2 post");
    // Others are still served over HTTP/2.
    let (mut send, _conn) = h2_tunnel(&gw).await;
    let req = http::Request::get("https://x.com/still-here")
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_idle_keep_alive_connections_and_steady_traffic() {
    use futures_util::StreamExt;
    let plain = Upstream::start(None).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:80", plain.addr)
        .start()
        .await;
    const IDLE: usize = 2000;
    let proxy = gw.proxy;
    // Each connection makes one request, keeps the connection and goes idle.
    let idle: Vec<TcpStream> = futures_util::stream::iter(0..IDLE)
        .map(|i| async move {
            let mut s = TcpStream::connect(proxy).await.unwrap();
            let req = format!("GET http://x.com/idle/{i} HTTP/1.1\r\nHost: x.com\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            read_one_response(&mut s).await;
            s
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(idle.len(), IDLE);
    assert!(gw.metric("permeable_connections_active").await >= IDLE as f64);
    // Steady traffic from others while they idle.
    let client = gw.client(&[]);
    let results: Vec<u16> = futures_util::stream::iter(0..300)
        .map(|i| {
            let client = client.clone();
            async move {
                client
                    .get(format!("http://x.com/steady/{i}"))
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(results.iter().all(|s| *s == 200), "{results:?}");
    // The idle connections still work.
    let mut idle = idle;
    for (i, s) in idle.iter_mut().enumerate().step_by(100) {
        let req = format!("GET http://x.com/again/{i} HTTP/1.1\r\nHost: x.com\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let head = read_one_response(s).await;
        assert_eq!(status(&head), 200, "{head}");
    }
}

/// Read one response with a Content-Length body; returns its head.
async fn read_one_response<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut heads = read_responses(s, 1).await;
    heads.remove(0)
}

/// Read `n` responses with Content-Length bodies (sent back to back); returns their heads.
async fn read_responses<S: AsyncRead + Unpin>(s: &mut S, n: usize) -> Vec<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut heads = Vec::new();
    while heads.len() < n {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                buf.drain(..end + 4 + len);
                heads.push(head);
                continue;
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(got > 0, "closed before {n} answers");
        buf.extend_from_slice(&chunk[..got]);
    }
    heads
}
