//! Faithful answers: through interception, the answer a client gets is the answer the site
//! sent — its status, every one of its fields, its payload byte for byte and its trailers —
//! for each pair of client and site protocol (client first: h1→h1, h2→h2, h2→h1) and each
//! way a site ends a body (chunked with trailers, Content-Length, closing the connection).
//!
//! What may differ is exactly what docs/security.md ("Answers arrive as the site sent
//! them") lists, and [`expected`] encodes that list: framing the client's protocol forces
//! (HTTP/2 has no Transfer-Encoding or Connection fields), and what Pingora 0.9.1 does
//! whatever the gateway asks (its own `Date`; `Connection` on HTTP/1; trailers dropped on
//! any HTTP/1 side). A change in either direction fails here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// How a site ends the body of its answer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    /// HTTP/1 chunked, with trailers; HTTP/2 data frames, then trailers.
    Chunked,
    /// Content-Length.
    Length,
    /// HTTP/1: by closing the connection; HTTP/2: by ending the stream, no length given.
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Protocol {
    H1,
    H2,
}

/// The answer a site sends for `/chunked`, `/length` and `/close`, in either protocol.
struct SiteAnswer {
    framing: Framing,
    /// Fields as an HTTP/1 site writes them (names in their case, in order).
    fields: Vec<(&'static str, String)>,
    /// The payload, in the pieces the site writes it in.
    chunks: Vec<Vec<u8>>,
    trailers: Vec<(&'static str, &'static str)>,
}

const SITE_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// Every byte value, and bytes that look like chunked framing and a next answer.
fn payload() -> Vec<u8> {
    let mut p: Vec<u8> = (0..=255u8).cycle().take(40_000).collect();
    p.extend_from_slice(b"\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    p.extend((0..=255u8).rev().cycle().take(30_123));
    p
}

fn site_answer(path: &str) -> SiteAnswer {
    let framing = match path {
        "/chunked" => Framing::Chunked,
        "/length" => Framing::Length,
        "/close" => Framing::Close,
        other => panic!("no answer for {other}"),
    };
    let body = payload();
    let mut chunks = Vec::new();
    let mut rest = &body[..];
    for size in [1, 7, 4096, 10_000, 33_333] {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(piece.to_vec());
        rest = tail;
    }
    chunks.push(rest.to_vec());
    let mut fields = vec![
        ("Content-Type", "application/grpc+proto".to_string()),
        ("Date", SITE_DATE.to_string()),
        ("Set-Cookie", "a=1; Path=/; HttpOnly".to_string()),
        ("Set-Cookie", "b=2; Path=/".to_string()),
        ("Cache-Control", "private, max-age=0".to_string()),
        (
            "X-Site-Field",
            "Mixed Case, \"quoted\", and, commas".to_string(),
        ),
        ("ETag", "\"v1\"".to_string()),
    ];
    let mut trailers = Vec::new();
    match framing {
        Framing::Chunked => {
            fields.push(("Trailer", "grpc-status, grpc-message".to_string()));
            fields.push(("Transfer-Encoding", "chunked".to_string()));
            trailers = vec![("grpc-status", "0"), ("grpc-message", "all good")];
        }
        Framing::Length => fields.push(("Content-Length", body.len().to_string())),
        Framing::Close => {}
    }
    SiteAnswer {
        framing,
        fields,
        chunks,
        trailers,
    }
}

impl SiteAnswer {
    fn body(&self) -> Vec<u8> {
        self.chunks.concat()
    }

    /// The fields as the site sends them in `protocol` (HTTP/2 has no Transfer-Encoding).
    fn fields_in(&self, protocol: Protocol) -> Vec<(String, String)> {
        self.fields
            .iter()
            .filter(|(k, _)| {
                protocol == Protocol::H1 || !k.eq_ignore_ascii_case("transfer-encoding")
            })
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The bytes an HTTP/1.1 site writes.
    fn h1_bytes(&self) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
        for (k, v) in self.fields_in(Protocol::H1) {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if self.framing != Framing::Chunked {
            out.extend_from_slice(&self.body());
            return out;
        }
        for (i, chunk) in self.chunks.iter().enumerate() {
            let ext = if i == 1 { ";ext=1" } else { "" };
            out.extend_from_slice(format!("{:x}{ext}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n");
        for (k, v) in &self.trailers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// What a client got (or what it should get), comparable whatever the protocol: field
/// names lowercased, the values of each name in the order sent.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    fields: BTreeMap<String, Vec<String>>,
    trailers: BTreeMap<String, Vec<String>>,
    body: Vec<u8>,
}

fn by_name(fields: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in fields {
        map.entry(k.to_ascii_lowercase()).or_default().push(v);
    }
    map
}

fn header_map(map: &http::HeaderMap) -> BTreeMap<String, Vec<String>> {
    by_name(map.iter().map(|(k, v)| {
        (
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    }))
}

/// The site's answer as a `client` speaking to a site speaking `site` gets it, by the list
/// in docs/security.md. (The `Date` field is checked on its own: the gateway's clock.)
fn expected(answer: &SiteAnswer, client: Protocol, site: Protocol) -> Seen {
    let mut fields = by_name(answer.fields_in(site));
    fields.remove("date");
    match client {
        // Pingora's HTTP/1 session says whether it keeps the connection; an answer the
        // site ended by closing ends the client's connection too.
        Protocol::H1 => {
            let connection = if answer.framing == Framing::Close && site == Protocol::H1 {
                "close"
            } else {
                "keep-alive"
            };
            fields.insert("connection".into(), vec![connection.into()]);
        }
        // Connection-specific fields do not exist in HTTP/2.
        Protocol::H2 => {
            for name in ["transfer-encoding", "connection", "keep-alive", "upgrade"] {
                fields.remove(name);
            }
        }
    }
    // Pingora 0.9.1 neither reads HTTP/1 trailers from a site nor writes them to a client.
    let trailers = if client == Protocol::H2 && site == Protocol::H2 {
        by_name(
            answer
                .trailers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    } else {
        BTreeMap::new()
    };
    Seen {
        status: 200,
        fields,
        trailers,
        body: answer.body(),
    }
}

/// A site answering `/chunked`, `/length` and `/close` over TLS in the protocols it offers
/// by ALPN, recording the protocol each request came in.
struct Site {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<(String, Protocol)>>>,
}

impl Site {
    async fn start(ca: &TestCa, name: &str, alpn: &[&[u8]]) -> Site {
        let mut config = (*ca.server_config(&[name])).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<(String, Protocol)>>> = Arc::default();
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_h2(tls, seen).await;
                    } else {
                        serve_h1(tls, seen).await;
                    }
                });
            }
        });
        Site { addr, requests }
    }

    fn protocols(&self) -> Vec<(String, Protocol)> {
        self.requests.lock().clone()
    }
}

type SiteTls = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

async fn serve_h1(tls: SiteTls, seen: Arc<Mutex<Vec<(String, Protocol)>>>) {
    let mut conn = Reader::new(tls);
    loop {
        let Some(line) = conn.line().await else {
            return;
        };
        while !conn.line().await.unwrap_or_default().is_empty() {}
        let line = String::from_utf8_lossy(&line).into_owned();
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        seen.lock().push((path.clone(), Protocol::H1));
        let answer = site_answer(&path);
        if conn.io.write_all(&answer.h1_bytes()).await.is_err() {
            return;
        }
        if answer.framing == Framing::Close {
            let _ = conn.io.shutdown().await;
            return;
        }
    }
}

async fn serve_h2(tls: SiteTls, seen: Arc<Mutex<Vec<(String, Protocol)>>>) {
    let Ok(mut conn) = h2::server::handshake(tls).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = conn.accept().await {
        let path = request.uri().path().to_string();
        seen.lock().push((path.clone(), Protocol::H2));
        let answer = site_answer(&path);
        let mut head = http::Response::builder().status(200);
        for (k, v) in answer.fields_in(Protocol::H2) {
            head = head.header(k.to_ascii_lowercase(), v);
        }
        let Ok(mut send) = respond.send_response(head.body(()).unwrap(), false) else {
            continue;
        };
        // (Sent as the connection is driven by `accept`.)
        for chunk in &answer.chunks {
            let _ = send.send_data(Bytes::from(chunk.clone()), false);
        }
        if answer.trailers.is_empty() {
            let _ = send.send_data(Bytes::new(), true);
        } else {
            let mut trailers = http::HeaderMap::new();
            for (k, v) in &answer.trailers {
                trailers.append(*k, v.parse().unwrap());
            }
            let _ = send.send_trailers(trailers);
        }
    }
}

/// Compare field by field and the body byte by byte, saying what differs.
fn assert_same(got: &Seen, want: &Seen, what: &str) {
    assert_eq!(got.status, want.status, "{what}: status");
    let names: std::collections::BTreeSet<&String> =
        got.fields.keys().chain(want.fields.keys()).collect();
    for name in names {
        assert_eq!(
            got.fields.get(name),
            want.fields.get(name),
            "{what}: field {name} (got {:?})",
            got.fields
        );
    }
    assert_eq!(got.trailers, want.trailers, "{what}: trailers");
    if let Some(i) =
        (0..got.body.len().max(want.body.len())).find(|&i| got.body.get(i) != want.body.get(i))
    {
        panic!(
            "{what}: the body differs from byte {i} on ({} bytes got, {} sent)",
            got.body.len(),
            want.body.len()
        );
    }
}

/// The `Date` a client got: one, the gateway's own (an IMF-fixdate, not the site's).
fn take_date(fields: &mut BTreeMap<String, Vec<String>>, what: &str) {
    let dates = fields.remove("date").unwrap_or_default();
    assert_eq!(dates.len(), 1, "{what}: one Date: {dates:?}");
    let date = &dates[0];
    assert!(
        date.len() == SITE_DATE.len() && date.ends_with(" GMT") && date != SITE_DATE,
        "{what}: Date {date:?}"
    );
}

async fn h1_exchange(gw: &Gateway, host: &str, paths: &[&str]) -> Vec<(Seen, bool)> {
    let tls = connect_through(
        gw.proxy,
        &format!("{host}:443"),
        host,
        &gw.ca_pem,
        &[b"http/1.1"],
    )
    .await;
    let mut conn = Reader::new(tls);
    let mut out = Vec::new();
    for path in paths {
        conn.io
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let answer = conn.answer(false).await;
        let answer = answer.unwrap_or_else(|| panic!("h1 {host}{path}: no answer"));
        // Whether the gateway closed the connection after it.
        let mut probe = [0u8; 1];
        let closed = conn.ended
            && matches!(
                tokio::time::timeout(std::time::Duration::from_secs(1), conn.io.read(&mut probe))
                    .await,
                Ok(Ok(0)) | Ok(Err(_))
            );
        let trailers = answer.trailers.iter().map(|line| {
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            (k.to_string(), v.trim().to_string())
        });
        out.push((
            Seen {
                status: answer.status,
                trailers: by_name(trailers),
                fields: by_name(answer.headers.clone()),
                body: answer.body,
            },
            closed,
        ));
    }
    out
}

async fn h2_exchange(gw: &Gateway, host: &str, paths: &[&str]) -> Vec<Seen> {
    let tls = connect_through(gw.proxy, &format!("{host}:443"), host, &gw.ca_pem, &[b"h2"]).await;
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut out = Vec::new();
    for path in paths {
        let mut client = client.clone().ready().await.unwrap();
        let request = http::Request::get(format!("https://{host}{path}"))
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (answer, _) = client.send_request(request, true).unwrap();
        let answer = answer.await.unwrap();
        let status = answer.status().as_u16();
        let fields = header_map(answer.headers());
        let mut body = answer.into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.unwrap();
        out.push(Seen {
            status,
            fields,
            trailers: trailers.as_ref().map(header_map).unwrap_or_default(),
            body: data,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_arrive_as_the_site_sent_them_for_every_protocol_pair() {
    let ca = TestCa::new("upstream test CA");
    // x.com speaks both protocols (the gateway speaks the client's); h1.x.com only HTTP/1.1.
    let both = Site::start(&ca, "x.com", &[b"h2", b"http/1.1"]).await;
    let h1_only = Site::start(&ca, "h1.x.com", &[b"http/1.1"]).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:443", both.addr)
        .resolve("h1.x.com:443", h1_only.addr)
        .upstream_ca(&ca.pem)
        .start()
        .await;
    let paths = ["/chunked", "/length", "/close"];

    // h1 → h1: one kept-alive connection; the answer ended by closing comes last.
    for ((mut got, closed), path) in h1_exchange(&gw, "x.com", &paths)
        .await
        .into_iter()
        .zip(paths)
    {
        let what = format!("h1→h1 {path}");
        take_date(&mut got.fields, &what);
        assert_same(
            &got,
            &expected(&site_answer(path), Protocol::H1, Protocol::H1),
            &what,
        );
        assert_eq!(
            closed,
            path == "/close",
            "{what}: the client's connection closes after, and only after, an answer the site ended by closing"
        );
    }
    // h2 → h2 and h2 → h1: all on one HTTP/2 connection each.
    for (host, site_protocol) in [("x.com", Protocol::H2), ("h1.x.com", Protocol::H1)] {
        for (mut got, path) in h2_exchange(&gw, host, &paths).await.into_iter().zip(paths) {
            let what = format!("h2→{site_protocol:?} {host}{path}");
            take_date(&mut got.fields, &what);
            assert_same(
                &got,
                &expected(&site_answer(path), Protocol::H2, site_protocol),
                &what,
            );
        }
    }
    // The gateway spoke to each site in the client's protocol where the site could.
    let by = |site: &Site| {
        site.protocols()
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by(&both),
        [
            Protocol::H1,
            Protocol::H1,
            Protocol::H1,
            Protocol::H2,
            Protocol::H2,
            Protocol::H2
        ]
    );
    assert_eq!(by(&h1_only), [Protocol::H1; 3]);
}
