//! The listeners' front door: what arrives on a socket before the HTTP pipeline.
//!
//! Pingora's proxy does not tunnel CONNECT, so this [`ServerApp`] reads the first bytes of
//! each explicit-proxy connection itself:
//! - `CONNECT` to a host that is intercepted: answer 200, accept TLS with a leaf minted for
//!   the SNI, and hand the decrypted stream to the HTTP pipeline (h2 or h1 by ALPN);
//! - `CONNECT` to anything else: a blind TCP tunnel, byte for byte;
//! - any other request: handed to the HTTP pipeline with the bytes read put back
//!   (absolute-form proxying).
//!
//! Transparent listeners skip the CONNECT: TLS is accepted by SNI, plain HTTP routed by Host.
//! Each connection handed to the pipeline is registered in [`Connections`] so that the
//! pipeline knows where the client meant to go (the CONNECT target or the SNI), and is
//! timed here: every request head has a deadline, every request body a floor of progress.
//! Every request, plain HTTP included, goes through the pipeline's phases.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Gateway, Shared};
use crate::auth::{Identity, Verdict};
use crate::config::WithoutSni;
use crate::metrics;
use crate::upstream::ResolveError;

/// How a connection reached the HTTP pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnMode {
    /// Plain connection on the explicit-proxy listener: absolute-form requests.
    ExplicitPlain,
    /// Decrypted after `CONNECT host:port`, or accepted by SNI on a transparent listener.
    Intercepted { host: String, port: u16 },
    /// Plain HTTP on a transparent listener: routed by Host.
    TransparentHttp,
}

/// What the pipeline needs to know about the connection a request came on.
#[derive(Debug)]
pub struct ConnInfo {
    pub mode: ConnMode,
    pub client: SocketAddr,
    /// Request heads the pipeline has received on this connection: lets the front door
    /// tell a client that is slow to send its head from one whose request is under way.
    pub heads: AtomicU64,
    /// Request bodies being received on this connection (several with HTTP/2).
    pub bodies_open: AtomicU64,
    /// Counts bodies that started, so a body check can tell a new body from an old one.
    pub bodies_started: AtomicU64,
    /// Request body bytes received on this connection, all requests together.
    pub body_bytes: AtomicU64,
    /// Who authenticated on this connection (its CONNECT, or its first request): set once,
    /// it holds for the connection's life.
    pub identity: OnceLock<Arc<Identity>>,
}

impl ConnInfo {
    pub fn new(mode: ConnMode, client: SocketAddr) -> ConnInfo {
        ConnInfo {
            mode,
            client,
            heads: AtomicU64::new(0),
            bodies_open: AtomicU64::new(0),
            bodies_started: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            identity: OnceLock::new(),
        }
    }

    /// A connection whose user is already known (a tunnel authenticated on its CONNECT).
    pub fn with_identity(mut self, identity: Option<Arc<Identity>>) -> ConnInfo {
        if let Some(identity) = identity {
            self.identity = OnceLock::from(identity);
        }
        self
    }

    /// A request body starts arriving.
    pub fn body_started(&self) {
        self.bodies_started.fetch_add(1, Ordering::AcqRel);
        self.bodies_open.fetch_add(1, Ordering::AcqRel);
    }

    /// A request body ended (complete, abandoned or turned into an upgraded stream).
    pub fn body_ended(&self) {
        let _ = self
            .bodies_open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Progress on a request body.
    pub fn body_received(&self, bytes: usize) {
        self.body_bytes.fetch_add(bytes as u64, Ordering::AcqRel);
    }

    /// Where bodies stand now: (bodies started, body bytes received).
    fn body_mark(&self) -> (u64, u64) {
        (
            self.bodies_started.load(Ordering::Acquire),
            self.body_bytes.load(Ordering::Acquire),
        )
    }

    /// At the end of a body window: the bytes received since `mark` when a body is open,
    /// none started since, and fewer than `min_bytes` came (the client is too slow).
    /// Moves `mark` to now otherwise.
    fn body_stalled(&self, mark: &mut (u64, u64), min_bytes: u64) -> Option<u64> {
        let now = self.body_mark();
        let got = now.1.saturating_sub(mark.1);
        if self.bodies_open.load(Ordering::Acquire) > 0 && now.0 == mark.0 && got < min_bytes {
            return Some(got);
        }
        *mark = now;
        None
    }
}

/// Live connections handed to the pipeline, keyed by the kernel's socket cookie.
#[derive(Default)]
pub struct Connections {
    map: Mutex<HashMap<u64, Arc<ConnInfo>>>,
}

impl Connections {
    pub fn get(&self, key: u64) -> Option<Arc<ConnInfo>> {
        self.map.lock().get(&key).cloned()
    }

    fn register(self: &Arc<Self>, key: u64, info: ConnInfo) -> ConnGuard {
        let info = Arc::new(info);
        self.map.lock().insert(key, info.clone());
        ConnGuard {
            conns: self.clone(),
            key,
            info,
        }
    }
}

/// Removes a connection from the registry when it ends.
struct ConnGuard {
    conns: Arc<Connections>,
    key: u64,
    info: Arc<ConnInfo>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns.map.lock().remove(&self.key);
    }
}

/// Counts a connection as active while alive.
struct ActiveGuard {
    _in_flight: InFlightGuard,
}

impl ActiveGuard {
    fn new(in_flight: &Arc<InFlight>) -> ActiveGuard {
        metrics::CONNECTIONS_ACTIVE.inc();
        ActiveGuard {
            _in_flight: in_flight.enter(Work::Connection),
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        metrics::CONNECTIONS_ACTIVE.dec();
    }
}

/// What this gateway still has to finish before it may stop: its listeners, the
/// connections its front door is serving (HTTP, intercepted and blind tunnels alike) and
/// the requests its pipeline is running.
///
/// A stopping gateway exits as soon as all three are at zero (see
/// [`crate::server::Prepared::run`]). Requests are counted as well as connections
/// because Pingora runs each HTTP/2 stream in a task of its own, which can still be
/// logging its request when the connection has already ended.
#[derive(Default)]
pub struct InFlight {
    listeners: AtomicUsize,
    connections: AtomicUsize,
    requests: AtomicUsize,
}

/// A kind of work counted by [`InFlight`].
#[derive(Clone, Copy)]
pub enum Work {
    Listener,
    Connection,
    Request,
}

impl InFlight {
    fn counter(&self, work: Work) -> &AtomicUsize {
        match work {
            Work::Listener => &self.listeners,
            Work::Connection => &self.connections,
            Work::Request => &self.requests,
        }
    }

    /// Counts `work` until the guard is dropped.
    pub fn enter(self: &Arc<Self>, work: Work) -> InFlightGuard {
        self.counter(work).fetch_add(1, Ordering::AcqRel);
        InFlightGuard {
            in_flight: self.clone(),
            work,
        }
    }

    /// Nothing left: every listener has stopped, every connection and request ended.
    pub fn is_idle(&self) -> bool {
        [Work::Listener, Work::Connection, Work::Request]
            .iter()
            .all(|w| self.counter(*w).load(Ordering::Acquire) == 0)
    }
}

/// Holds one unit of [`InFlight`] work.
pub struct InFlightGuard {
    in_flight: Arc<InFlight>,
    work: Work,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight
            .counter(self.work)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// The key of a connection in [`Connections`]: the socket cookie, unique for the life of
/// the kernel (Linux 4.13 and later).
pub fn connection_key(digest: Option<&pingora::protocols::SocketDigest>) -> Option<u64> {
    digest.and_then(|d| d.socket_cookie().ok())
}

/// Which kind of listener a [`Front`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Explicit,
    TransparentTls,
    TransparentHttp,
}

pub struct Front {
    pub shared: Arc<Shared>,
    pub http: Arc<pingora::proxy::HttpProxy<Gateway>>,
    pub listener: Listener,
    /// This service's listeners, counted in [`InFlight`] until Pingora has stopped them.
    pub listening: Mutex<Option<InFlightGuard>>,
}

/// CONNECTs answered `407` on one connection before it is closed.
const MAX_AUTH_ROUNDS: usize = 3;

/// How proxy authentication of a CONNECT ended.
enum ConnectAuth {
    /// Serve the tunnel, as this user when authentication is on.
    Proceed(Option<Arc<Identity>>),
    /// Answered `407`; the connection waits for the client's next request.
    AskedAgain,
    /// Answered and closed.
    Closed,
}

/// Largest CONNECT request head read before giving up on it.
const MAX_CONNECT_HEAD: usize = 16 * 1024;
/// Room for the first read of an explicit-proxy connection.
const READ_CHUNK: usize = 4096;
/// How long an HTTP/1 connection may wait for its next request between reads
/// (Pingora's default); the request head's own deadline is usually shorter.
const KEEPALIVE_SECONDS: u64 = 60;

#[async_trait]
impl ServerApp for Front {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _active = ActiveGuard::new(&self.shared.in_flight);
        let client = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().copied()));
        let client = client?;
        // The pipeline finds what the front door learnt of a connection (CONNECT target,
        // SNI, listener) by this key: without it no request could be routed.
        let Some(key) = connection_key(stream.get_socket_digest().as_deref()) else {
            tracing::error!(client = %client, "closed: the kernel gives no socket cookie to key the connection by");
            return None;
        };
        let mut l4 = match stream.into_any().downcast::<L4Stream>() {
            Ok(l4) => l4,
            Err(_) => return None,
        };
        if !self.shared.client_allowed(client.ip()) {
            metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
            tracing::info!(client = %client, "refused: client not in clients.allow");
            let _ = respond_plain(&mut l4, 403, "this gateway does not serve your address").await;
            return None;
        }
        match self.listener {
            Listener::Explicit => self.serve_explicit(l4, client, key, shutdown).await,
            Listener::TransparentHttp => {
                let conn = self
                    .shared
                    .connections
                    .register(key, ConnInfo::new(ConnMode::TransparentHttp, client));
                self.run_pipeline(l4, &conn.info, shutdown, Instant::now())
                    .await;
            }
            Listener::TransparentTls => self.serve_transparent_tls(l4, client, key, shutdown).await,
        }
        None
    }

    /// Runs once the listeners have stopped: connections waiting inside the pipeline for
    /// a next request close now rather than at the end of the grace period.
    async fn cleanup(&self) {
        ServerApp::cleanup(&*self.http).await;
        // Pingora calls this once every accept loop of the service has ended: no new
        // connection can arrive through it any more.
        self.listening.lock().take();
    }
}

impl Front {
    /// Serve HTTP requests on one connection through the pipeline until it ends; `started`
    /// is when the wait for its first request head began.
    ///
    /// HTTP/2 (chosen by ALPN) is Pingora's from start to end. HTTP/1 is served here one
    /// request per turn, as Pingora's own connection loop would (keep-alive, pipelined
    /// requests answered in order, no reuse once the gateway stops), so that every request
    /// head, not only the first, is held to `proxy.header_timeout_seconds`.
    async fn run_pipeline(
        &self,
        stream: Stream,
        conn: &ConnInfo,
        shutdown: &ShutdownWatch,
        started: Instant,
    ) {
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            let whole = ServerApp::process_new(&self.http, stream, shutdown);
            self.turn(whole, conn, started).await;
            return;
        }
        let mut session = ServerSession::new_http1(stream);
        // Pingora's defaults for a new connection; later turns carry the previous one's.
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_SECONDS));
        session.set_keepalive_reuses_remaining(
            self.http
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        session.set_pipelining_enabled(true);
        let mut started = started;
        loop {
            let one = self.http.process_new_http(session, shutdown);
            let Some(Some(reused)) = self.turn(one, conn, started).await else {
                return;
            };
            // The wait for the next request head starts when this answer has been sent.
            started = Instant::now();
            let (stream, settings) = reused.consume();
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                // Keep-alive, reuse count, and the bytes of a pipelined next request.
                settings.apply_to_session(&mut session);
            }
        }
    }

    /// One turn of the pipeline: one HTTP/1 request, or a whole HTTP/2 connection. A
    /// client that has not completed a request head within `proxy.header_timeout_seconds`
    /// of `started` (when the wait for it began) is cut off (slowloris). Once the head is
    /// in, the request takes the time it needs as long as its body keeps coming: each
    /// `proxy.body_timeout_seconds` window while a body is being received must bring
    /// `proxy.body_min_bytes`, or the connection is cut (a window in which a new body
    /// started is not judged). Waiting on the site is never held against the client.
    ///
    /// `None` when the connection was cut (dropping the turn closes it).
    async fn turn<T>(
        &self,
        turn: impl Future<Output = T>,
        conn: &ConnInfo,
        started: Instant,
    ) -> Option<T> {
        let before = conn.heads.load(Ordering::Acquire);
        tokio::pin!(turn);
        let proxy = &self.shared.config.proxy;
        let window = Duration::from_secs(proxy.body_timeout_seconds.max(1));
        // One timer per turn, set to whichever check is due first: the request head's
        // deadline (until a head arrives) or the next body window.
        let mut head_deadline = Some(started + self.header_timeout());
        let mut body_due = started + window;
        let mut mark = conn.body_mark();
        let timer = tokio::time::sleep_until(body_due.min(head_deadline.unwrap_or(body_due)));
        tokio::pin!(timer);
        loop {
            tokio::select! {
                done = &mut turn => return Some(done),
                () = &mut timer => {
                    let now = Instant::now();
                    if head_deadline.is_some_and(|d| now >= d) {
                        if conn.heads.load(Ordering::Acquire) == before {
                            head_timed_out(conn.client, started);
                            return None;
                        }
                        head_deadline = None;
                    }
                    if now >= body_due {
                        if let Some(got) = conn.body_stalled(&mut mark, proxy.body_min_bytes) {
                            metrics::CLIENT_TIMEOUTS_TOTAL.with_label_values(&["body"]).inc();
                            tracing::info!(
                                client = %conn.client,
                                received = got,
                                window_seconds = window.as_secs(),
                                "closed: request body slower than proxy.body_min_bytes per proxy.body_timeout_seconds"
                            );
                            return None;
                        }
                        body_due = now + window;
                    }
                    timer.as_mut().reset(body_due.min(head_deadline.unwrap_or(body_due)));
                }
            }
        }
    }

    fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.shared.config.proxy.header_timeout_seconds.max(1))
    }

    /// A connection to the explicit proxy: its first bytes tell a CONNECT from a plain
    /// request (absolute-form), which goes to the pipeline with those bytes put back. The
    /// connection then stays HTTP: a later CONNECT on it is refused by Pingora (405), as
    /// the pipeline may already hold it among pipelined bytes. Clients open a connection
    /// per tunnel. A CONNECT answered `407` may be followed by the next request on the
    /// same connection (a browser retrying with credentials), a few times.
    async fn serve_explicit(
        &self,
        mut l4: Box<L4Stream>,
        client: SocketAddr,
        key: u64,
        shutdown: &ShutdownWatch,
    ) {
        let mut started = Instant::now();
        let mut head = Vec::with_capacity(READ_CHUNK);
        let mut stopping = shutdown.clone();
        if *stopping.borrow_and_update() {
            return;
        }
        for _ in 0..=MAX_AUTH_ROUNDS {
            let deadline = started + self.header_timeout();
            // Enough to tell: eight bytes, or a first line shorter than "CONNECT ".
            while head.len() < 8 && !head.contains(&b'\n') {
                let read = tokio::time::timeout_at(deadline, async {
                    tokio::select! {
                        biased;
                        read = l4.read_buf(&mut head) => Some(read),
                        // The gateway stopping ends the wait for a first request.
                        _ = stopping.changed(), if head.is_empty() => None,
                    }
                });
                match read.await {
                    Ok(Some(Ok(n))) if n > 0 => {}
                    Ok(_) => return, // closed, failed, or the gateway is stopping
                    Err(_) => {
                        head_timed_out(client, started);
                        return;
                    }
                }
            }
            if !head.starts_with(b"CONNECT ") {
                l4.rewind(&head);
                // (Not held while the connection lives: idle connections are many.)
                drop(head);
                let conn = self
                    .shared
                    .connections
                    .register(key, ConnInfo::new(ConnMode::ExplicitPlain, client));
                self.run_pipeline(l4, &conn.info, shutdown, started).await;
                return;
            }
            let read = tokio::time::timeout_at(deadline, read_head(&mut l4, &mut head)).await;
            let end = match read {
                Ok(Ok(Head::Complete(end))) => end,
                Ok(Ok(Head::TooLarge)) => {
                    let _ = respond_plain(&mut l4, 431, "CONNECT request head too large").await;
                    return;
                }
                Ok(Ok(Head::BareLf)) => {
                    metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                    let reason = "malformed CONNECT request: lines must end with CRLF";
                    let _ = respond_plain(&mut l4, 400, reason).await;
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {
                    head_timed_out(client, started);
                    return;
                }
            };
            let leftover = head.split_off(end);
            let identity = match self.authenticate_connect(&mut l4, client, &head).await {
                ConnectAuth::Proceed(identity) => identity,
                ConnectAuth::AskedAgain => {
                    // The next request head starts with whatever followed this one.
                    head = leftover;
                    started = Instant::now();
                    continue;
                }
                ConnectAuth::Closed => return,
            };
            if !leftover.is_empty() {
                // A client that sent its ClientHello right behind the CONNECT.
                l4.rewind(&leftover);
            }
            self.serve_connect(l4, client, key, &head, identity, shutdown)
                .await;
            return;
        }
        tracing::info!(client = %client, "closed: proxy authentication failed too many times on one connection");
    }

    /// Proxy authentication of a CONNECT (the pipeline does the same for absolute-form
    /// requests, with the same [`crate::auth::Authenticator`]). Clients the identity
    /// headers are trusted from are not asked: the hop in front vouches for its users.
    async fn authenticate_connect(
        &self,
        l4: &mut L4Stream,
        client: SocketAddr,
        head: &[u8],
    ) -> ConnectAuth {
        let Some(auth) = self.shared.auth.as_deref() else {
            return ConnectAuth::Proceed(None);
        };
        if self.shared.identity_trusted(client.ip()) {
            return ConnectAuth::Proceed(None);
        }
        let header = proxy_authorization(head);
        let (status, reason) = match auth.authenticate(header.as_deref()).await {
            Verdict::Identified(identity) => return ConnectAuth::Proceed(Some(identity)),
            Verdict::Challenge(reason) => (407, reason),
            Verdict::Unavailable => (503, crate::pages::AUTH_UNAVAILABLE),
        };
        if status != 407 {
            // A challenge is a step of signing in (counted in permeable_auth_total), not
            // a refused tunnel: browsers send their first CONNECT without credentials.
            metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
        }
        let id = super::RequestId::new().to_string();
        let answer = self
            .shared
            .pages
            .auth_response(status, auth.challenges(), reason, &id, false);
        // After a 407 the client may try again on this connection; a 503 ends it.
        let keep_alive = status == 407;
        if respond_answer(l4, &answer, keep_alive).await.is_err() || !keep_alive {
            let _ = l4.shutdown().await;
            return ConnectAuth::Closed;
        }
        ConnectAuth::AskedAgain
    }

    async fn serve_connect(
        &self,
        mut l4: Box<L4Stream>,
        client: SocketAddr,
        key: u64,
        head: &[u8],
        identity: Option<Arc<Identity>>,
        shutdown: &ShutdownWatch,
    ) {
        let (host, port) = match parse_connect(head) {
            Ok(target) => target,
            Err(reason) => {
                metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                let _ = respond_plain(&mut l4, 400, &reason).await;
                return;
            }
        };
        if !self.shared.config.proxy.connect_ports.contains(&port) {
            metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
            let reason = format!("CONNECT to port {port} is not allowed by this gateway");
            tracing::info!(client = %client, host = %host, port, "refused: port not allowed");
            let _ = respond_plain(&mut l4, 403, &reason).await;
            return;
        }
        if self.shared.should_intercept(&host) {
            // Refuse private destinations before pretending the tunnel exists.
            if let Err(e @ ResolveError::Private(_)) =
                self.shared.resolver.resolve(&host, port).await
            {
                metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                let _ = respond_plain(&mut l4, 403, &e.to_string()).await;
                return;
            }
            if respond_established(&mut l4).await.is_err() {
                return;
            }
            metrics::TUNNELS_TOTAL
                .with_label_values(&["intercept"])
                .inc();
            self.intercept(l4, client, key, host, port, identity, shutdown)
                .await;
        } else {
            self.tunnel(l4, client, key, &host, port, identity, shutdown)
                .await;
        }
    }

    // (The connection's facts travel as they are learnt: a struct for them would be
    // rebuilt at every step.)
    #[allow(clippy::too_many_arguments)]
    async fn intercept(
        &self,
        l4: Box<L4Stream>,
        client: SocketAddr,
        key: u64,
        host: String,
        port: u16,
        identity: Option<Arc<Identity>>,
        shutdown: &ShutdownWatch,
    ) {
        // A client connecting to an IP address names no server (RFC 6066): the leaf is for
        // the address. Every other connection shares one configuration.
        let config = if names_an_address(&host) {
            crate::tls::addressed_server_config(self.shared.leaves.clone(), &host)
        } else {
            self.shared.tls.clone()
        };
        let acceptor = pingora::listeners::tls::Acceptor::from_server_config(config);
        // The handshake is part of the head: a client that connects and never finishes it
        // is cut off at the same deadline (and cannot hold a stopping gateway open).
        let handshake = tokio::time::timeout(self.header_timeout(), acceptor.tls_handshake(*l4));
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(client = %client, host = %host, error = %e, "client TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics::CLIENT_TIMEOUTS_TOTAL
                    .with_label_values(&["head"])
                    .inc();
                tracing::info!(client = %client, host = %host, "closed: TLS handshake not complete within proxy.header_timeout_seconds");
                return;
            }
        };
        let conn = self.shared.connections.register(
            key,
            ConnInfo::new(ConnMode::Intercepted { host, port }, client).with_identity(identity),
        );
        self.run_pipeline(Box::new(tls), &conn.info, shutdown, Instant::now())
            .await;
    }

    /// A blind tunnel: never decrypted, bytes copied both ways, unless the client's own
    /// TLS handshake names a site that is intercepted: a `CONNECT` to an IP address (or to
    /// another name) whose ClientHello asks for a catalogue site is intercepted and
    /// classified by that name, and the site is reached by its name, not by the address
    /// the client gave (what `curl --connect-to` does must not make a blind tunnel). A
    /// `CONNECT` to an address whose ClientHello names no server could be meant for any
    /// site: `proxy.tls_without_sni` says whether it is intercepted (the default; its
    /// requests must then name the address), relayed or closed.
    #[allow(clippy::too_many_arguments)]
    async fn tunnel(
        &self,
        mut l4: Box<L4Stream>,
        client: SocketAddr,
        key: u64,
        host: &str,
        port: u16,
        identity: Option<Arc<Identity>>,
        shutdown: &ShutdownWatch,
    ) {
        let addr = match self.shared.resolver.resolve(host, port).await {
            Ok(addr) => addr,
            Err(e) => {
                let (mode, status) = match e {
                    ResolveError::Private(_) => ("refused", 403),
                    ResolveError::Timeout => ("passthrough", 504),
                    ResolveError::NotFound(_) => ("passthrough", 502),
                };
                if mode == "refused" {
                    metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                    tracing::info!(client = %client, host, port, error = %e, "tunnel refused");
                } else {
                    metrics::UPSTREAM_ERRORS_TOTAL
                        .with_label_values(&["other", "dns"])
                        .inc();
                    tracing::warn!(client = %client, host, port, status, error = %e, "tunnel failed");
                }
                let _ = respond_plain(&mut l4, status, &e.to_string()).await;
                return;
            }
        };
        let connect_timeout = Duration::from_millis(self.shared.config.upstream.connect_timeout_ms);
        let mut upstream =
            match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics::UPSTREAM_ERRORS_TOTAL
                        .with_label_values(&["other", "connect"])
                        .inc();
                    let _ = respond_plain(
                        &mut l4,
                        502,
                        &format!("cannot connect to {host}:{port}: {e}"),
                    )
                    .await;
                    return;
                }
                Err(_) => {
                    metrics::UPSTREAM_ERRORS_TOTAL
                        .with_label_values(&["other", "timeout"])
                        .inc();
                    let _ = respond_plain(
                        &mut l4,
                        504,
                        &format!("connecting to {host}:{port} timed out"),
                    )
                    .await;
                    return;
                }
            };
        if respond_established(&mut l4).await.is_err() {
            return;
        }
        // What comes first: the client's ClientHello, or the other side's greeting (a
        // protocol where the server speaks first is not TLS, and is relayed as it is).
        let mut first = Vec::with_capacity(2048);
        let hello = tokio::select! {
            read = tokio::time::timeout(self.header_timeout(), read_hello(&mut l4, &mut first)) => match read {
                Ok(Ok(hello)) => hello,
                _ => return,
            },
            _ = upstream.readable() => crate::tls::HelloRead::NotTls,
        };
        match hello {
            crate::tls::HelloRead::Hello(Some(sni))
                if sni != host && self.shared.should_intercept(&sni) =>
            {
                drop(upstream);
                if let Err(e @ ResolveError::Private(_)) =
                    self.shared.resolver.resolve(&sni, port).await
                {
                    metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                    tracing::info!(client = %client, host, sni, error = %e, "tunnel refused");
                    return;
                }
                metrics::TUNNELS_TOTAL
                    .with_label_values(&["intercept"])
                    .inc();
                tracing::debug!(client = %client, host, sni, "intercepted by the name the client's TLS asks for");
                l4.rewind(&first);
                self.intercept(l4, client, key, sni, port, identity, shutdown)
                    .await;
                return;
            }
            crate::tls::HelloRead::Hello(None) if names_an_address(host) => {
                match self.shared.config.proxy.tls_without_sni {
                    WithoutSni::Relay => {}
                    WithoutSni::Refuse => {
                        metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                        tracing::info!(client = %client, host, "tunnel closed: TLS to an address without a server name (proxy.tls_without_sni: refuse)");
                        return;
                    }
                    WithoutSni::Intercept => {
                        // The Host of every request on it must then name the address.
                        drop(upstream);
                        metrics::TUNNELS_TOTAL
                            .with_label_values(&["intercept"])
                            .inc();
                        tracing::debug!(client = %client, host, "TLS to an address without a server name: intercepted");
                        l4.rewind(&first);
                        self.intercept(l4, client, key, host.to_string(), port, identity, shutdown)
                            .await;
                        return;
                    }
                }
            }
            crate::tls::HelloRead::Unreadable | crate::tls::HelloRead::Incomplete => {
                // A handshake the gateway cannot read could name anything: not relayed.
                metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                tracing::info!(client = %client, host, "tunnel closed: unreadable TLS ClientHello");
                return;
            }
            _ => {}
        }
        metrics::TUNNELS_TOTAL
            .with_label_values(&["passthrough"])
            .inc();
        let _ = upstream.set_nodelay(true);
        if !first.is_empty() && upstream.write_all(&first).await.is_err() {
            return;
        }
        match tokio::io::copy_bidirectional(&mut *l4, &mut upstream).await {
            Ok((up, down)) => {
                tracing::debug!(client = %client, host, port, up, down, "tunnel closed");
            }
            Err(e) => tracing::debug!(client = %client, host, port, error = %e, "tunnel ended"),
        }
    }

    async fn serve_transparent_tls(
        &self,
        mut l4: Box<L4Stream>,
        client: SocketAddr,
        key: u64,
        shutdown: &ShutdownWatch,
    ) {
        let deadline = Instant::now() + self.header_timeout();
        let mut hello = Vec::with_capacity(2048);
        let mut stopping = shutdown.clone();
        if *stopping.borrow_and_update() {
            return;
        }
        // A connection that has sent nothing yet is idle: the gateway stopping ends it,
        // as on the explicit listener.
        let first = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                biased;
                read = l4.read_buf(&mut hello) => matches!(read, Ok(n) if n > 0),
                _ = stopping.changed() => false,
            }
        });
        if first.await != Ok(true) {
            return;
        }
        let sni = match tokio::time::timeout_at(deadline, read_hello(&mut l4, &mut hello)).await {
            Ok(Ok(crate::tls::HelloRead::Hello(sni))) => sni,
            _ => return,
        };
        l4.rewind(&hello);
        let Some(host) = sni else {
            tracing::debug!(client = %client, "transparent TLS without SNI: closed");
            return;
        };
        if self.shared.should_intercept(&host) {
            metrics::TUNNELS_TOTAL
                .with_label_values(&["intercept"])
                .inc();
            self.intercept(l4, client, key, host, 443, None, shutdown)
                .await;
        } else {
            // Split-horizon DNS sent us something we do not inspect: relay it untouched.
            let addr = match self.shared.resolver.resolve(&host, 443).await {
                Ok(addr) => addr,
                Err(_) => {
                    metrics::TUNNELS_TOTAL.with_label_values(&["refused"]).inc();
                    return;
                }
            };
            let Ok(mut upstream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            metrics::TUNNELS_TOTAL
                .with_label_values(&["passthrough"])
                .inc();
            let _ = tokio::io::copy_bidirectional(&mut *l4, &mut upstream).await;
        }
    }
}

/// Where the request head in `buf` ends, once complete; `Err` at a line that ends with a
/// bare LF.
fn head_end(buf: &[u8]) -> Result<Option<usize>, ()> {
    for i in memchr::memchr_iter(b'\n', buf) {
        if i == 0 || buf[i - 1] != b'\r' {
            return Err(());
        }
        if i >= 3 && &buf[i - 3..i] == b"\r\n\r" {
            return Ok(Some(i + 1));
        }
    }
    Ok(None)
}

/// A client took longer than `proxy.header_timeout_seconds` to send a request head.
fn head_timed_out(client: SocketAddr, started: Instant) {
    metrics::CLIENT_TIMEOUTS_TOTAL
        .with_label_values(&["head"])
        .inc();
    tracing::info!(
        client = %client,
        waited_ms = started.elapsed().as_millis() as u64,
        "closed: request head not complete within proxy.header_timeout_seconds"
    );
}

/// How reading a CONNECT request head ended.
enum Head {
    /// Complete: the index after its blank line.
    Complete(usize),
    /// Longer than [`MAX_CONNECT_HEAD`].
    TooLarge,
    /// A line ends with a bare LF: framing that peers may read differently.
    BareLf,
}

/// Read until the end of the request head.
async fn read_head(l4: &mut L4Stream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    let mut chunk = [0u8; 4096];
    loop {
        match head_end(buf) {
            Err(()) => return Ok(Head::BareLf),
            Ok(Some(end)) => return Ok(Head::Complete(end)),
            Ok(None) if buf.len() > MAX_CONNECT_HEAD => return Ok(Head::TooLarge),
            Ok(None) => {}
        }
        let got = l4.read(&mut chunk).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Whether a line in `head` ends with LF alone.
pub fn has_bare_lf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r')
}

/// Read the first bytes of a connection until they are a whole ClientHello (across as
/// many records as it takes), or plainly not one; what was read is left in `buf`.
async fn read_hello(
    l4: &mut L4Stream,
    buf: &mut Vec<u8>,
) -> std::io::Result<crate::tls::HelloRead> {
    let mut chunk = [0u8; 4096];
    loop {
        match crate::tls::read_client_hello_sni(buf) {
            crate::tls::HelloRead::Incomplete
                if buf.len() <= crate::tls::MAX_CLIENT_HELLO + 1024 => {}
            crate::tls::HelloRead::Incomplete => return Ok(crate::tls::HelloRead::Unreadable),
            done => return Ok(done),
        }
        let got = l4.read(&mut chunk).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// Parse `CONNECT host:port HTTP/1.1` and validate the target.
pub fn parse_connect(head: &[u8]) -> Result<(String, u16), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete CONNECT request".into()),
        Err(e) => return Err(format!("malformed CONNECT request: {e}")),
    }
    let target = req.path.ok_or("CONNECT without a target")?;
    let (host, port) = crate::config::split_host_port(target)
        .ok_or_else(|| format!("bad CONNECT target {target:?}: expected host:port"))?;
    let valid_name = host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid_name && host.parse::<IpAddr>().is_err() {
        return Err(format!("bad CONNECT target {target:?}: not a host name"));
    }
    if port == 0 {
        return Err(format!("bad CONNECT target {target:?}: port 0"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Whether a CONNECT target is an address rather than a name: an IP address, or a host
/// whose last label is a number (`1760832001`, `0x68.0xf4.42.1`), which resolvers and
/// URL parsers (WHATWG "ends in a number") take for an IPv4 address. A client connecting
/// to one names no server in its ClientHello.
pub fn names_an_address(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    hex || (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
}

/// The `Proxy-Authorization` value of a request head, if it has one.
fn proxy_authorization(head: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(head).ok()?;
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| h.value.to_vec())
}

/// Write one of the gateway's own answers on a raw connection, kept alive or not.
async fn respond_answer(
    l4: &mut L4Stream,
    answer: &crate::pages::Answer,
    keep_alive: bool,
) -> std::io::Result<()> {
    let phrase = http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut msg = format!("HTTP/1.1 {} {phrase}\r\n", answer.status);
    for (name, value) in &answer.headers {
        msg.push_str(&format!("{name}: {}\r\n", value.replace(['\r', '\n'], " ")));
    }
    msg.push_str(&format!(
        "content-length: {}\r\nconnection: {}\r\n\r\n",
        answer.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    ));
    let mut bytes = msg.into_bytes();
    bytes.extend_from_slice(&answer.body);
    l4.write_all(&bytes).await?;
    l4.flush().await
}

async fn respond_established(l4: &mut L4Stream) -> std::io::Result<()> {
    l4.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    l4.flush().await
}

async fn respond_plain(l4: &mut L4Stream, status: u16, reason: &str) -> std::io::Result<()> {
    let phrase = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{reason}\n");
    let msg = format!(
        "HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nX-Permeable-Reason: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        reason.replace(['\r', '\n'], " ")
    );
    l4.write_all(msg.as_bytes()).await?;
    l4.flush().await?;
    l4.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets() {
        assert_eq!(
            parse_connect(b"CONNECT x.com:443 HTTP/1.1\r\nHost: x.com:443\r\n\r\n").unwrap(),
            ("x.com".into(), 443)
        );
        assert!(parse_connect(b"CONNECT x.com HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_connect(b"CONNECT a b:443 HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_connect(b"CONNECT bad/host:443 HTTP/1.1\r\n\r\n").is_err());
        assert_eq!(
            parse_connect(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n").unwrap(),
            ("::1".into(), 443)
        );
    }

    #[test]
    fn addresses_in_every_spelling_are_addresses() {
        for a in [
            "104.244.42.1",
            "::1",
            "2001:db8::1",
            "1760832001",
            "0x68f42a01",
            "104.244.10753",
            "0x68.0xf4.42.1",
            "104.244.42.1.",
        ] {
            assert!(names_an_address(a), "{a}");
        }
        for n in [
            "x.com",
            "1password.com",
            "api.0x.org",
            "a1",
            "0xcafe.example",
        ] {
            assert!(!names_an_address(n), "{n}");
        }
    }
}
