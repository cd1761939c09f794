//! The lean path: plain HTTP/1.1 requests without a body, relayed without Pingora.
//!
//! Most requests on the plain listeners (transparent HTTP, absolute-form requests on the
//! explicit listener) are page views: a GET or HEAD with no body and nothing to inspect.
//! The front door reads their head itself; this module classifies and decides them
//! exactly as the pipeline's `request_filter` does and, when the decision lets them
//! through unchanged (`allow` or `log`), relays them over its own keep-alive connections
//! to the site: the head is written upstream as received, less the identity and proxy
//! headers, and the answer is copied back as the site sent it. Metrics and the audit
//! event are recorded by the same [`crate::record::record_request`].
//!
//! Anything else is declined before a byte goes upstream and handed, unread, to the
//! pipeline, which stays the one place that answers it: a body, an upgrade, `Expect`,
//! HTTP/1.0, a `Connection` other than keep-alive, framing that is not plain (bare LF,
//! folded lines), a head Pingora would refuse, a block or coach decision, a rule that
//! needs the body, and the gateway's own `/.permeable/` endpoints.
//! `proxy.fast_path: false` sends every request through the pipeline.

use std::borrow::Cow;
use std::cell::RefCell;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::time::Instant;

use pingora::http::RequestHeader;
use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::front::{has_bare_lf, ConnInfo, ConnMode};
use super::{canonical_ip, note_failure, target_for, RequestCtx, Shared};
use crate::engine::policy::{Action, RequestHead};
use crate::pages::Answer;
use crate::upstream::ResolveError;

/// Request heads with more header lines than this go through the pipeline.
const MAX_HEADERS: usize = 100;
/// Largest response head accepted from a site.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Bytes read from the site at a time.
const READ_CHUNK: usize = 16 * 1024;
/// An idle connection to a site is not reused after this long (as the pipeline's pool).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per site address and worker thread, and in all per thread.
const IDLE_PER_ADDR: usize = 128;
const IDLE_PER_THREAD: usize = 1024;
/// How often idle connections past [`IDLE_TIMEOUT`] are closed, all sites together.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// What became of a request offered to the lean path.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered at the instant given; the client connection can carry the next request.
    KeepAlive(Instant),
    /// Answered (or the client went away); the connection ends here.
    Close,
    /// Not for the lean path: nothing was sent anywhere, the pipeline takes it.
    Declined,
}

/// Idle keep-alive connections to sites, per address, kept by each worker thread: each
/// worker runs its own runtime, a socket stays with the runtime that registered it, and a
/// runtime's threads end with it (and their idle connections with them). While a thread
/// holds idle connections, a task of its runtime closes those past [`IDLE_TIMEOUT`] every
/// [`SWEEP_EVERY`], so that a thread that sees no more traffic does not keep them (and
/// their descriptors) open; keeping a connection also sweeps, at most as often.
#[derive(Default)]
struct Pool {
    idle: foldhash::HashMap<SocketAddr, Vec<Idle>>,
    /// Idle connections held, all sites together.
    count: usize,
    /// When every site's list was last swept of expired connections.
    swept: Option<Instant>,
    /// The sweeping task is running.
    sweeping: bool,
}

/// A connection waiting for its next request, and since when. (tokio's clock: the same
/// as the system's, and one that tests can move.)
type Idle = (TcpStream, Instant);

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

impl Pool {
    /// An idle connection to `addr` the site has not closed, if there is one. (`now`, here
    /// and in [`Pool::put`]: a reading of the clock just taken.)
    fn take(addr: SocketAddr, now: Instant) -> Option<TcpStream> {
        POOL.with_borrow_mut(|pool| {
            // (An emptied list stays until the next sweep: no allocation per request.)
            let list = pool.idle.get_mut(&addr)?;
            while let Some((stream, since)) = list.pop() {
                pool.count = pool.count.saturating_sub(1);
                if now.saturating_duration_since(since) < IDLE_TIMEOUT && still_open(&stream) {
                    return Some(stream);
                }
            }
            None
        })
    }

    fn put(addr: SocketAddr, stream: TcpStream, now: Instant) {
        POOL.with_borrow_mut(|pool| {
            // Sites seen once must not keep their connections (and descriptors) forever.
            if pool
                .swept
                .is_none_or(|t| now.duration_since(t) >= SWEEP_EVERY)
            {
                pool.sweep(now);
            }
            if pool.count >= IDLE_PER_THREAD {
                return;
            }
            let list = pool.idle.entry(addr).or_default();
            if list.len() < IDLE_PER_ADDR {
                list.push((stream, now));
                pool.count += 1;
            }
            if pool.count > 0 && !pool.sweeping {
                pool.sweeping = true;
                tokio::spawn(Pool::sweep_while_idle());
            }
        })
    }

    /// Closes the connections idle for [`IDLE_TIMEOUT`] or longer.
    fn sweep(&mut self, now: Instant) {
        self.swept = Some(now);
        self.idle.retain(|_, list| {
            list.retain(|(_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
            !list.is_empty()
        });
        self.count = self.idle.values().map(Vec::len).sum();
    }

    /// The sweeping task: every [`SWEEP_EVERY`] while the thread holds idle connections.
    async fn sweep_while_idle() {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let holding = POOL.with_borrow_mut(|pool| {
                pool.sweep(Instant::now());
                pool.sweeping = pool.count > 0;
                pool.sweeping
            });
            if !holding {
                return;
            }
        }
    }
}

/// A timer kept by a connection for its successive waits. Deadlines mostly move later
/// (each wait ends a fixed time after it starts), so the timer is moved only when it has
/// to: a timer set for an earlier deadline is left alone, and when it fires before the
/// wait's own deadline it is set again, then. A wait thus costs no timer update, where
/// moving the timer each time (or a new timer per wait) updated the timer wheel.
///
/// Nor is the timer polled at every wait: once it holds the waker of the task that waits
/// (it wakes that task when it fires), a wait only checks whether it has fired, until it
/// is moved or another task waits.
pub struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The waker the timer holds, when it holds one.
    waker: Option<Waker>,
}

impl Default for Deadline {
    fn default() -> Deadline {
        Deadline {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            waker: None,
        }
    }
}

impl Deadline {
    /// `future`'s output, or `None` once `at` comes.
    pub async fn within<F: Future>(&mut self, at: Instant, future: F) -> Option<F::Output> {
        if self.sleep.deadline() > at {
            self.move_to(at);
        }
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            loop {
                let held = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
                let fired = if held {
                    self.sleep.is_elapsed()
                } else {
                    let fired = self.sleep.as_mut().poll(cx).is_ready();
                    if !fired {
                        self.waker = Some(cx.waker().clone());
                    }
                    fired
                };
                if !fired {
                    return Poll::Pending;
                }
                if Instant::now() >= at {
                    return Poll::Ready(None);
                }
                // Fired for an earlier wait's deadline: set for this one's.
                self.move_to(at);
            }
        })
        .await
    }

    fn move_to(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at);
        // (A moved timer is polled again before it is relied on to wake the task.)
        self.waker = None;
    }
}

/// What a client connection keeps between the requests it relays on the lean path.
#[derive(Default)]
pub struct Scratch {
    /// Copy buffer for the site's answers.
    buf: Vec<u8>,
    /// The request head as it is sent to the site.
    head: Vec<u8>,
    /// For reads from the site.
    timer: Deadline,
}

/// An idle connection the site has not closed (nor sent anything on).
fn still_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Serve one request whose complete head is `head` (without bare LF line ends, as the
/// front door finds heads); `scratch` is what the connection keeps between requests.
pub async fn serve(
    shared: &Shared,
    client: &mut L4Stream,
    conn: &Arc<ConnInfo>,
    head: &[u8],
    scratch: &mut Scratch,
) -> Outcome {
    let Scratch {
        buf,
        timer,
        head: upstream_head,
    } = scratch;
    let Some(admitted) = admit(shared, conn, head, upstream_head) else {
        return Outcome::Declined;
    };
    conn.heads.fetch_add(1, Ordering::Release);
    let Admitted {
        mut ctx,
        head_request,
        now,
    } = admitted;
    let sent = relay(
        shared,
        client,
        &mut ctx,
        (upstream_head, head_request, head),
        now,
        (buf, timer),
    )
    .await;
    crate::record::record_request_ended(
        shared,
        &ctx,
        sent.body_bytes,
        sent.status,
        sent.ended.into_std(),
    );
    if sent.keep_alive {
        Outcome::KeepAlive(sent.ended)
    } else {
        Outcome::Close
    }
}

/// A request the lean path takes: decided, with the head to send to the site.
struct Admitted {
    /// With its target. (Boxed: moved several times, where a pointer costs less to move.)
    ctx: Box<RequestCtx>,
    head_request: bool,
    /// When the decision was taken (a recent reading of the clock).
    now: Instant,
}

/// Parse, check, classify and decide; `None` declines the request.
/// The head to send to the site is written to `upstream_head`.
fn admit(
    shared: &Shared,
    conn: &Arc<ConnInfo>,
    head: &[u8],
    upstream_head: &mut Vec<u8>,
) -> Option<Admitted> {
    // (Uninitialised: the parser writes the fields it finds; filling 100 empty ones
    // first cost more than parsing a small head.)
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        _ => return None,
    }
    let method = req.method?;
    // (The front door hands over heads without bare LF line ends.)
    debug_assert!(!has_bare_lf(head));
    if req.version != Some(1) || !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let mut host_field = None;
    for h in req.headers.iter() {
        let name = h.name;
        // By length first: most fields are none of these.
        let declined = match name.len() {
            // A body or a protocol switch; or a connection not kept alive.
            6 => name.eq_ignore_ascii_case("expect"),
            7 => name.eq_ignore_ascii_case("upgrade"),
            14 => name.eq_ignore_ascii_case("content-length"),
            17 => name.eq_ignore_ascii_case("transfer-encoding"),
            10 => {
                name.eq_ignore_ascii_case("connection")
                    && !h.value.trim_ascii().eq_ignore_ascii_case(b"keep-alive")
            }
            4 if name.eq_ignore_ascii_case("host") => {
                if host_field.is_some() {
                    return None;
                }
                host_field = Some(visible_ascii(h.value)?);
                false
            }
            _ => false,
        };
        // Values the pipeline's header map would not take as text.
        if declined
            || !h
                .value
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
        {
            return None;
        }
    }

    let raw_target = req.path?;
    let transparent = matches!(conn.mode, ConnMode::TransparentHttp);
    let (origin_path, authority) = if transparent && origin_form(raw_target) {
        (Cow::Borrowed(raw_target), None)
    } else {
        let uri: http::Uri = raw_target.parse().ok()?;
        let origin_path = match &conn.mode {
            ConnMode::TransparentHttp if raw_target.starts_with('/') => {
                uri.path_and_query().map_or("/", |p| p.as_str())
            }
            ConnMode::ExplicitPlain if uri.scheme_str() == Some("http") => "",
            _ => return None,
        };
        let authority = uri.authority().map(|a| a.as_str().to_string());
        (Cow::Owned(origin_path.to_string()), authority)
    };
    let (target, rewrite) = target_for(
        &conn.mode,
        raw_target.as_bytes(),
        authority.as_deref(),
        host_field,
    )
    .ok()?;
    let path = rewrite.clone().unwrap_or_else(|| origin_path.into_owned());
    if path.starts_with("/.permeable/") {
        return None;
    }

    let client_ip = Some(canonical_ip(conn.client.ip()));
    let policy = shared.policy.load_full();
    let field = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| visible_ascii(h.value))
    };
    let (user, group) = shared.identify(client_ip, field);
    let identity = &shared.config.clients.identity;
    let request = RequestHead {
        method: crate::engine::policy::method_name(method),
        scheme: "http".into(),
        host: target.host.clone(),
        path,
        headers: req
            .headers
            .iter()
            .filter(|h| crate::engine::policy::engine_reads(h.name))
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        group: (group != "unknown").then(|| group.to_string()),
        client: client_ip,
    };
    // The request counts from here: one clock reading starts it and its inspection
    // (classifying and deciding), one ends the inspection.
    let started = Instant::now();
    let class = policy.classify(&request);
    let mut decided = None;
    if class.site.is_some() {
        if class.needs_body {
            return None;
        }
        let decision = policy.decide_untraced(&request, &class, None);
        if !matches!(decision.action, Action::Allow | Action::Log) {
            return None;
        }
        decided = Some((decision, Instant::now()));
    }
    let mut ctx = Box::new(RequestCtx::started_at(started.into_std()));
    ctx.conn = Some(conn.clone());
    ctx.rewrite_uri = rewrite;
    (ctx.user, ctx.group) = (user, group);
    ctx.target = Some(target);
    let now = match decided {
        Some((decision, at)) => {
            ctx.inspection = at - started;
            ctx.decision = Some(decision);
            at
        }
        None => started,
    };

    // The head as received, with the request line in origin form and without the
    // identity and proxy headers.
    upstream_head.clear();
    upstream_head.extend_from_slice(method.as_bytes());
    upstream_head.push(b' ');
    upstream_head.extend_from_slice(request.path.as_bytes());
    upstream_head.extend_from_slice(b" HTTP/1.1\r\n");
    let stripped = |name: &str| {
        let proxy_field = match name.len() {
            16 => name.eq_ignore_ascii_case("proxy-connection"),
            19 => name.eq_ignore_ascii_case("proxy-authorization"),
            _ => false,
        };
        proxy_field
            || name.eq_ignore_ascii_case(&identity.user_header)
            || name.eq_ignore_ascii_case(&identity.group_header)
    };
    // The parser's fields are slices of `head`: a stripped field's line starts at its
    // name's offset and ends at the next LF. The lines between are copied in runs.
    let base = head.as_ptr() as usize;
    let mut kept_from = memchr::memchr(b'\n', head)? + 1;
    for h in req.headers.iter() {
        if stripped(h.name) {
            let start = h.name.as_ptr() as usize - base;
            let end = start + memchr::memchr(b'\n', &head[start..])? + 1;
            upstream_head.extend_from_slice(&head[kept_from..start]);
            kept_from = end;
        }
    }
    upstream_head.extend_from_slice(&head[kept_from..]);

    ctx.head = Some(request);
    ctx.class = Some(class);
    ctx.policy = Some(policy);
    Some(Admitted {
        ctx,
        head_request: method == "HEAD",
        now,
    })
}

/// A request target in origin form made only of characters that URIs take as they are
/// (letters, digits, `-._~!$&'()*+,;=:@/?%`): the pipeline's URI parser would keep it
/// unchanged as the path and query, so the lean path skips that parser.
fn origin_form(target: &str) -> bool {
    const PLAIN: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            table[b] = (b as u8).is_ascii_alphanumeric();
            b += 1;
        }
        let marks = b"-._~!$&'()*+,;=:@/?%";
        let mut i = 0;
        while i < marks.len() {
            table[marks[i] as usize] = true;
            i += 1;
        }
        table
    };
    target.starts_with('/') && target.bytes().all(|b| PLAIN[b as usize])
}

fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// What the client was sent.
struct Sent {
    /// The connection can carry the next request.
    keep_alive: bool,
    body_bytes: u64,
    status: u16,
    /// When the answer ended.
    ended: Instant,
}

/// Why a site could not be reached or read: status, metric kind, reason.
type Failure = (u16, &'static str, &'static str);

const TIMED_OUT: Failure = (504, "timeout", "the site did not answer in time");
const RESET: Failure = (502, "reset", "the site closed the connection");
const INVALID: Failure = (502, "protocol", "the site sent an invalid response");

/// Send the request (`upstream_head`, for the client's `head`) to the site and its answer
/// to the client; `now` is a recent reading of the clock; `buf` and `timer` are the
/// connection's copy buffer and timer.
async fn relay(
    shared: &Shared,
    client: &mut L4Stream,
    ctx: &mut RequestCtx,
    (upstream_head, head_request, head): (&[u8], bool, &[u8]),
    now: Instant,
    (buf, timer): (&mut Vec<u8>, &mut Deadline),
) -> Sent {
    let resolved = match ctx.target.as_ref() {
        Some(t) => shared.resolver.resolve(&t.host, t.port).await,
        None => Err(ResolveError::NotFound("no target".into())),
    };
    let addr = match resolved {
        Ok(addr) => addr,
        Err(e) => {
            let (status, kind) = e.status_and_kind();
            let reason = e.to_string();
            return fail(shared, client, ctx, head, (status, kind, &reason), &e).await;
        }
    };
    let up = &shared.config.upstream;
    let read_timeout = Duration::from_millis(up.read_timeout_ms);

    // Send the request and read the answer's head; a reused connection that the site
    // closed meanwhile is replaced once (GET and HEAD can be sent again).
    let mut reuse = true;
    let (mut site, mut head_end, mut answer) = loop {
        let pooled = if reuse { Pool::take(addr, now) } else { None };
        let reused = pooled.is_some();
        let mut site = match pooled {
            Some(site) => site,
            None => match connect(addr, up.connect_timeout_ms).await {
                Ok(site) => site,
                Err((failure, e)) => return fail(shared, client, ctx, head, failure, &e).await,
            },
        };
        buf.clear();
        let exchanged = match site.write_all(upstream_head).await {
            Ok(()) => read_head(&mut site, buf, timer, read_timeout, Some(now), head_request).await,
            Err(_) => Err(RESET),
        };
        match exchanged {
            Ok((end, answer)) => break (site, end, answer),
            Err(failure) if reused && buf.is_empty() && failure != TIMED_OUT => reuse = false,
            Err(failure) => return fail(shared, client, ctx, head, failure, &failure.2).await,
        }
    };

    // Interim answers (100, 103) go to the client as they are; then the final one.
    while (100..200).contains(&answer.status) {
        if answer.status == 101 || write_client(client, &buf[..head_end]).await.is_err() {
            return closed(answer.status);
        }
        buf.drain(..head_end);
        (head_end, answer) =
            match read_head(&mut site, buf, timer, read_timeout, None, head_request).await {
                Ok(next) => next,
                Err(failure) => return lost(ctx, failure, answer.status),
            };
    }
    let status = answer.status;

    // Forward the head and the body bytes that came with it, then the rest of the body.
    let mut framing = answer.framing;
    let mut body_bytes = 0u64;
    let mut complete = false;
    let mut start = 0;
    let mut from = head_end;
    loop {
        let (take, done) = match framing.advance(&buf[from..]) {
            Ok(step) => step,
            Err(()) => {
                let _ = write_client(client, &buf[start..from]).await;
                return lost(ctx, INVALID, status);
            }
        };
        body_bytes += framing.payload(take) as u64;
        if write_client(client, &buf[start..from + take])
            .await
            .is_err()
        {
            return closed(status);
        }
        if done {
            // Bytes after the end of the answer: the connection is out of step.
            complete = from + take == buf.len();
            break;
        }
        buf.clear();
        match read_some(&mut site, buf, timer, read_timeout, None).await {
            Ok(0) if framing == Framing::UntilClose => break,
            Ok(0) => return lost(ctx, RESET, status),
            Ok(_) => {}
            Err(failure) => return lost(ctx, failure, status),
        }
        start = 0;
        from = 0;
    }
    let keep_alive = answer.keep_alive && framing != Framing::UntilClose;
    let ended = Instant::now();
    if complete && keep_alive {
        Pool::put(addr, site, ended);
    }
    Sent {
        keep_alive,
        body_bytes,
        status,
        ended,
    }
}

/// The client went away mid-answer.
fn closed(status: u16) -> Sent {
    Sent {
        keep_alive: false,
        body_bytes: 0,
        status,
        ended: Instant::now(),
    }
}

/// The site failed after its answer had begun: nothing more can be told to the client.
fn lost(ctx: &RequestCtx, failure: Failure, status: u16) -> Sent {
    let (_, kind, reason) = failure;
    note_failure(ctx, 502, kind, reason, &"answer cut short");
    closed(status)
}

async fn connect(
    addr: SocketAddr,
    timeout_ms: u64,
) -> Result<TcpStream, (Failure, std::io::Error)> {
    let timeout = Duration::from_millis(timeout_ms);
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            Err(((502, "connect", "the site refused the connection"), e))
        }
        Ok(Err(e)) => Err(((502, "connect", "cannot connect to the site"), e)),
        Err(_) => Err((TIMED_OUT, ErrorKind::TimedOut.into())),
    }
}

/// Read until `buf` holds a complete response head: its length, and what it says. The
/// first wait starts at `now` when given (a reading of the clock just taken).
async fn read_head(
    site: &mut TcpStream,
    buf: &mut Vec<u8>,
    timer: &mut Deadline,
    timeout: Duration,
    mut now: Option<Instant>,
    head_request: bool,
) -> Result<(usize, Answered), Failure> {
    loop {
        // (Nothing to parse before the first read: the answer to a request just sent.)
        if !buf.is_empty() {
            let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut []);
            match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut resp,
                buf,
                &mut headers,
            ) {
                Ok(httparse::Status::Complete(n)) => {
                    return answer_of(&resp, head_request)
                        .map(|a| (n, a))
                        .ok_or(INVALID)
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => {}
                _ => return Err(INVALID),
            }
        }
        match read_some(site, buf, timer, timeout, now.take()).await {
            Ok(0) => return Err(RESET),
            Ok(_) => {}
            Err(failure) => return Err(failure),
        }
    }
}

/// Read what the site has sent into `buf`: at once when it is there (no timer is set),
/// else waiting at most `timeout` from `now` (the clock is read when not given).
/// `Ok(0)`: the site closed the connection.
async fn read_some(
    site: &mut TcpStream,
    buf: &mut Vec<u8>,
    timer: &mut Deadline,
    timeout: Duration,
    now: Option<Instant>,
) -> Result<usize, Failure> {
    buf.reserve(READ_CHUNK);
    match site.try_read_buf(buf) {
        Ok(n) => return Ok(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(_) => return Err(RESET),
    }
    let at = now.unwrap_or_else(Instant::now) + timeout;
    match timer.within(at, site.read_buf(buf)).await {
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) => Err(RESET),
        None => Err(TIMED_OUT),
    }
}

/// What the client needs to know about the site's answer.
struct Answered {
    status: u16,
    framing: Framing,
    /// Both connections may carry another request afterwards.
    keep_alive: bool,
}

fn answer_of(resp: &httparse::Response<'_, '_>, head_request: bool) -> Option<Answered> {
    let status = resp.code?;
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in resp.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("connection") {
            if value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                keep_alive = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = std::str::from_utf8(value).ok()?.parse().ok()?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    let bodiless = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = match (bodiless, chunked, length) {
        (true, _, _) => Framing::Length(0),
        (_, Some(true), _) => Framing::Chunked(Chunked::default()),
        (_, Some(false), _) => Framing::UntilClose,
        (_, None, Some(n)) => Framing::Length(n),
        (_, None, None) => Framing::UntilClose,
    };
    Some(Answered {
        status,
        framing,
        keep_alive,
    })
}

/// Where the body of an answer ends.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunked),
    /// Until the site closes the connection.
    UntilClose,
}

impl Framing {
    /// Of the body bytes `input`, how many belong to this answer, and whether it is complete.
    fn advance(&mut self, input: &[u8]) -> Result<(usize, bool), ()> {
        match self {
            Framing::Length(left) => {
                let take = (*left).min(input.len() as u64);
                *left -= take;
                Ok((take as usize, *left == 0))
            }
            Framing::Chunked(c) => Ok(match c.feed(input)? {
                Some(end) => (end, true),
                None => (input.len(), false),
            }),
            Framing::UntilClose => Ok((input.len(), false)),
        }
    }

    /// Payload bytes among the last `taken` body bytes (chunk framing excluded).
    fn payload(&mut self, taken: usize) -> usize {
        match self {
            Framing::Chunked(c) => std::mem::take(&mut c.fresh_data) as usize,
            _ => taken,
        }
    }
}

/// Follows chunked framing byte by byte, without decoding anything.
#[derive(Debug, Default, PartialEq, Eq)]
struct Chunked {
    state: ChunkState,
    /// Size of the chunk being read (while in its size line), then what is left of it.
    size: u64,
    digits: u8,
    /// Payload bytes since the last [`Framing::payload`].
    fresh_data: u64,
}

#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
enum ChunkState {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// A trailer line with this many bytes so far (0: the blank line that ends the body).
    Trailer(usize),
    TrailerLf(usize),
}

/// Largest trailer line accepted.
const MAX_TRAILER_LINE: usize = 16 * 1024;

impl Chunked {
    /// Take in `input`; `Some(n)` when the body ends after its first `n` bytes.
    fn feed(&mut self, input: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                Size => match (b as char).to_digit(16) {
                    Some(d) if self.digits < 16 => {
                        self.size = self.size * 16 + u64::from(d);
                        self.digits += 1;
                    }
                    None if self.digits > 0 && matches!(b, b';' | b' ' | b'\t') => {
                        self.state = Extension
                    }
                    None if self.digits > 0 && b == b'\r' => self.state = SizeLf,
                    _ => return Err(()),
                },
                Extension => match b {
                    b'\r' => self.state = SizeLf,
                    b'\n' => return Err(()),
                    _ => {}
                },
                SizeLf if b == b'\n' => {
                    self.digits = 0;
                    self.state = if self.size == 0 { Trailer(0) } else { Data };
                }
                Data => {
                    let take = self.size.min((input.len() - i) as u64);
                    self.size -= take;
                    self.fresh_data += take;
                    i += take as usize;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr if b == b'\r' => self.state = DataLf,
                DataLf if b == b'\n' => self.state = Size,
                Trailer(n) if b == b'\r' => self.state = TrailerLf(n),
                Trailer(n) if b != b'\n' && n < MAX_TRAILER_LINE => self.state = Trailer(n + 1),
                TrailerLf(0) if b == b'\n' => return Ok(Some(i + 1)),
                TrailerLf(_) if b == b'\n' => self.state = Trailer(0),
                _ => return Err(()),
            }
            i += 1;
        }
        Ok(None)
    }
}

async fn write_client(client: &mut L4Stream, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    client.write_all(bytes).await?;
    client.flush().await
}

/// Answer with the gateway's error page (as the pipeline's `fail_to_proxy` does) and close.
async fn fail(
    shared: &Shared,
    client: &mut L4Stream,
    ctx: &mut RequestCtx,
    head: &[u8],
    failure: (u16, &'static str, &str),
    error: &(dyn std::fmt::Display + Sync),
) -> Sent {
    let (status, kind, reason) = failure;
    note_failure(ctx, status, kind, reason, error);
    let req = request_header(head);
    let answer = shared
        .pages
        .error_response(status, reason, &ctx.id.to_string(), &req);
    ctx.answered = Some(status);
    let body_bytes = answer.body.len() as u64;
    let head_request = req.method == http::Method::HEAD;
    let _ = write_client(client, &serialize(answer, head_request)).await;
    Sent {
        keep_alive: false,
        body_bytes,
        status,
        ended: Instant::now(),
    }
}

/// The client's request as the pages see it (method, path and header fields).
fn request_header(head: &[u8]) -> RequestHeader {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let _ = req.parse(head);
    let path = req.path.unwrap_or("/");
    let mut out = RequestHeader::build(req.method.unwrap_or("GET"), path.as_bytes(), None)
        .or_else(|_| RequestHeader::build("GET", b"/", None))
        .expect("a constant request line");
    for h in req.headers.iter() {
        let _ = out.append_header(h.name.to_string(), h.value);
    }
    out
}

/// An [`Answer`] as HTTP/1.1 bytes, closing the connection.
fn serialize(answer: Answer, head_request: bool) -> Vec<u8> {
    let phrase = http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!("HTTP/1.1 {} {phrase}\r\n", answer.status).into_bytes();
    let mut has_length = false;
    for (name, value) in &answer.headers {
        has_length |= name.eq_ignore_ascii_case("content-length");
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !has_length {
        out.extend_from_slice(format!("content-length: {}\r\n", answer.body.len()).as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    if !head_request {
        out.extend_from_slice(&answer.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_site_connections_are_closed_without_further_traffic() {
        let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = site.local_addr().unwrap();
        let ours = TcpStream::connect(addr).await.unwrap();
        let (mut theirs, _) = site.accept().await.unwrap();
        Pool::put(addr, ours, Instant::now());
        let held = || POOL.with_borrow(|p| (p.count, p.sweeping));
        assert_eq!(held(), (1, true));
        // Nothing else happens on this thread: the sweeping task alone closes it.
        tokio::time::sleep(IDLE_TIMEOUT + SWEEP_EVERY * 2).await;
        assert_eq!(held(), (0, false));
        let mut byte = [0u8; 1];
        assert_eq!(
            theirs.read(&mut byte).await.unwrap(),
            0,
            "the site sees it closed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_timer_ends_each_wait_at_its_own_deadline() {
        use tokio::time::{sleep_until, Instant};
        let s = Duration::from_secs;
        let never = std::future::pending::<()>;
        let mut timer = Deadline::default();
        let t0 = Instant::now();
        // Done in time.
        let quick = timer
            .within(t0 + s(10), async { sleep_until(t0 + s(1)).await })
            .await;
        assert_eq!((quick, Instant::now()), (Some(()), t0 + s(1)));
        // A later deadline: the timer, still set for t0+10, must not end this wait then.
        let long = timer
            .within(t0 + s(20), async { sleep_until(t0 + s(15)).await })
            .await;
        assert_eq!((long, Instant::now()), (Some(()), t0 + s(15)));
        // A wait that never ends ends at its deadline, not before.
        assert_eq!(timer.within(t0 + s(30), never()).await, None);
        assert_eq!(Instant::now(), t0 + s(30));
        // A deadline earlier than the one the timer is set for.
        let _ = timer.within(t0 + s(100), async {}).await;
        assert_eq!(timer.within(t0 + s(35), never()).await, None);
        assert_eq!(Instant::now(), t0 + s(35));
    }

    fn run(chunks: &[&[u8]]) -> Result<Option<(usize, usize)>, ()> {
        let mut c = Chunked::default();
        for (k, chunk) in chunks.iter().enumerate() {
            if let Some(end) = c.feed(chunk)? {
                return Ok(Some((k, end)));
            }
        }
        Ok(None)
    }

    #[test]
    fn chunked_framing_ends_where_the_body_ends() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nGET";
        assert_eq!(run(&[body]), Ok(Some((0, body.len() - 3))));
        // Split anywhere, byte by byte.
        let bytes: Vec<&[u8]> = body[..body.len() - 3].chunks(1).collect();
        assert_eq!(run(&bytes), Ok(Some((bytes.len() - 1, 1))));
        // Trailers.
        let trailed = b"1\r\na\r\n0\r\nx-sum: 1\r\n\r\n";
        assert_eq!(run(&[trailed]), Ok(Some((0, trailed.len()))));
        let mut c = Chunked::default();
        assert_eq!(c.feed(b"A\r\n0123456789\r\n"), Ok(None));
        assert_eq!(c.fresh_data, 10);
        // Not chunked framing.
        assert!(run(&[b"zz\r\n"]).is_err());
        assert!(run(&[b"\r\n"]).is_err());
        assert!(run(&[b"3\r\nabcX\r\n"]).is_err());
        assert!(run(&[b"3\nabc"]).is_err());
        assert!(run(&[b"11111111111111111\r\n"]).is_err());
    }

    fn parse_answer(head: &[u8], head_request: bool) -> Option<Answered> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(head).ok()?;
        answer_of(&resp, head_request)
    }

    #[test]
    fn answers_are_framed_as_the_site_said() {
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false).unwrap();
        assert_eq!(
            (a.status, a.framing, a.keep_alive),
            (200, Framing::Length(5), true)
        );
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert_eq!(a.framing, Framing::Length(0));
        let a = parse_answer(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(a.framing, Framing::Length(0));
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(matches!(a.framing, Framing::Chunked(_)));
        let a = parse_answer(b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n", false).unwrap();
        assert_eq!((a.framing, a.keep_alive), (Framing::UntilClose, false));
        let a = parse_answer(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).unwrap();
        assert!(!a.keep_alive);
        assert!(parse_answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_none());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).is_none());
    }

    #[test]
    fn origin_form_targets_are_what_the_uri_parser_keeps() {
        let kept = |t: &str| {
            t.parse::<http::Uri>()
                .ok()
                .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
        };
        let targets = [
            "/",
            "/home",
            "/i/api/graphql/abc123/HomeTimeline?variables=%7B%22count%22%3A20%7D&x=1",
            "/a/b;c=d/@e:f/~g!$&'()*+,=",
            "/?",
            "/search?q=a+b&src=typed_query",
        ];
        for t in targets {
            assert!(origin_form(t), "{t}");
            assert_eq!(kept(t).as_deref(), Some(t));
        }
        // Every other byte goes through the parser (which may change or refuse it).
        for b in 0..=255u8 {
            let t = format!("/a{}", b as char);
            if origin_form(&t) {
                assert_eq!(kept(&t).as_deref(), Some(t.as_str()), "byte {b:#04x}");
            }
        }
        for t in [
            "/a#frag",
            "/a b",
            "/a\"b",
            "/{x}",
            "*",
            "http://x.com/",
            "/é",
            "",
        ] {
            assert!(!origin_form(t), "{t}");
        }
    }
}
