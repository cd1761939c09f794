//! The employee's side of the gateway.
//!
//! - `employee_experience_in_chromium`: headless Chromium (Debian's package, driven by
//!   playwright-core from `tests/browser/`) uses the gateway as its proxy and trusts the
//!   gateway's CA through an NSS database, against a test site served as `x.com` (real TLS,
//!   reached through `upstream.resolve`). What the site received is the proof: a harmless
//!   post arrives byte for byte, a card number arrives masked, a post with a credential
//!   never arrives. Runs only with `PERMEABLE_BROWSER_TESTS=1` (it needs chromium,
//!   certutil and `npm ci` in tests/browser); screenshots land in `tests/artifacts/browser/`.
//! - The other tests prove transparency with a plain client: compressed responses,
//!   redirects, cookies and server-sent events pass through unaltered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

type Body = BoxBody<Bytes, Infallible>;

const CREATE_TWEET: &str = "/i/api/graphql/AbC/CreateTweet";

/// One request the test site received.
#[derive(Clone, Debug)]
struct Hit {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
    /// The body, whole up to 1 MiB.
    body: Vec<u8>,
    body_len: u64,
    body_sha256: String,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A small web client of a social site, served over TLS as `x.com` (h2 and http/1.1):
///
/// | path | what |
/// |---|---|
/// | `/` | compose form; posts JSON with `fetch` to `CREATE_TWEET`, shows the outcome |
/// | `CREATE_TWEET` (POST) | records the post, answers GraphQL-style JSON |
/// | `/compose/reply` | a script-free reply form (a form POST navigation) |
/// | `/ws` | a page opening a WebSocket to `/ws/echo` (greets, then echoes) |
/// | `/upload` | a file upload page; POST `/upload` answers the length and SHA-256 |
/// | `/messages` | an inbox page (the browser test's rules block it) |
/// | `/gzip` | a gzip-encoded JSON response |
/// | `/redirect` | 302 to `/home` setting two cookies |
/// | `/events` | server-sent events: one event, the next only after `sse_next` fires |
struct Site {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    ws_received: Arc<Mutex<Vec<String>>>,
    sse_next: Arc<tokio::sync::Notify>,
    gzip_body: Bytes,
}

#[derive(Clone)]
struct SiteState {
    hits: Arc<Mutex<Vec<Hit>>>,
    ws_received: Arc<Mutex<Vec<String>>>,
    sse_next: Arc<tokio::sync::Notify>,
    gzip_body: Bytes,
}

impl Site {
    async fn start(tls: Arc<rustls::ServerConfig>) -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = SiteState {
            hits: Arc::default(),
            ws_received: Arc::default(),
            sse_next: Arc::default(),
            gzip_body: gzip(
                serde_json::json!({"timeline": vec!["a post in the timeline"; 200]})
                    .to_string()
                    .as_bytes(),
            ),
        };
        let site = Site {
            addr,
            hits: state.hits.clone(),
            ws_received: state.ws_received.clone(),
            sse_next: state.sse_next.clone(),
            gzip_body: state.gzip_body.clone(),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), state.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(site_answer(req, state).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        site
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().clone()
    }

    fn hits_to(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }
}

fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    Bytes::from(enc.finish().unwrap())
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed()
}

fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(full(body))
        .unwrap()
}

async fn site_answer(req: Request<Incoming>, state: SiteState) -> Response<Body> {
    if req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        return websocket_echo(req, state);
    }
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let version = format!("{:?}", req.version());
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
    let (mut hasher, mut kept, mut len) = (Sha256::new(), Vec::new(), 0u64);
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
    state.hits.lock().push(Hit {
        method: method.clone(),
        path: path.clone(),
        version,
        headers,
        body: kept,
        body_len: len,
        body_sha256: sha.clone(),
    });
    const HTML: &str = "text/html; charset=utf-8";
    match (method.as_str(), path.as_str()) {
        ("GET", "/") | ("GET", "/home") => respond(200, HTML, COMPOSE_PAGE),
        ("POST", CREATE_TWEET) => respond(
            200,
            "application/json",
            r#"{"data":{"create_tweet":{"tweet_results":{"result":{"rest_id":"1"}}}}}"#,
        ),
        ("GET", "/compose/reply") => respond(200, HTML, REPLY_PAGE),
        ("POST", "/compose/reply") => respond(
            200,
            HTML,
            "<!doctype html><title>Replied</title><h1>Replied</h1>",
        ),
        ("GET", "/ws") => respond(200, HTML, WEBSOCKET_PAGE),
        ("GET", "/upload") => respond(200, HTML, UPLOAD_PAGE),
        ("POST", "/upload") => respond(
            200,
            "application/json",
            serde_json::json!({"ok": true, "len": len, "sha256": sha}).to_string(),
        ),
        ("GET", "/messages") => respond(
            200,
            HTML,
            "<!doctype html><title>Messages</title><h1>Inbox</h1>",
        ),
        ("GET", "/gzip") => Response::builder()
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("vary", "accept-encoding")
            .body(full(state.gzip_body.clone()))
            .unwrap(),
        ("GET", "/redirect") => Response::builder()
            .status(302)
            .header("location", "/home")
            .header(
                "set-cookie",
                "session=abc123; Path=/; Secure; HttpOnly; SameSite=Lax",
            )
            .header("set-cookie", "lang=en; Path=/; Max-Age=3600")
            .body(full(""))
            .unwrap(),
        ("GET", "/events") => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
            let next = state.sse_next.clone();
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"id: 1\ndata: first\n\n")).await;
                next.notified().await;
                let _ = tx
                    .send(Bytes::from_static(b"id: 2\ndata: second\n\n"))
                    .await;
            });
            let frames = futures_util::stream::unfold(rx, |mut rx| async move {
                let chunk = rx.recv().await?;
                Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(BodyExt::boxed(StreamBody::new(frames)))
                .unwrap()
        }
        _ => respond(404, "text/plain", "not found\n"),
    }
}

/// Accept a WebSocket upgrade: greet with `welcome`, then echo every text as `echo: …`.
fn websocket_echo(req: Request<Incoming>, state: SiteState) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return respond(400, "text/plain", "no Sec-WebSocket-Key\n");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        if ws.send(Message::Text("welcome".into())).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(text) = msg {
                state.ws_received.lock().push(text.clone());
                if ws
                    .send(Message::Text(format!("echo: {text}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", accept)
        .body(full(""))
        .unwrap()
}

const COMPOSE_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Home / X (test site)</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>Home</h1>
<form id="compose">
  <label for="text">What is happening?</label><br>
  <textarea id="text" rows="3" cols="50"></textarea><br>
  <button type="submit">Post</button>
</form>
<p id="status" role="status" data-state="idle"></p>
<p><a id="review" hidden>Review and continue</a></p>
</main>
<script>
document.getElementById('compose').addEventListener('submit', async (event) => {
  event.preventDefault();
  const status = document.getElementById('status');
  const review = document.getElementById('review');
  review.hidden = true;
  status.dataset.state = 'pending';
  status.textContent = 'Posting…';
  const body = JSON.stringify({
    variables: { tweet_text: document.getElementById('text').value, dark_request: false },
    queryId: 'AbC',
  });
  window.lastSent = body;
  try {
    const r = await fetch('/i/api/graphql/AbC/CreateTweet', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const answer = await r.json();
    if (r.ok) {
      status.dataset.state = 'posted';
      status.textContent = 'Your post was sent.';
    } else {
      status.dataset.state = answer.action || 'error';
      status.textContent = answer.message || ('Error ' + r.status);
      if (answer.continue_url) {
        review.href = answer.continue_url;
        review.hidden = false;
      }
    }
  } catch (e) {
    status.dataset.state = 'network-error';
    status.textContent = 'Something went wrong: ' + e;
  }
});
</script></body></html>"#;

const REPLY_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reply / X (test site)</title></head>
<body><h1>Reply</h1>
<form method="post" action="/compose/reply">
  <label for="text">Your reply</label><br>
  <textarea id="text" name="text" rows="3" cols="50"></textarea><br>
  <button type="submit">Reply</button>
</form></body></html>"#;

const WEBSOCKET_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Live / X (test site)</title></head>
<body><h1>Live</h1><ol id="log"></ol>
<script>
const log = document.getElementById('log');
const ws = new WebSocket('wss://' + location.host + '/ws/echo');
ws.onmessage = (event) => {
  const item = document.createElement('li');
  item.textContent = event.data;
  log.append(item);
  if (event.data === 'welcome') ws.send('hello from the page');
};
ws.onerror = () => { document.body.dataset.error = 'websocket error'; };
</script></body></html>"#;

const UPLOAD_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Upload / X (test site)</title></head>
<body><h1>Upload media</h1>
<label for="file">File</label> <input type="file" id="file">
<button id="send" type="button">Upload</button>
<pre id="result" data-state="idle"></pre>
<script>
document.getElementById('send').addEventListener('click', async () => {
  const result = document.getElementById('result');
  const file = document.getElementById('file').files[0];
  result.dataset.state = 'pending';
  try {
    const r = await fetch('/upload', {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: file,
    });
    result.textContent = await r.text();
    result.dataset.state = r.ok ? 'done' : 'error';
  } catch (e) {
    result.textContent = String(e);
    result.dataset.state = 'error';
  }
});
</script></body></html>"#;

/// The gateway fixture rules plus what navigations need: X's direct messages area
/// (`GET /messages…`) is a `message` activity, blocked by `block-x-messages`; a script-free
/// reply form (`POST /compose/reply`, form field `text`) is a `comment` activity.
fn browser_rules(dir: &Path) {
    copy_dir(&fixture_rules(), dir);
    let site = dir.join("sites/x.yaml");
    let text = std::fs::read_to_string(&site).unwrap();
    let view = "  - activity: view\n";
    assert!(text.contains(view), "fixture x.yaml has a view activity");
    const EXTRA: &str = "  - activity: message
    method: GET
    path: '^/messages(?:/|$)'
  - activity: comment
    method: POST
    path: '^/compose/reply$'
    content:
      - form: text
";
    let text = text.replacen(view, &format!("{EXTRA}{view}"), 1);
    std::fs::write(&site, text).unwrap();
    let policy = dir.join("policy.yaml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(
        "  - id: block-x-messages\n    description: Direct messages on X are not allowed.\n    when: { sites: [x], activities: [message] }\n    action: block\n    message: Direct messages on X are turned off on the company network. Use the company chat to reach colleagues.\n",
    );
    std::fs::write(&policy, text).unwrap();
}

/// A deterministic, incompressible file of `len` bytes.
fn upload_file(path: &Path, len: usize) -> (u64, String) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, &data).unwrap();
    (len as u64, hex::encode(Sha256::digest(&data)))
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn employee_experience_in_chromium() {
    if std::env::var("PERMEABLE_BROWSER_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED browser::employee_experience_in_chromium: set PERMEABLE_BROWSER_TESTS=1 \
             (needs /usr/bin/chromium, certutil from libnss3-tools, and `npm ci` in tests/browser)"
        );
        return;
    }
    let browser_dir = manifest_dir().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser first"
    );
    let artifacts = manifest_dir().join("tests/artifacts/browser");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let work = tempfile::tempdir().unwrap();

    let ca = TestCa::new("upstream test CA");
    let site = Site::start(ca.server_config(&["x.com"])).await;
    let rules = work.path().join("rules");
    browser_rules(&rules);
    let mut builder = GatewayBuilder::new()
        .resolve("x.com:443", site.addr)
        .upstream_ca(&ca.pem);
    builder.config.rules = Some(rules);
    builder.config.upstream.read_timeout_ms = 10_000;
    builder.config.pages.organisation = "Example Corp".into();
    builder.config.pages.policy_url = Some("https://intranet.example/policies/social-media".into());
    builder.config.pages.help_url = Some("https://help.example/it".into());
    builder.config.pages.accent_color = "#0b5cab".into();
    builder.config.pages.logo = Some(format!("data:image/svg+xml;base64,{}", {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(LOGO_SVG)
    }));
    let gw = builder.start().await;

    let ca_path = work.path().join("gateway-ca.crt");
    std::fs::write(&ca_path, &gw.ca_pem).unwrap();
    let upload_path = work.path().join("clip.bin");
    let (upload_len, upload_sha) = upload_file(&upload_path, 16 << 20);

    let mut node = tokio::process::Command::new("node");
    node.arg("e2e.mjs")
        .current_dir(&browser_dir)
        .env("PERMEABLE_PROXY", gw.proxy.to_string())
        .env("PERMEABLE_CA", &ca_path)
        .env("PERMEABLE_SITE", "https://x.com")
        .env("PERMEABLE_ARTIFACTS", &artifacts)
        .env("PERMEABLE_UPLOAD_FILE", &upload_path)
        .kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(240), node.status())
        .await
        .expect("the browser run finishes within 4 minutes")
        .expect("node runs");
    assert!(
        status.success(),
        "browser run failed ({status}); see its output above and tests/artifacts/browser/"
    );

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(artifacts.join("results.json")).unwrap()).unwrap();
    let sent = |name: &str| {
        results["sent"][name]
            .as_str()
            .unwrap_or_else(|| panic!("results.json has sent.{name}: {results}"))
            .to_string()
    };

    // What reached the site is the proof.
    let posts = site.hits_to(CREATE_TWEET);
    assert_eq!(
        posts.len(),
        3,
        "harmless, masked and coached-then-continued posts arrive; the AWS key post does not: {:?}",
        posts
            .iter()
            .map(|h| String::from_utf8_lossy(&h.body))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        posts[0].body,
        sent("harmless").as_bytes(),
        "a harmless post arrives byte for byte"
    );
    let masked = String::from_utf8(posts[1].body.clone()).unwrap();
    let card_sent = sent("card");
    assert!(card_sent.contains("4111 1111 1111 1111"));
    assert_ne!(masked, card_sent);
    assert!(!masked.contains("4111 1111 1111 1111"), "{masked}");
    assert!(
        masked.contains("1111 please"),
        "last four digits stay: {masked}"
    );
    assert_eq!(
        posts[1].header("content-length"),
        Some(posts[1].body.len().to_string().as_str())
    );
    serde_json::from_str::<serde_json::Value>(&masked).expect("the masked post is still JSON");
    assert_eq!(posts[2].body, sent("coached").as_bytes());
    assert!(String::from_utf8_lossy(&posts[2].body).contains("BLUEHERON"));
    for hit in site.hits() {
        assert!(
            !String::from_utf8_lossy(&hit.body).contains("AKIAIOSFODNN7EXAMPLE"),
            "the AWS key never reaches the site"
        );
        assert!(
            !hit.path.starts_with("/messages"),
            "a blocked navigation never reaches the site"
        );
        assert!(
            !(hit.method == "POST" && hit.path == "/compose/reply"),
            "a blocked form post never reaches the site"
        );
    }

    // HTTP/2 on both legs: the browser's view (from the page), and the site's.
    assert_eq!(results["protocol"], "h2", "{results}");
    let home = site.hits_to("/");
    assert!(!home.is_empty());
    assert!(home.iter().all(|h| h.version == "HTTP/2.0"), "{home:?}");

    // WebSocket: the site heard the page, the page heard the site (checked in e2e.mjs).
    assert_eq!(
        site.ws_received.lock().clone(),
        vec!["hello from the page".to_string()]
    );

    // The large upload arrived whole.
    let uploads: Vec<Hit> = site
        .hits_to("/upload")
        .into_iter()
        .filter(|h| h.method == "POST")
        .collect();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].body_len, upload_len);
    assert_eq!(uploads[0].body_sha256, upload_sha);

    for shot in [
        "block-laptop",
        "block-phone",
        "block-post-laptop",
        "block-post-phone",
        "coach-laptop",
        "coach-phone",
    ] {
        assert!(
            artifacts.join(format!("{shot}.png")).is_file(),
            "{shot}.png"
        );
    }
    eprintln!("browser: screenshots in {}", artifacts.display());
}

const LOGO_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="124" height="32" viewBox="0 0 124 32"><rect width="32" height="32" rx="6" fill="#fff"/><path d="M8 22 16 8l8 14z" fill="#0b5cab"/><text x="40" y="22" font-family="sans-serif" font-size="15" font-weight="700" fill="#fff">Example</text></svg>"##;

// ---------------------------------------------------------------------------------------
// Transparency, with a plain client (no browser needed).

async fn transparency_setup() -> (TestCa, Site, Gateway) {
    let ca = TestCa::new("upstream test CA");
    let site = Site::start(ca.server_config(&["x.com"])).await;
    let gw = GatewayBuilder::new()
        .resolve("x.com:443", site.addr)
        .upstream_ca(&ca.pem)
        .start()
        .await;
    (ca, site, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compressed_responses_pass_unaltered() {
    let (_ca, site, gw) = transparency_setup().await;
    // The client does not decompress: it sees the bytes exactly as relayed.
    let resp = gw
        .intercepting_client()
        .get("https://x.com/gzip")
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-encoding").unwrap(), "gzip");
    assert!(resp.headers().get("x-permeable-action").is_none());
    let body = resp.bytes().await.unwrap();
    assert_eq!(body, site.gzip_body, "gzip response bytes are identical");
    let hit = site.hits_to("/gzip").pop().unwrap();
    assert_eq!(hit.header("accept-encoding"), Some("gzip, deflate, br"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redirects_and_cookies_pass_through() {
    let (_ca, site, gw) = transparency_setup().await;
    let resp = gw
        .intercepting_client()
        .get("https://x.com/redirect")
        .header("cookie", "session=old; theme=dark")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302, "the redirect reaches the client");
    assert_eq!(resp.headers().get("location").unwrap(), "/home");
    let cookies: Vec<&str> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        cookies,
        [
            "session=abc123; Path=/; Secure; HttpOnly; SameSite=Lax",
            "lang=en; Path=/; Max-Age=3600"
        ],
        "every Set-Cookie passes unaltered"
    );
    let hit = site.hits_to("/redirect").pop().unwrap();
    let sent: Vec<&str> = hit
        .headers
        .iter()
        .filter(|(k, _)| k == "cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    // HTTP/2 may split the Cookie header into crumbs (RFC 9113 §8.2.3); the pairs stay.
    assert_eq!(sent.join("; "), "session=old; theme=dark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_sent_events_stream() {
    let (_ca, site, gw) = transparency_setup().await;
    let mut resp = gw
        .intercepting_client()
        .get("https://x.com/events")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    // The site sends the second event only after the first has reached the client: the
    // first must arrive while the response is still open.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("data: first\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("the first event arrives before the response ends")
            .unwrap()
            .expect("the stream is still open");
        seen.extend_from_slice(&chunk);
    }
    site.sse_next.notify_one();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .expect("the rest of the stream")
        .unwrap()
    {
        seen.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8(seen).unwrap(),
        "id: 1\ndata: first\n\nid: 2\ndata: second\n\n"
    );
}
