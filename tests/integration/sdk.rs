//! Real posting SDKs through the gateway: Mastodon.py, tweepy (X API v2 and v1.1), atproto
//! (Bluesky) and praw (Reddit), installed from PyPI into `tests/sdk/.venv` by
//! `tests/sdk/setup`, each run as a script would run it (`tests/sdk/drive.py`), with the
//! gateway as its HTTPS proxy and the gateway's CA as its trust store.
//!
//! A local site answers as each real API (enough for the SDK calls to succeed: Mastodon's
//! instance, verify_credentials and statuses; X's `/2/tweets`, `/2/users/me`, likes and
//! `/1.1/statuses/update.json`; Bluesky's createSession, getProfile and createRecord;
//! Reddit's token request, submit and comment), over real TLS for the real host names, and
//! records what it receives. For each SDK:
//! - a harmless post arrives exactly as in a direct run (the same script through a plain
//!   CONNECT tunnel to the site, bypassing the gateway): method, host, path and query,
//!   body bytes and the SDK's own headers;
//! - a post with a card number arrives with the number masked;
//! - a post with an AWS key never arrives, and the exception the SDK raises contains the
//!   rule's message (for atproto: a `BadRequestError`, not an auth error).
//!
//! What each SDK sent for its harmless post and reaction is written to
//! `tests/artifacts/sdk/<sdk>.json`; `tests/sdk/capture-to-rule-tests` turns those captures
//! into `rules/tests/benign_sdk.yaml`.
//!
//! Runs when `tests/sdk/setup` has installed `tests/sdk/.venv`, or with
//! `PERMEABLE_SDK_TESTS=1` (then the venv must be there); `PERMEABLE_SDK_TESTS=0` skips it.

use std::convert::Infallible;
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
use serde_json::{json, Value};

use crate::harness::*;

const HOSTS: &[&str] = &[
    "mastodon.social",
    "api.twitter.com",
    "bsky.social",
    "www.reddit.com",
    "oauth.reddit.com",
];

const HARMLESS: &str =
    "Looking forward to the meetup on Thursday! Slides will be online afterwards.";
const CARD: &str = "Refund to card 4111 1111 1111 1111 today please";
/// A realistic AWS access key id (not AWS's documentation example).
const AWS_KEY: &str = "AKIAZ7QW4TRX6NBLM3PK";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_python() -> PathBuf {
    manifest_dir().join("tests/sdk/.venv/bin/python")
}

/// Whether the SDK tests run here; prints why not when they do not. The venv counts once
/// `tests/sdk/setup` has finished installing it (it writes its stamp last).
fn enabled(name: &str) -> bool {
    let flag = std::env::var("PERMEABLE_SDK_TESTS").ok();
    let venv = manifest_dir()
        .join("tests/sdk/.venv/.permeable-requirements")
        .exists();
    match flag.as_deref() {
        Some("0") => false,
        Some("1") => {
            assert!(
                venv,
                "PERMEABLE_SDK_TESTS=1 but tests/sdk/.venv is missing: run tests/sdk/setup"
            );
            true
        }
        _ if venv => true,
        _ => {
            eprintln!(
                "SKIPPED sdk::{name}: run tests/sdk/setup (installs the SDKs from PyPI into \
                 tests/sdk/.venv), or set PERMEABLE_SDK_TESTS=1"
            );
            false
        }
    }
}

/// The message of `rule` in the shipped policy: what the SDK user must be shown.
fn rule_message(rule: &str) -> String {
    let text = std::fs::read_to_string(manifest_dir().join("rules/policy.yaml")).unwrap();
    let policy: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    policy["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_str() == Some(rule))
        .and_then(|r| r["message"].as_str())
        .unwrap_or_else(|| panic!("rule {rule} with a message in rules/policy.yaml"))
        .to_string()
}

// ---------------------------------------------------------------- the local site

/// One request the site received.
#[derive(Clone, Debug)]
struct Hit {
    method: String,
    host: String,
    /// Path and query, as sent.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Hit {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Path, query and body as text, percent-decoded (`+` as a space), for looking for words.
    fn decoded(&self) -> String {
        let raw = format!("{} {}", self.target, String::from_utf8_lossy(&self.body));
        percent_encoding::percent_decode_str(&raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    }

    fn is_write(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// A sign-in or token request: not a post, and carrying the test account's password.
    fn is_login(&self) -> bool {
        self.target.starts_with("/api/v1/access_token")
            || self
                .target
                .starts_with("/xrpc/com.atproto.server.createSession")
    }
}

/// A local HTTPS server answering as Mastodon, X, Bluesky and Reddit by host name.
struct Site {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Site {
    async fn start(tls: Arc<rustls::ServerConfig>) -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let record = hits.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let record = record.clone();
                        async move { Ok::<_, Infallible>(site_answer(req, record).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Site { addr, hits }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().clone()
    }
}

async fn site_answer(
    req: Request<Incoming>,
    record: Arc<Mutex<Vec<Hit>>>,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".into(), |p| p.to_string());
    let host = req
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|v| v.to_str().ok())
                .map(|h| h.split(':').next().unwrap_or(h).to_string())
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
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let path = target.split('?').next().unwrap_or("").trim_end_matches('/');
    let (status, answer) = api_answer(&method, &host, path);
    record.lock().push(Hit {
        method,
        host,
        target,
        headers,
        body,
    });
    let mut r = Response::new(Full::new(Bytes::from(answer.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(
        "content-type",
        "application/json; charset=utf-8".parse().unwrap(),
    );
    r
}

const ALICE_DID: &str = "did:plc:sdktestalice00000000000";

/// An unsigned JWT as atproto's SDK reads it (it only decodes the expiry): fixed, so that
/// the Authorization header of a direct run and a gateway run are the same.
fn session_jwt(scope: &str) -> String {
    use base64::Engine;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "HS256", "typ": "JWT"})),
        b64(&json!({"exp": 4_102_444_800u64, "sub": ALICE_DID, "scope": scope}))
    )
}

fn mastodon_account() -> Value {
    json!({"id": "110000000000000001", "username": "alice", "acct": "alice",
        "display_name": "Alice", "locked": false, "bot": false,
        "created_at": "2024-01-01T00:00:00.000Z", "note": "",
        "url": "https://mastodon.social/@alice",
        "avatar": "https://mastodon.social/avatars/original/missing.png",
        "avatar_static": "https://mastodon.social/avatars/original/missing.png",
        "header": "https://mastodon.social/headers/original/missing.png",
        "header_static": "https://mastodon.social/headers/original/missing.png",
        "followers_count": 0, "following_count": 0, "statuses_count": 1,
        "last_status_at": "2025-01-01", "emojis": [], "fields": []})
}

fn mastodon_status() -> Value {
    json!({"id": "113000000000000001", "created_at": "2025-01-01T12:00:00.000Z",
        "in_reply_to_id": null, "in_reply_to_account_id": null, "sensitive": false,
        "spoiler_text": "", "visibility": "public", "language": "en",
        "uri": "https://mastodon.social/users/alice/statuses/113000000000000001",
        "url": "https://mastodon.social/@alice/113000000000000001",
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
        "favourited": false, "reblogged": false, "muted": false, "bookmarked": false,
        "content": "<p>posted</p>", "reblog": null, "account": mastodon_account(),
        "media_attachments": [], "mentions": [], "tags": [], "emojis": [],
        "card": null, "poll": null})
}

/// What each real API answers, as far as the SDK calls need.
fn api_answer(method: &str, host: &str, path: &str) -> (u16, Value) {
    let post = method == "POST";
    match (host, path) {
        ("mastodon.social", "/api/v1/instance" | "/api/v2/instance") => (
            200,
            json!({"domain": "mastodon.social", "uri": "mastodon.social", "title": "Mastodon",
                "version": "4.3.0", "description": "", "usage": {"users": {"active_month": 1}},
                "languages": ["en"], "rules": [],
                "configuration": {"statuses": {"max_characters": 500, "max_media_attachments": 4,
                    "characters_reserved_per_url": 23}, "urls": {"streaming": "wss://mastodon.social"}},
                "registrations": {"enabled": false, "approval_required": false},
                "contact": {"email": "", "account": null},
                "thumbnail": {"url": "https://mastodon.social/thumbnail.png"},
                "api_versions": {"mastodon": 2}}),
        ),
        ("mastodon.social", "/api/v1/accounts/verify_credentials") => (200, mastodon_account()),
        ("mastodon.social", "/api/v1/statuses") if post => (200, mastodon_status()),
        ("mastodon.social", p) if post && p.ends_with("/favourite") => {
            let mut s = mastodon_status();
            s["favourited"] = json!(true);
            (200, s)
        }
        ("api.twitter.com", "/2/tweets") if post => (
            201,
            json!({"data": {"id": "1800000000000000002", "text": "posted",
                "edit_history_tweet_ids": ["1800000000000000002"]}}),
        ),
        ("api.twitter.com", "/2/users/me") => (
            200,
            json!({"data": {"id": "1000000000000000001", "name": "Alice", "username": "alice"}}),
        ),
        ("api.twitter.com", p) if post && p.starts_with("/2/users/") && p.ends_with("/likes") => {
            (200, json!({"data": {"liked": true}}))
        }
        ("api.twitter.com", "/1.1/statuses/update.json" | "/1.1/favorites/create.json") if post => {
            (
                200,
                json!({"id": 1_800_000_000_000_000_002u64, "id_str": "1800000000000000002",
                "text": "posted", "created_at": "Wed Jan 01 12:00:00 +0000 2025",
                "user": {"id": 1_000_000_000_000_000_001u64, "id_str": "1000000000000000001",
                    "screen_name": "alice", "name": "Alice"}}),
            )
        }
        ("bsky.social", "/xrpc/com.atproto.server.createSession") if post => (
            200,
            json!({"did": ALICE_DID, "handle": "alice.bsky.social",
                "accessJwt": session_jwt("com.atproto.access"),
                "refreshJwt": session_jwt("com.atproto.refresh"), "active": true}),
        ),
        ("bsky.social", "/xrpc/app.bsky.actor.getProfile") => (
            200,
            json!({"did": ALICE_DID, "handle": "alice.bsky.social", "displayName": "Alice"}),
        ),
        ("bsky.social", "/xrpc/com.atproto.repo.createRecord") if post => (
            200,
            json!({"uri": format!("at://{ALICE_DID}/app.bsky.feed.post/3lsdktest0002"),
                "cid": "bafyreib2rxk3rh6kzwq2rzqnsoxtvxkgbb7k7qgkrfkanrd7dpw5bvrsky"}),
        ),
        ("www.reddit.com", "/api/v1/access_token") if post => (
            200,
            json!({"access_token": "sdk-reddit-access-token", "expires_in": 86400,
                "scope": "*", "token_type": "bearer"}),
        ),
        ("oauth.reddit.com", "/api/submit") if post => (
            200,
            json!({"json": {"errors": [], "data": {
                "url": "https://www.reddit.com/r/test/comments/1sdkt01/from_the_gateway_test/",
                "drafts_count": 0, "id": "1sdkt01", "name": "t3_1sdkt01"}}}),
        ),
        ("oauth.reddit.com", "/api/comment") if post => (
            200,
            json!({"json": {"errors": [], "data": {"things": [{"kind": "t1", "data": {
                "id": "lsdkt01", "name": "t1_lsdkt01", "body": "posted",
                "link_id": "t3_1sdkt01", "parent_id": "t3_1sdkt01", "subreddit": "test",
                "author": "sdk_tester"}}]}}}),
        ),
        _ => (404, json!({"error": "not found"})),
    }
}

// ---------------------------------------------------------------- the direct path

/// A plain CONNECT proxy that tunnels every CONNECT to `site`, byte for byte: the direct
/// run's way to the site, with the same proxy settings in the SDK as through the gateway.
async fn start_tunnel(site: SocketAddr) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                if !head.starts_with(b"CONNECT ") {
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(site).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- running an SDK

/// What the SDK script reported.
#[derive(Debug)]
struct Outcome {
    ok: bool,
    /// `module.Class` of the exception raised, and of its bases.
    class: String,
    bases: Vec<String>,
    text: String,
}

/// Runs `drive.py SDK OP TEXT` with `proxy` as HTTPS proxy and `ca` as the trust store.
async fn drive(sdk: &str, op: &str, text: &str, proxy: SocketAddr, ca: &Path) -> Outcome {
    let mut cmd = tokio::process::Command::new(venv_python());
    cmd.arg(manifest_dir().join("tests/sdk/drive.py"))
        .args([sdk, op, text])
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("CURL_CA_BUNDLE")
        .env("HTTPS_PROXY", format!("http://{proxy}"))
        .env("https_proxy", format!("http://{proxy}"))
        .env("REQUESTS_CA_BUNDLE", ca)
        .env("SSL_CERT_FILE", ca)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONWARNINGS", "ignore")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{sdk} {op}: the SDK script did not finish in 120 s"))
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "{sdk} {op}: no result from the SDK script\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Outcome {
        ok: v["ok"] == true,
        class: v["type"].as_str().unwrap_or("").to_string(),
        bases: v["bases"]
            .as_array()
            .map(|b| {
                b.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        text: v["text"].as_str().unwrap_or("").to_string(),
    }
}

/// The headers an SDK sets itself, which the gateway must pass as they are. (tweepy's
/// OAuth 1.0a signature carries a nonce and a timestamp: it differs between any two runs.)
fn sdk_headers(sdk: &str) -> &'static [&'static str] {
    if sdk.starts_with("tweepy") {
        &["content-type", "user-agent", "accept"]
    } else {
        &["content-type", "user-agent", "accept", "authorization"]
    }
}

/// One SDK end to end; `exception` is the class its blocked post must raise.
async fn sdk_end_to_end(sdk: &str, exception: &str) {
    let work = tempfile::tempdir().unwrap();
    let ca = TestCa::new("upstream test CA");
    let direct_site = Site::start(ca.server_config(HOSTS)).await;
    let site = Site::start(ca.server_config(HOSTS)).await;
    let tunnel = start_tunnel(direct_site.addr).await;
    let site_ca = work.path().join("site-ca.pem");
    std::fs::write(&site_ca, &ca.pem).unwrap();

    let mut builder = GatewayBuilder::new().upstream_ca(&ca.pem);
    builder.config.rules = Some(manifest_dir().join("rules"));
    builder.config.upstream.read_timeout_ms = 20_000;
    for host in HOSTS {
        builder = builder.resolve(&format!("{host}:443"), site.addr);
    }
    let gw = builder.start().await;
    let gw_ca = work.path().join("gateway-ca.pem");
    std::fs::write(&gw_ca, &gw.ca_pem).unwrap();

    // A harmless post: the same requests as a direct run, byte for byte.
    let direct = drive(sdk, "post", HARMLESS, tunnel, &site_ca).await;
    assert!(direct.ok, "{sdk}: direct run failed: {direct:?}");
    let through = drive(sdk, "post", HARMLESS, gw.proxy, &gw_ca).await;
    assert!(
        through.ok,
        "{sdk}: harmless post through the gateway failed: {through:?}"
    );
    let (want, got) = (direct_site.hits(), site.hits());
    assert!(
        want.iter()
            .any(|h| h.is_write() && h.decoded().contains(HARMLESS)),
        "{sdk}: the direct run posted the text: {want:#?}"
    );
    assert_eq!(
        want.len(),
        got.len(),
        "{sdk}: requests direct {want:#?}\nthrough the gateway {got:#?}"
    );
    for (w, g) in want.iter().zip(&got) {
        let what = format!("{sdk}: {} {}{}", w.method, w.host, w.target);
        assert_eq!(
            (&g.method, &g.host, &g.target),
            (&w.method, &w.host, &w.target),
            "{what}"
        );
        assert!(
            g.body == w.body,
            "{what}: body differs:\n{:?}\n{:?}",
            String::from_utf8_lossy(&w.body),
            String::from_utf8_lossy(&g.body)
        );
        for h in sdk_headers(sdk) {
            assert_eq!(g.header(h), w.header(h), "{what}: header {h}");
        }
    }
    let harmless = got;

    // The SDK's reaction (like, favourite or comment), for the captured rule tests.
    let before = site.hits().len();
    let reacted = drive(sdk, "react", HARMLESS, gw.proxy, &gw_ca).await;
    assert!(
        reacted.ok,
        "{sdk}: reaction through the gateway failed: {reacted:?}"
    );
    let reaction = site.hits()[before..].to_vec();
    write_capture(sdk, &harmless, &reaction);

    // A card number: the post arrives with the number masked.
    let before = site.hits().len();
    let carded = drive(sdk, "post", CARD, gw.proxy, &gw_ca).await;
    assert!(
        carded.ok,
        "{sdk}: post with a card number failed: {carded:?}"
    );
    let hits = site.hits()[before..].to_vec();
    let post = hits
        .iter()
        .find(|h| h.is_write() && h.decoded().contains("1111 today please"))
        .unwrap_or_else(|| panic!("{sdk}: the card post arrived: {hits:#?}"));
    let text = post.decoded();
    assert!(
        !text.contains("4111 1111 1111 1111") && text.contains("**** **** **** 1111"),
        "{sdk}: card masked: {text}"
    );

    // An AWS key: the post never arrives, and the SDK's exception carries the rule's message.
    let before = site.hits().len();
    let blocked = drive(
        sdk,
        "post",
        &format!("Our new key is {AWS_KEY}, use it for the demo"),
        gw.proxy,
        &gw_ca,
    )
    .await;
    let hits = site.hits()[before..].to_vec();
    assert!(
        !hits.iter().any(|h| h.decoded().contains(AWS_KEY)),
        "{sdk}: the key reached the site: {hits:#?}"
    );
    assert!(!blocked.ok, "{sdk}: a blocked post raises");
    assert_eq!(blocked.class, exception, "{sdk}: {blocked:?}");
    let message = rule_message("block-aws-access-key");
    assert!(
        blocked.text.contains(&message),
        "{sdk}: the exception shows the rule's message\n  exception: {}\n  message: {message}",
        blocked.text
    );
    assert!(
        !blocked.bases.iter().any(|b| b.contains("Unauthorized")),
        "{sdk}: not an authorisation error: {blocked:?}"
    );
    eprintln!(
        "{sdk}: a blocked post raises {}: {}",
        blocked.class, blocked.text
    );
}

/// Saves the writes an SDK made for its harmless post and its reaction (not its sign-in),
/// as `tests/sdk/capture-to-rule-tests` reads them.
fn write_capture(sdk: &str, post: &[Hit], reaction: &[Hit]) {
    let requests: Vec<Value> = [("post", post), ("react", reaction)]
        .iter()
        .flat_map(|(op, hits)| {
            hits.iter()
                .filter(|h| h.is_write() && !h.is_login())
                .map(move |h| {
                    json!({
                        "op": op,
                        "method": h.method,
                        "url": format!("https://{}{}", h.host, h.target),
                        "content_type": h.header("content-type"),
                        "body": String::from_utf8_lossy(&h.body),
                    })
                })
        })
        .collect();
    let dir = manifest_dir().join("tests/artifacts/sdk");
    std::fs::create_dir_all(&dir).unwrap();
    let capture = json!({"sdk": sdk, "requests": requests});
    std::fs::write(
        dir.join(format!("{sdk}.json")),
        serde_json::to_string_pretty(&capture).unwrap(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_py() {
    if enabled("mastodon_py") {
        sdk_end_to_end("mastodon", "mastodon.errors.MastodonAPIError").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tweepy_api_v2() {
    if enabled("tweepy_api_v2") {
        sdk_end_to_end("tweepy-v2", "tweepy.errors.Forbidden").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tweepy_api_v1_1() {
    if enabled("tweepy_api_v1_1") {
        sdk_end_to_end("tweepy-v1", "tweepy.errors.Forbidden").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atproto_bluesky() {
    if enabled("atproto_bluesky") {
        sdk_end_to_end("atproto", "atproto_client.exceptions.BadRequestError").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn praw_reddit() {
    if enabled("praw_reddit") {
        sdk_end_to_end("praw", "praw.exceptions.RedditAPIException").await;
    }
}
