//! Stopping: the real binary, told to stop with SIGTERM, stops accepting, reports not
//! ready, and exits as soon as what is in flight has finished: at once when all it holds
//! is idle connections, when the last upload or tunnel ends otherwise, and never later
//! than `grace_period_seconds`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// The deadline the gateway has to exit once nothing is in flight.
const IDLE_EXIT: Duration = Duration::from_secs(2);

fn sigterm(gw: &GatewayProcess) {
    unsafe { libc::kill(gw.child.id() as i32, libc::SIGTERM) };
}

/// The gateway's exit status and when it was seen, if it exits within `limit`.
async fn exit_within(
    gw: &mut GatewayProcess,
    limit: Duration,
) -> Option<(std::process::ExitStatus, Instant)> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            return Some((status, Instant::now()));
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait until `/readyz` says the gateway is stopping (its answer, 503), then until its
/// proxy port refuses connections; panics if either never happens while it runs.
async fn wait_until_stopping(gw: &GatewayProcess) -> serde_json::Value {
    let url = format!("http://{}/readyz", gw.admin);
    let mut readyz = None;
    for _ in 0..250 {
        let r = reqwest::get(&url)
            .await
            .expect("the admin port answers while draining");
        if r.status() == 503 {
            readyz = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let readyz = readyz.expect("/readyz turns 503 after SIGTERM");
    for _ in 0..250 {
        match TcpStream::connect(gw.proxy).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return readyz,
            // (The listener had not stopped yet: this connection is idle and closed.)
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    panic!("the proxy port still accepts connections after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_gateway_exits_within_two_seconds_of_sigterm() {
    let ca = TestCa::new("upstream test CA");
    let site = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let plain = Upstream::start(None).await;
    // The default grace period (30 s) and head deadline (60 s): idle connections must not
    // make it wait.
    let transparent = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut gw = GatewayProcess::start_with(
        &[("x.com:443", site.addr), ("x.com:80", plain.addr)],
        &ca.pem,
        &format!("transparent:\n  https_listen: [\"{transparent}\"]\n"),
    )
    .await;
    // Idle connections of every kind the front door serves: a plain keep-alive one that
    // carried a request, ones that never sent a byte (explicit and transparent TLS
    // listeners), intercepted HTTP/1.1 and HTTP/2 ones that carried a request each.
    let mut plain_conn = Reader::new(TcpStream::connect(gw.proxy).await.unwrap());
    plain_conn
        .io
        .write_all(b"GET http://x.com/idle HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        plain_conn.answer(false).await.expect("an answer").status,
        200
    );
    let _silent = TcpStream::connect(gw.proxy).await.unwrap();
    let _silent_tls = TcpStream::connect(transparent).await.unwrap();
    let tls = connect_through(gw.proxy, "x.com:443", "x.com", &gw.ca_pem, &[b"http/1.1"]).await;
    let mut h1 = Reader::new(tls);
    h1.io
        .write_all(b"GET /idle HTTP/1.1\r\nHost: x.com\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(h1.answer(false).await.expect("an answer").status, 200);
    let tls = connect_through(gw.proxy, "x.com:443", "x.com", &gw.ca_pem, &[b"h2"]).await;
    let (h2, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let (answer, _) = h2
        .send_request(
            http::Request::get("https://x.com/idle").body(()).unwrap(),
            true,
        )
        .unwrap();
    let answer = answer.await.unwrap();
    assert_eq!(answer.status(), 200);
    let mut body = answer.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    assert_eq!(site.count(), 2);

    let signalled = Instant::now();
    sigterm(&gw);
    let (status, at) = exit_within(&mut gw, IDLE_EXIT)
        .await
        .expect("an idle gateway exits within 2 s of SIGTERM");
    assert!(status.success(), "{status}");
    eprintln!(
        "idle gateway exited {:?} after SIGTERM",
        at.duration_since(signalled)
    );
    // The HTTP/2 connection was ended, not left hanging.
    let ended = tokio::time::timeout(Duration::from_secs(5), connection).await;
    assert!(ended.is_ok(), "the HTTP/2 connection ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_gateway_exits_when_a_slow_upload_completes() {
    let ca = TestCa::new("upstream test CA");
    let site = Upstream::start(Some(ca.server_config(&["x.com"]))).await;
    let grace = Duration::from_secs(20);
    let mut gw = GatewayProcess::start_with(
        &[("x.com:443", site.addr)],
        &ca.pem,
        &format!("grace_period_seconds: {}\n", grace.as_secs()),
    )
    .await;
    // The upload's chunks leave when the test releases them: it is in flight for as
    // long as the test wants, whatever the machine's speed.
    const CHUNKS: usize = 64;
    const CHUNK: usize = 16 * 1024;
    let (chunks, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    let client = gw.client(&[&gw.ca_pem]);
    let upload = tokio::spawn(async move {
        client
            .post("https://x.com/upload")
            .header("content-length", (CHUNKS * CHUNK).to_string())
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
    });
    let chunk = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; CHUNK]);
    // With room for one chunk in the channel, the client has taken all but the last of
    // these: the request is under way through the gateway.
    for i in 0..8 {
        chunks.send(chunk(i)).await.unwrap();
    }

    let signalled = Instant::now();
    sigterm(&gw);
    let readyz = wait_until_stopping(&gw).await;
    assert_eq!(readyz["ready"], false, "{readyz}");
    assert_eq!(readyz["stopping"], true, "{readyz}");
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway waits for the upload in flight"
    );
    for i in 8..CHUNKS {
        chunks.send(chunk(i)).await.unwrap();
    }
    // The end of the stream ends the body (HTTP/2 marks it, whatever the length said).
    drop(chunks);
    let answer = upload
        .await
        .unwrap()
        .expect("the upload in flight completes");
    let completed = Instant::now();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value = answer.json().await.unwrap();
    let sent: Vec<u8> = (0..CHUNKS).flat_map(|i| chunk(i).to_vec()).collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&sent));
    assert_eq!(answer["len"], CHUNKS * CHUNK, "{answer}");
    assert_eq!(answer["sha256"], sha.as_str(), "the upload arrived whole");
    let got = site.last().unwrap();
    assert_eq!(
        (got.body_len, got.body_sha256),
        ((CHUNKS * CHUNK) as u64, sha)
    );

    let (status, at) = exit_within(&mut gw, IDLE_EXIT)
        .await
        .expect("the gateway exits within 2 s of its last upload completing");
    assert!(status.success(), "{status}");
    assert!(
        at.duration_since(signalled) < grace,
        "within the grace period"
    );
    eprintln!(
        "exited {:?} after SIGTERM, {:?} after the upload completed",
        at.duration_since(signalled),
        at.duration_since(completed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_gateway_exits_when_its_last_blind_tunnel_closes() {
    let ca = TestCa::new("upstream test CA");
    // Not a catalogue site: CONNECT makes a blind tunnel.
    let bank = Upstream::start(Some(ca.server_config(&["bank.example"]))).await;
    let grace = Duration::from_secs(20);
    let mut gw = GatewayProcess::start_with(
        &[("bank.example:443", bank.addr)],
        "",
        &format!("grace_period_seconds: {}\n", grace.as_secs()),
    )
    .await;
    // The client trusts the site's own CA: only a blind tunnel can satisfy it.
    let tls = connect_through(
        gw.proxy,
        "bank.example:443",
        "bank.example",
        &ca.pem,
        &[b"http/1.1"],
    )
    .await;
    let mut tunnel = Reader::new(tls);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: bank.example\r\n\r\n");
    tunnel
        .io
        .write_all(get("/before").as_bytes())
        .await
        .unwrap();
    assert_eq!(tunnel.answer(false).await.expect("an answer").status, 200);

    let signalled = Instant::now();
    sigterm(&gw);
    wait_until_stopping(&gw).await;
    // The tunnel still carries traffic, and holds the gateway up.
    tunnel
        .io
        .write_all(get("/during").as_bytes())
        .await
        .unwrap();
    assert_eq!(tunnel.answer(false).await.expect("an answer").status, 200);
    assert_eq!(bank.last().unwrap().path, "/during");
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway waits for the open tunnel"
    );

    tunnel.io.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tunnel.io.read_to_end(&mut rest).await;
    drop(tunnel);
    let closed = Instant::now();
    let (status, at) = exit_within(&mut gw, IDLE_EXIT)
        .await
        .expect("the gateway exits within 2 s of its last tunnel closing");
    assert!(status.success(), "{status}");
    assert!(
        at.duration_since(signalled) < grace,
        "within the grace period"
    );
    eprintln!(
        "exited {:?} after SIGTERM, {:?} after the tunnel closed",
        at.duration_since(signalled),
        at.duration_since(closed)
    );
}
