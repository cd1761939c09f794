//! The HTTP pipeline on Pingora: one place per phase, each calling into the engine.
//!
//! A request's life (see also README "How it works"):
//!
//! | phase | what permeable does |
//! |---|---|
//! | [`front`] (before HTTP) | client allow-list; CONNECT → intercept or blind tunnel; transparent SNI; every other connection, plain HTTP included, → the phases below, one HTTP/1 request per turn, with a deadline for each request head and a floor of progress for each body |
//! | `request_filter` | target (CONNECT target, absolute-form URL or Host) and its checks; identity and group; **classify** (site, activity); buffer the body when it is inspected and small enough to decide before the upstream is contacted; **decide**; answer block/coach pages at once |
//! | `upstream_peer` | resolve the target asynchronously (overrides, private ranges refused), TLS to the real site with verification |
//! | `upstream_request_filter` | rewrite absolute-form targets, strip identity and proxy headers, fix Content-Length after redaction |
//! | `request_body_filter` | replay the decided body (redacted when the decision says so); for large or chunked inspected bodies, hold every chunk back until the end, then decide: a block aborts before any byte of the body is sent |
//! | `upstream_response_filter` | note how the site framed its answer |
//! | `response_filter` | the site's answer goes on as it came: on redaction, tell the client what was redacted; an answer the site ended by closing is relayed the same way |
//! | `logging` | metrics and the audit event, for every request, errors included |
//!
//! A block is a decision, not an error: [`crate::engine::policy::Decision`] stays a plain value and
//! becomes a response only here, at the edge, through [`crate::pages`].

pub mod failure;
pub mod front;
pub mod record;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;

use self::failure::{Failure, FailureKind};
use crate::audit::Audit;
use crate::config::Config;
use crate::engine::policy::{Action, Classification, Decision, Policy, RequestHead};
use crate::metrics;
use crate::pages::{self, Pages};
use crate::upstream::Resolver;
use front::{ConnInfo, ConnMode, Connections, InFlight, InFlightGuard, Work};

/// Bodies up to this size are read whole before the upstream is contacted and decided
/// first; Pingora replays them from its retry buffer, which holds this much.
const PREREAD_LIMIT: usize = 64 * 1024;

/// State shared by every connection and request; the policy is swapped atomically on reload.
pub struct Shared {
    pub config: Config,
    pub policy: Arc<ArcSwap<Policy>>,
    pub resolver: Resolver,
    pub tls: Arc<rustls::ServerConfig>,
    /// Where `tls` takes its leaves from (a connection to an address gets a configuration
    /// of its own, see `tls::addressed_server_config`).
    pub leaves: Arc<crate::tls::LeafResolver>,
    pub connections: Arc<Connections>,
    /// What must finish before a stopping gateway exits.
    pub in_flight: Arc<InFlight>,
    pub pages: Pages,
    pub audit: Audit,
    pub groups: metrics::GroupAnonymizer,
    pub shared_domains: metrics::SharedDomains,
    /// Proxy authentication on the explicit proxy, when `auth.methods` names a method.
    pub auth: Option<Arc<crate::auth::Authenticator>>,
}

/// Who sent a request, as far as the gateway knows.
pub struct Who {
    pub user: Option<String>,
    /// The policy group; `None` when no source names one (metrics and the audit trail
    /// then say `unknown`).
    pub group: Option<String>,
    /// How the user was established: `negotiate`, `basic` or `header`.
    pub auth: Option<&'static str>,
    /// The directory could not be asked and `auth.on_unavailable: address` applied.
    pub degraded: bool,
}

impl Shared {
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.config
            .clients
            .allow
            .iter()
            .any(|net| net.contains(&ip))
    }

    /// Whether a CONNECT to `host` is decrypted.
    pub fn should_intercept(&self, host: &str) -> bool {
        match self.config.proxy.intercept {
            crate::config::InterceptMode::Catalogue => self
                .policy
                .load()
                .site_for_host(host)
                .is_some_and(|site| site.intercept),
            crate::config::InterceptMode::All => !self
                .config
                .proxy
                .bypass
                .iter()
                .any(|d| domain_matches(d, host)),
        }
    }

    /// Whether identity headers are believed from `ip` (`clients.identity.trusted`).
    pub fn identity_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.config
            .clients
            .identity
            .trusted
            .iter()
            .any(|n| n.contains(&ip))
    }

    /// Whether `group` is one the configuration names (by address or from the directory):
    /// only those become metric labels.
    pub fn known_group(&self, group: &str) -> bool {
        self.config.clients.groups.contains_key(group)
            || self.config.auth.groups.iter().any(|m| m.group == group)
    }

    /// Who sent a request. In order of precedence:
    /// 1. identity headers from a trusted hop (`clients.identity.trusted`): it authenticated
    ///    the user and speaks for them, so its word beats anything the gateway could infer;
    /// 2. the user who authenticated on this connection, and the policy group of their
    ///    directory groups;
    /// 3. the group of the client's address (`clients.groups`), for whatever 1 and 2 leave
    ///    open (an authenticated user in no mapped directory group keeps their address's).
    fn identify<'h>(
        &self,
        client_ip: Option<IpAddr>,
        conn: Option<&ConnInfo>,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Who {
        let identity = &self.config.clients.identity;
        let trusted = client_ip.is_some_and(|ip| self.identity_trusted(ip));
        let (mut user, mut group, mut auth) = (None, None, None);
        if trusted {
            user = header(&identity.user_header).map(str::to_string);
            group = header(&identity.group_header)
                .filter(|g| *g != "unknown")
                .map(str::to_string);
            auth = user.is_some().then_some("header");
        }
        let mut degraded = false;
        if let Some(id) = conn.and_then(|c| c.identity.get()) {
            if user.is_none() {
                user = id.user.clone();
                auth = Some(id.method_name());
                degraded = id.degraded;
            }
            group = group.or_else(|| id.group.clone());
        }
        let group = group.or_else(|| client_ip.and_then(|ip| self.group_of(ip)));
        Who {
            user,
            group,
            auth,
            degraded,
        }
    }

    fn group_of(&self, ip: IpAddr) -> Option<String> {
        let ip = canonical_ip(ip);
        self.config
            .clients
            .groups
            .iter()
            .find(|(_, nets)| nets.iter().any(|n| n.contains(&ip)))
            .map(|(g, _)| g.clone())
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `example.com` matches exactly; `*.example.com` or `.example.com` any subdomain.
pub fn domain_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if let Some(suffix) = pattern
        .strip_prefix("*.")
        .or_else(|| pattern.strip_prefix('.'))
    {
        host.len() > suffix.len()
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
    } else {
        host == pattern
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// How the request body is handled.
#[derive(Debug, Default)]
enum BodyMode {
    /// Streamed through untouched.
    #[default]
    Passthrough,
    /// Read whole in `request_filter` and decided; `replacement` is the redacted body.
    Decided {
        replacement: Option<Bytes>,
        sent: bool,
    },
    /// Held back chunk by chunk, decided at the end of the body.
    Held { buffer: Vec<u8>, overflowed: bool },
}

/// Per-request state, from the first phase to `logging`.
pub struct RequestCtx {
    pub id: RequestId,
    started: Instant,
    pub conn: Option<Arc<ConnInfo>>,
    /// This request's body counts as open on its connection (see the front door's checks).
    body_open: bool,
    pub target: Option<Target>,
    /// Path and query to send upstream when the request came in absolute form.
    rewrite_uri: Option<String>,
    policy: Option<Arc<Policy>>,
    pub(crate) head: Option<RequestHead>,
    class: Option<Classification>,
    pub decision: Option<Arc<Decision>>,
    body: BodyMode,
    /// The client's policy group once identified (a configured group's name, or what a
    /// trusted identity header says); `None` while no source names one.
    pub group: Option<String>,
    pub user: Option<String>,
    /// How the user was established (`negotiate`, `basic`, `header`).
    pub auth: Option<&'static str>,
    /// The directory could not be asked and `auth.on_unavailable: address` applied.
    pub auth_degraded: bool,
    /// A refusal or failure the gateway answered itself.
    refusal: Option<Failure>,
    /// The gateway answered with its own page (block, coach, refusal).
    pub answered: Option<u16>,
    inspection: Duration,
    coached_continue: bool,
    bytes_up: usize,
    /// Domains of the links an inspected post shares (usage analytics; domains only).
    link_domains: Vec<String>,
    /// The site's answer has a body that ends when the site closes its connection (HTTP/1
    /// with neither Content-Length nor Transfer-Encoding).
    answer_ends_at_close: bool,
    /// Counts this request as in flight until its context is dropped, after `logging`.
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    fn new(in_flight: InFlightGuard) -> RequestCtx {
        RequestCtx {
            id: RequestId::new(),
            started: Instant::now(),
            conn: None,
            body_open: false,
            target: None,
            rewrite_uri: None,
            policy: None,
            head: None,
            class: None,
            decision: None,
            body: BodyMode::Passthrough,
            group: None,
            user: None,
            auth: None,
            auth_degraded: false,
            refusal: None,
            answered: None,
            inspection: Duration::ZERO,
            coached_continue: false,
            bytes_up: 0,
            link_domains: Vec::new(),
            answer_ends_at_close: false,
            _in_flight: in_flight,
        }
    }
    pub fn class_ref(&self) -> Option<&Classification> {
        self.class.as_ref()
    }
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.conn.as_ref().map(|c| canonical_ip(c.client.ip()))
    }
    /// The time since the request's start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    pub fn inspection_time(&self) -> Duration {
        self.inspection
    }
    pub fn bytes_up(&self) -> usize {
        self.bytes_up
    }
    /// Report request body progress to the connection; `end` closes this request's body.
    fn body_progress(&mut self, bytes: usize, end: bool) {
        let Some(conn) = self.conn.as_deref() else {
            return;
        };
        if bytes > 0 {
            conn.body_received(bytes);
        }
        if end && self.body_open {
            self.body_open = false;
            conn.body_ended();
        }
    }
    /// The inspection hash key of the rule set this request was decided with (the live
    /// one when it was refused before any).
    pub fn policy_hash_key(&self) -> &[u8] {
        self.policy
            .as_deref()
            .map_or(&[], |p| &p.options().hash_key)
    }
    /// Version of the rule set this request was decided with.
    pub fn rules_version(&self) -> &str {
        self.policy.as_deref().map_or("", |p| p.version())
    }
    pub fn coached_continue(&self) -> bool {
        self.coached_continue
    }
    pub fn shared_link_domains(&self) -> &[String] {
        &self.link_domains
    }
}

/// Host names of the http(s) links in a body, JSON-escaped slashes included.
fn link_domains(body: &[u8]) -> Vec<String> {
    static LINK: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r"(?i)https?(?::|%3A)(?:\\?/|%2F){2}([a-z0-9][a-z0-9.-]{0,252})")
            .expect("constant regex")
    });
    let mut out: Vec<String> = LINK
        .captures_iter(body)
        .filter_map(|c| c.get(1))
        .map(|m| {
            String::from_utf8_lossy(m.as_bytes())
                .trim_end_matches('.')
                .to_ascii_lowercase()
        })
        .collect();
    out.sort();
    out.dedup();
    out.truncate(32);
    out
}

/// A request's id: a random number from the thread's CSPRNG (seeded once per thread, so
/// that naming a request costs no system call), shown as 16 hex digits, formatted only
/// when shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    fn new() -> RequestId {
        RequestId(rand::random())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The [`ProxyHttp`] implementation: the pipeline's phases.
pub struct Gateway {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    /// A request's state, made when Pingora starts reading its head; counted in flight
    /// until the request ends (a stop waits for it).
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.shared.in_flight.enter(Work::Request))
    }

    /// What the front door learnt of an HTTP/1 connection goes on to its next request,
    /// which then finds it without asking the kernel for the socket's cookie.
    fn persist_connection_context(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
    ) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        ctx.conn
            .clone()
            .map(|conn| Box::new(conn) as Box<dyn std::any::Any + Send + Sync>)
    }

    /// Runs before a kept-alive HTTP/1 connection's next request: it gets what
    /// `persist_connection_context` kept of the previous one.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
        prev_ctx: Box<dyn std::any::Any + Send + Sync>,
    ) {
        if let Ok(conn) = prev_ctx.downcast::<Arc<ConnInfo>>() {
            ctx.conn = Some(*conn);
        }
    }

    /// Runs first for every request, once its head is read. In order: the connection it
    /// came on; framing that could smuggle (refused); proxy authentication on the explicit
    /// proxy; the target and the client's agreement with it; who the client is; the
    /// request head the engine reads and its classification; the decision (reading a small
    /// body first when it is inspected); and enforcement. `Ok(true)` when the gateway
    /// answered the request itself (a refusal, a 407, a block or coach page), `Ok(false)`
    /// when it goes on to the site.
    ///
    /// What only some requests await (signing in, the gateway's own answers) is boxed
    /// where it is awaited: `async_trait` moves this phase's whole future into a box for
    /// every request, and signing in alone (GSSAPI, LDAP) would make it about 10 KiB.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let policy = self.shared.policy.load_full();
        ctx.policy = Some(policy.clone());
        self.attach_connection(session, ctx);
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| canonical_ip(a.ip()));

        // Ambiguous framing is how requests are smuggled: refused before anything else.
        let raw_head = session.as_http1().map(|h1| h1.get_headers_raw_bytes());
        if let Some(reason) = framing_error(raw_head.as_deref(), session.req_header()) {
            return Box::pin(self.answer_refusal(session, ctx, Failure::bad_request(reason))).await;
        }
        // Signing in's future is large (GSS-API and LDAP state): boxed, so that only the
        // requests that sign in carry it.
        if self.plain_auth_due(ctx, client_ip) {
            if let Some(answered) = Box::pin(self.authenticate_plain(session, ctx)).await? {
                return Ok(answered);
            }
        }
        let target = match resolve_target(session, ctx.conn.as_deref()) {
            Ok((target, rewrite)) => {
                ctx.rewrite_uri = rewrite;
                target
            }
            Err(reason) => {
                let answer = self.answer_refusal(session, ctx, Failure::bad_request(reason));
                return Box::pin(answer).await;
            }
        };
        ctx.target = Some(target.clone());
        let who = self
            .shared
            .identify(client_ip, ctx.conn.as_deref(), |name| {
                header_str(session.req_header(), name)
            });
        (ctx.user, ctx.group, ctx.auth, ctx.auth_degraded) =
            (who.user, who.group, who.auth, who.degraded);

        let head = engine_head(session.req_header(), ctx, &target, client_ip);
        let class = policy.classify(&head);
        if class.site.is_none() {
            // Not a catalogue site: forwarded untouched, never inspected.
            ctx.head = Some(head);
            ctx.class = Some(class);
            return Ok(false);
        }
        if self
            .decide_request(session, ctx, &policy, &head, &class)
            .await?
        {
            return Ok(true);
        }
        ctx.head = Some(head);
        ctx.class = Some(class);
        self.enforce(session, ctx, &target.host).await
    }

    /// Runs when the request goes on to the site (after `request_filter` returned
    /// `Ok(false)`): the site's address (resolved asynchronously, non-global addresses
    /// refused) and how to reach it — verified TLS under the site's name, the client's
    /// protocol, timeouts. An `Err` ends in `fail_to_proxy`; Pingora reuses a pooled
    /// connection to the same peer when it has one.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(target) = ctx.target.clone() else {
            return Err(Error::explain(ErrorType::InternalError, "no target"));
        };
        let addr = match self
            .shared
            .resolver
            .resolve(&target.host, target.port)
            .await
        {
            Ok(addr) => addr,
            Err(e) => {
                let failure = Failure::from(&e);
                let error = Error::explain(ErrorType::HTTPStatus(failure.status), e.to_string());
                ctx.refusal = Some(failure);
                return Err(error);
            }
        };
        let mut peer = HttpPeer::new(addr, target.tls, target.host.clone());
        let up = &self.shared.config.upstream;
        peer.options.connection_timeout = Some(Duration::from_millis(up.connect_timeout_ms));
        peer.options.total_connection_timeout = Some(Duration::from_millis(up.connect_timeout_ms));
        let timeout = Duration::from_millis(up.read_timeout_ms);
        if request_has_body(session.req_header()) {
            // The site answers only after the whole body: a long upload must not count as
            // a silent upstream. A stalled upstream still shows as a write that times out.
            peer.options.write_timeout = Some(timeout);
        } else {
            peer.options.read_timeout = Some(timeout);
        }
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        // The site is spoken to in the client's own protocol, so that its answer keeps the
        // site's framing (an HTTP/1.1 client asking an HTTP/2 site would get a chunked
        // answer where the site sent none). A body held back for a late decision goes over
        // HTTP/1.1: chunked framing lets its length change, and an abort there reaches the
        // client as our answer.
        let held = matches!(ctx.body, BodyMode::Held { .. });
        if target.tls && up.http2 && session.is_http2() && !session.is_upgrade_req() && !held {
            peer.options.set_http_version(2, 1);
        } else {
            peer.options.set_http_version(1, 1);
        }
        Ok(Box::new(peer))
    }

    /// Runs on the head about to go to the site: the request target as decided (a
    /// redacted query, origin form), the gateway's own and the proxy's fields removed, and
    /// the framing the body will have (the replacement's length, or chunked for a body
    /// decided at its end).
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A redaction in the query string rewrites the target; an absolute-form target is
        // sent in origin form.
        let redacted = ctx.decision.as_ref().and_then(|d| d.target.as_deref());
        if let Some(uri) = redacted.or(ctx.rewrite_uri.as_deref()) {
            let uri: http::Uri = uri
                .parse()
                .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, "bad request target"))?;
            upstream_request.set_uri(uri);
        }
        let identity = &self.shared.config.clients.identity;
        for name in [
            identity.user_header.as_str(),
            identity.group_header.as_str(),
            "proxy-connection",
            "proxy-authorization",
        ] {
            upstream_request.remove_header(name);
        }
        match &ctx.body {
            BodyMode::Decided {
                replacement: Some(body),
                ..
            } => {
                upstream_request
                    .insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
            }
            BodyMode::Held { .. } => {
                // The body may change length after the decision: send it chunked.
                upstream_request.remove_header(&http::header::CONTENT_LENGTH);
                if upstream_request.version != http::Version::HTTP_2 {
                    upstream_request.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs on each piece of the request body on its way to the site (and once more at its
    /// end): passed through, replaced by the redacted body decided up front, or held back
    /// and decided at the end (or once it outgrows `inspection.max_body`). An `Err` (a block
    /// decided at the end) aborts the upstream request before any of the body has left.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !matches!(ctx.body, BodyMode::Decided { .. }) {
            // (A pre-read body was counted as it was read; this is its replay.)
            let len = body.as_ref().map_or(0, |b| b.len());
            ctx.body_progress(len, end_of_stream || session.was_upgraded());
        }
        match &mut ctx.body {
            BodyMode::Passthrough => {
                ctx.bytes_up += body.as_ref().map_or(0, |b| b.len());
            }
            BodyMode::Decided { replacement, sent } => {
                if let Some(new_body) = replacement.take() {
                    *body = Some(new_body);
                    *sent = true;
                } else if *sent {
                    *body = Some(Bytes::new());
                }
            }
            BodyMode::Held { .. } => self.held_body(session, body, end_of_stream, ctx)?,
        }
        Ok(())
    }

    /// Runs on the site's answer head as it arrived, before Pingora frames it for the client.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if !upstream_response.status.is_informational() {
            ctx.answer_ends_at_close = ends_at_close(session.req_header(), upstream_response);
        }
        Ok(())
    }

    /// Runs on the answer head about to go to the client. The answer is the site's: only a
    /// redaction adds fields (`x-permeable-*`), and an answer the site ended by closing is
    /// relayed the same way (see docs/security.md, "Answers arrive as the site sent them").
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.answer_ends_at_close && session.as_http1().is_some() {
            // Pingora makes such an answer chunked to keep the client's connection
            // (pingora-proxy's proxy_h1.rs), a Transfer-Encoding the site never sent:
            // without it the body ends when the client's connection closes, as the site's
            // did.
            upstream_response.remove_header(&http::header::TRANSFER_ENCODING);
            session.set_keepalive(None);
        }
        if let Some(decision) = ctx.decision.as_ref() {
            if decision.action == Action::Redact
                && (decision.body.is_some() || decision.target.is_some())
            {
                upstream_response.insert_header("x-permeable-action", "redact")?;
                if let Some(rule) = decision.rule.as_deref() {
                    upstream_response.insert_header("x-permeable-rule", rule)?;
                }
                upstream_response
                    .insert_header("x-permeable-redacted", pages::redaction_summary(decision))?;
                // The id that finds this decision in the audit trail, as on block pages.
                upstream_response.insert_header("x-permeable-request-id", ctx.id.to_string())?;
            }
        }
        Ok(())
    }

    /// Runs when the request could not be relayed: a block decided while the body
    /// streamed gets its page; anything else is logged and counted once and answered with
    /// the failure's status and reason (0: the client is gone, nothing to answer).
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // A block decided while the body streamed: answer with the decision's page.
        if ctx
            .decision
            .as_ref()
            .is_some_and(|d| matches!(d.action, Action::Block | Action::Coach))
            && ctx.answered.is_none()
        {
            let _ = self.answer_decision(session, ctx).await;
            return FailToProxy {
                error_code: 403,
                can_reuse_downstream: false,
            };
        }
        let failure = ctx.refusal.take().unwrap_or_else(|| Failure::from(e));
        note_failure(ctx, &failure, e);
        let Failure { status, reason, .. } = failure;
        if status > 0 {
            // The connection ends after this answer (`can_reuse_downstream: false`): say so.
            session.set_keepalive(None);
            let resp = self.shared.pages.error_response(
                status,
                &reason,
                &ctx.id.to_string(),
                session.req_header(),
            );
            ctx.answered = Some(status);
            let _ = pages::write(session, resp).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Failures the gateway answered itself were logged, once and concisely, by
    /// `fail_to_proxy`.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        ctx.answered.is_some()
    }

    /// Runs last for every request, relayed, answered or failed: metrics and the audit
    /// event.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        ctx.body_progress(0, true);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        record::record_request(&self.shared, ctx, session.body_bytes_sent() as u64, status);
    }
}

impl Gateway {
    /// The connection this request came on (its mode, identity and counters), when the
    /// front door registered it; counts the head and notes a body that starts.
    fn attach_connection(&self, session: &Session, ctx: &mut RequestCtx) {
        if ctx.conn.is_none() {
            // The first request on its connection (or any on HTTP/2); later HTTP/1
            // requests got it from `on_connection_reuse`.
            ctx.conn =
                front::connection_key(session.digest().and_then(|d| d.socket_digest.as_deref()))
                    .and_then(|k| self.shared.connections.get(k));
        }
        if let Some(conn) = ctx.conn.as_deref() {
            conn.heads
                .fetch_add(1, std::sync::atomic::Ordering::Release);
            if request_has_body(session.req_header()) {
                conn.body_started();
                ctx.body_open = true;
            }
        }
    }

    /// The decision for a catalogue request, in `ctx.decision` or, for a body decided at
    /// its end, a held body mode. A body it inspects that is small enough is read whole
    /// first (the site is not contacted before the decision); one announced larger than
    /// `inspection.max_body` is decided now without it. `Ok(true)` when the gateway
    /// answered (a body longer than its Content-Length).
    async fn decide_request(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policy: &Policy,
        head: &RequestHead,
        class: &Classification,
    ) -> Result<bool> {
        if !class.needs_body {
            ctx.decision = Some(self.timed_decide(ctx, policy, head, class, None));
            return Ok(false);
        }
        match content_length(session.req_header()) {
            Some(len) if len > policy.options().max_body => {
                // Too large to inspect: decided now, before a byte is read.
                ctx.decision = Some(self.timed_decide(ctx, policy, head, class, None));
            }
            Some(len) if len <= PREREAD_LIMIT => {
                session.enable_retry_buffering();
                let mut body = Vec::with_capacity(len);
                while let Some(chunk) = session.read_request_body().await? {
                    ctx.body_progress(chunk.len(), false);
                    body.extend_from_slice(&chunk);
                    if body.len() > PREREAD_LIMIT {
                        let reason = "request body longer than its Content-Length";
                        let answer =
                            self.answer_refusal(session, ctx, Failure::bad_request(reason));
                        return Box::pin(answer).await;
                    }
                }
                ctx.body_progress(0, true);
                ctx.bytes_up = body.len();
                ctx.link_domains = link_domains(&body);
                let decision = self.timed_decide(ctx, policy, head, class, Some(&body));
                let replacement = decision.body.as_ref().map(|b| Bytes::from(b.clone()));
                ctx.body = BodyMode::Decided {
                    replacement,
                    sent: false,
                };
                ctx.decision = Some(decision);
            }
            _ => {
                ctx.body = BodyMode::Held {
                    buffer: Vec::new(),
                    overflowed: false,
                };
            }
        }
        Ok(false)
    }

    /// Enforcement of a decision made before the site is contacted: a block is answered
    /// with its page; a coach too, unless this user acknowledged it for this site and rule;
    /// and the gateway's own coach "Continue" endpoint is answered here. `Ok(true)` when the
    /// gateway answered.
    async fn enforce(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        host: &str,
    ) -> Result<bool> {
        if let Some(decision) = ctx.decision.as_ref() {
            match decision.action {
                Action::Block => return Box::pin(self.answer_decision(session, ctx)).await,
                Action::Coach => {
                    if self.shared.pages.coach_acknowledged(
                        session.req_header(),
                        host,
                        decision.rule.as_deref(),
                        ctx.user.as_deref(),
                    ) {
                        ctx.coached_continue = true;
                    } else {
                        return Box::pin(self.answer_decision(session, ctx)).await;
                    }
                }
                _ => {}
            }
        }
        if let Some(resp) =
            self.shared
                .pages
                .coach_continue(session.req_header(), host, ctx.user.as_deref())
        {
            ctx.answered = Some(resp.status);
            Box::pin(pages::write(session, resp)).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A piece of a body decided at its end: kept back (an empty piece stands for "nothing
    /// yet") until the body ends or outgrows `inspection.max_body`, then decided and sent
    /// as decided (untouched or redacted) or, on a block or an unacknowledged coach,
    /// refused with nothing of it sent. A body that outgrew the limit is decided without
    /// its content, and the rest of it passes as it comes.
    fn held_body(
        &self,
        session: &Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let BodyMode::Held { buffer, overflowed } = &mut ctx.body else {
            return Ok(());
        };
        if let Some(chunk) = body.take() {
            ctx.bytes_up += chunk.len();
            if !*overflowed {
                buffer.extend_from_slice(&chunk);
            } else {
                *body = Some(chunk);
            }
        }
        let policy = ctx.policy.clone();
        let (Some(policy), Some(head), Some(class)) = (policy, ctx.head.clone(), ctx.class.clone())
        else {
            return Ok(());
        };
        let max_body = policy.options().max_body;
        let (too_large, done) = (buffer.len() > max_body && !*overflowed, end_of_stream);
        if too_large || (done && !*overflowed) {
            let held = std::mem::take(buffer);
            let mut decision = if too_large {
                *overflowed = true;
                self.timed_decide_only(&policy, &head, &class, None, &mut ctx.inspection)
            } else {
                self.timed_decide_only(&policy, &head, &class, Some(&held), &mut ctx.inspection)
            };
            if decision.target.is_some() {
                // The request line went to the site with the headers: a query that
                // needed redacting can no longer be, so nothing of the body follows.
                decision = Arc::new(held_query_blocked(&decision));
            }
            let action = decision.action;
            let new_body = decision.body.clone();
            let acknowledged = action == Action::Coach
                && self.shared.pages.coach_acknowledged(
                    session.req_header(),
                    ctx.target.as_ref().map_or("", |t| t.host.as_str()),
                    decision.rule.as_deref(),
                    ctx.user.as_deref(),
                );
            ctx.coached_continue = acknowledged;
            ctx.decision = Some(decision);
            match action {
                Action::Block | Action::Coach if !acknowledged => {
                    // Nothing of the body has left; abort the upstream request.
                    ctx.body = BodyMode::Passthrough;
                    return Err(Error::explain(
                        ErrorType::HTTPStatus(403),
                        "blocked by policy",
                    ));
                }
                _ => {
                    *body = Some(Bytes::from(new_body.unwrap_or(held)));
                }
            }
        } else if !*overflowed && body.is_none() {
            // Hold the chunk back: an empty chunk is "nothing yet", None would end the body.
            if !end_of_stream {
                *body = Some(Bytes::new());
            }
        }
        Ok(())
    }

    fn timed_decide(
        &self,
        ctx: &mut RequestCtx,
        policy: &Policy,
        head: &RequestHead,
        class: &Classification,
        body: Option<&[u8]>,
    ) -> Arc<Decision> {
        self.timed_decide_only(policy, head, class, body, &mut ctx.inspection)
    }

    fn timed_decide_only(
        &self,
        policy: &Policy,
        head: &RequestHead,
        class: &Classification,
        body: Option<&[u8]>,
        spent: &mut Duration,
    ) -> Arc<Decision> {
        let start = Instant::now();
        let decision = policy.decide_untraced(head, class, body);
        *spent += start.elapsed();
        decision
    }

    async fn answer_decision(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let Some(decision) = ctx.decision.as_ref() else {
            return Ok(false);
        };
        let host = ctx.target.as_ref().map_or("", |t| t.host.as_str());
        let req = session.req_header();
        // The site's own error shape for this endpoint, from the rule set that decided.
        let refusal = ctx
            .policy
            .as_deref()
            .zip(decision.site.as_deref())
            .and_then(|(policy, site)| policy.site_by_id(site))
            .and_then(|site| site.refusal_for(host, req.uri.path()));
        let resp = self.shared.pages.decision_response(
            decision,
            &ctx.id.to_string(),
            host,
            req,
            refusal,
            ctx.user.as_deref(),
        );
        ctx.answered = Some(resp.status);
        pages::write(session, resp).await?;
        Ok(true)
    }

    /// Whether [`Self::authenticate_plain`] has anything to do for this request.
    fn plain_auth_due(&self, ctx: &RequestCtx, client_ip: Option<IpAddr>) -> bool {
        let shared = &self.shared;
        let (Some(_), Some(conn)) = (shared.auth.as_deref(), ctx.conn.as_deref()) else {
            return false;
        };
        conn.mode == ConnMode::ExplicitPlain
            && conn.identity.get().is_none()
            && !client_ip.is_some_and(|ip| shared.identity_trusted(ip))
    }

    /// Proxy authentication of an absolute-form request on the explicit proxy (the front
    /// door does CONNECTs, with the same [`crate::auth::Authenticator`]), run when
    /// [`Self::plain_auth_due`] says so: only until the connection has authenticated, and
    /// never for a trusted hop. `Some` when the gateway answered (407 or 503).
    async fn authenticate_plain(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<bool>> {
        let shared = &self.shared;
        let (Some(auth), Some(conn)) = (shared.auth.as_deref(), ctx.conn.as_deref()) else {
            return Ok(None);
        };
        let header = session
            .req_header()
            .headers
            .get(http::header::PROXY_AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let (status, reason) = match auth.authenticate(header.as_deref()).await {
            crate::auth::Verdict::Identified(identity) => {
                let _ = conn.identity.set(identity);
                return Ok(None);
            }
            crate::auth::Verdict::Challenge(reason) => (407, reason),
            crate::auth::Verdict::Unavailable => (503, pages::AUTH_UNAVAILABLE),
        };
        let resp = shared.pages.auth_response(
            status,
            auth.challenges(),
            reason,
            &ctx.id.to_string(),
            pages::is_navigation(session.req_header()),
        );
        ctx.refusal = Some(Failure::new(status, FailureKind::Auth, reason));
        ctx.answered = Some(status);
        // The client tries again on this connection after a 407, unless a body it sent
        // would first have to be read through; a 503 ends it.
        if status != 407 || request_has_body(session.req_header()) {
            session.set_keepalive(None);
        }
        pages::write(session, resp).await?;
        Ok(Some(true))
    }

    async fn answer_refusal(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        failure: Failure,
    ) -> Result<bool> {
        let resp = self.shared.pages.error_response(
            failure.status,
            &failure.reason,
            &ctx.id.to_string(),
            session.req_header(),
        );
        ctx.answered = Some(failure.status);
        ctx.refusal = Some(failure);
        session.set_keepalive(None);
        pages::write(session, resp).await?;
        Ok(true)
    }
}

/// A redaction decided at the end of a held body that needed the query string rewritten:
/// the request line had already gone to the site with the headers, so the request is
/// blocked instead.
fn held_query_blocked(decision: &Decision) -> Decision {
    let mut d = decision.clone();
    d.action = Action::Block;
    d.body = None;
    d.target = None;
    d.message = Some(
        "The address of this request carried content that had to be redacted, and it could not be rewritten in time, so the request was not sent. Post the text in the message itself."
            .into(),
    );
    d
}

/// Log and count a request the gateway could not relay: a refusal is the client's doing
/// (counted by `requests_total{action="refused"}`), anything else the site's.
fn note_failure(ctx: &RequestCtx, failure: &Failure, error: &dyn std::fmt::Display) {
    let host = ctx.target.as_ref().map_or("", |t| t.host.as_str());
    let Failure {
        status,
        kind,
        ref reason,
    } = *failure;
    let kind = kind.as_str();
    if failure.kind.is_clients() {
        tracing::info!(request_id = %ctx.id, host, status, reason = %reason, "request refused");
    } else {
        let site = ctx
            .class
            .as_ref()
            .and_then(|c| c.site.as_deref())
            .unwrap_or(metrics::OTHER);
        metrics::UPSTREAM_ERRORS_TOTAL
            .with_label_values(&[site, kind])
            .inc();
        tracing::warn!(request_id = %ctx.id, host, kind, status, error = %error, "upstream failed");
    }
}

/// The request as the engine reads it: method, scheme, host, the path as sent to the site
/// (origin form), the header fields the engine reads, and who sent it.
fn engine_head(
    req: &RequestHeader,
    ctx: &RequestCtx,
    target: &Target,
    client_ip: Option<IpAddr>,
) -> RequestHead {
    let path = ctx.rewrite_uri.clone().unwrap_or_else(|| {
        req.uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string()
    });
    RequestHead {
        method: crate::engine::policy::method_name(req.method.as_str()),
        scheme: if target.tls { "https" } else { "http" }.into(),
        host: target.host.clone(),
        path,
        headers: req
            .headers
            .iter()
            .filter(|(k, _)| crate::engine::policy::engine_reads(k.as_str()))
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        group: ctx.group.clone(),
        client: client_ip,
    }
}

/// Work out the target of a request and check that the client's own statements agree.
fn resolve_target(
    session: &Session,
    conn: Option<&ConnInfo>,
) -> std::result::Result<(Target, Option<String>), String> {
    let req = session.req_header();
    let mode = conn.map_or(&ConnMode::ExplicitPlain, |c| &c.mode);
    target_for(
        mode,
        req.raw_path(),
        req.uri.authority().map(|a| a.as_str()),
        header_str(req, "host"),
    )
}

/// The target of a request on a connection in `mode`, from its request target as sent
/// (`raw_path`), the authority parsed from it and its Host header; with the origin-form
/// path to send upstream when the request came in absolute form.
fn target_for(
    mode: &ConnMode,
    raw_path: &[u8],
    authority: Option<&str>,
    host_field: Option<&str>,
) -> std::result::Result<(Target, Option<String>), String> {
    let host_header = authority.or(host_field);
    match mode {
        ConnMode::Intercepted { host, port } => {
            if let Some(h) = host_header {
                let (claimed, _) = split_authority(h);
                if !claimed.eq_ignore_ascii_case(host) {
                    return Err(format!(
                        "Host {claimed:?} does not match the CONNECT target {host:?}"
                    ));
                }
            }
            Ok((
                Target {
                    host: host.clone(),
                    port: *port,
                    tls: true,
                },
                None,
            ))
        }
        ConnMode::TransparentHttp => {
            let h = host_header.ok_or("request without a Host header")?;
            let (host, port) = split_authority(h);
            if host.is_empty() {
                return Err("request without a Host header".into());
            }
            Ok((
                Target {
                    host: host.to_ascii_lowercase(),
                    port: port.unwrap_or(80),
                    tls: false,
                },
                None,
            ))
        }
        ConnMode::ExplicitPlain => {
            let raw = String::from_utf8_lossy(raw_path).into_owned();
            let lower = raw.to_ascii_lowercase();
            if lower.starts_with("https://") {
                return Err("send https:// requests through CONNECT".into());
            }
            let Some(rest) = lower.strip_prefix("http://").map(|_| &raw[7..]) else {
                return Err("this is a forward proxy: send absolute-form requests (http://host/path) or CONNECT".into());
            };
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let authority = &rest[..end];
            if authority.contains('@') {
                return Err("credentials in the request target are not accepted".into());
            }
            let (host, port) = split_authority(authority);
            if host.is_empty() {
                return Err("request target without a host".into());
            }
            let mut path = rest[end..].split('#').next().unwrap_or("").to_string();
            if path.is_empty() || path.starts_with('?') {
                path.insert(0, '/');
            }
            if let Some(h) = host_field {
                let (claimed, claimed_port) = split_authority(h);
                if !claimed.eq_ignore_ascii_case(host)
                    || claimed_port.unwrap_or(80) != port.unwrap_or(80)
                {
                    return Err(format!(
                        "Host {h:?} does not match the request target {authority:?}"
                    ));
                }
            }
            Ok((
                Target {
                    host: host.to_ascii_lowercase(),
                    port: port.unwrap_or(80),
                    tls: false,
                },
                Some(path),
            ))
        }
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_authority(a: &str) -> (&str, Option<u16>) {
    if let Some(rest) = a.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let port = rest[end + 1..]
                .strip_prefix(':')
                .and_then(|p| p.parse().ok());
            return (&rest[..end], port);
        }
    }
    match a.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (a, None),
    }
}

fn header_str<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(req: &RequestHeader) -> Option<usize> {
    if req.headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    header_str(req, "content-length").and_then(|v| v.trim().parse().ok())
}

/// Why the framing of a request is ambiguous, if it is: lines ending in a bare LF or
/// folded, Content-Length together with Transfer-Encoding, more than one Content-Length,
/// a Content-Length that is not a plain number, or a Transfer-Encoding other than a single
/// `chunked`. Peers that read such a request differently are how requests are smuggled.
///
/// `raw_head` is the HTTP/1 head as received (Pingora drops Content-Length when
/// Transfer-Encoding is present, so the parsed header alone cannot tell).
fn framing_error(raw_head: Option<&[u8]>, req: &RequestHeader) -> Option<String> {
    let mut lengths: Vec<&[u8]> = Vec::new();
    let mut codings: Vec<&[u8]> = Vec::new();
    if let Some(raw) = raw_head {
        if front::has_bare_lf(raw) {
            return Some("malformed request: lines must end with CRLF".into());
        }
        for line in raw.split(|&b| b == b'\n').skip(1) {
            if line.starts_with(b" ") || line.starts_with(b"\t") {
                return Some("malformed request: folded header lines are not accepted".into());
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                lengths.push(value);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                codings.push(value);
            }
        }
    } else {
        let values = |name| {
            req.headers
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect::<Vec<_>>()
        };
        lengths = values(http::header::CONTENT_LENGTH);
        codings = values(http::header::TRANSFER_ENCODING);
    }
    if !lengths.is_empty() && !codings.is_empty() {
        return Some("a request may not carry both Content-Length and Transfer-Encoding".into());
    }
    if lengths.len() > 1 {
        return Some("more than one Content-Length".into());
    }
    if let Some(len) = lengths.first() {
        let len = len.trim_ascii();
        if len.is_empty() || len.len() > 19 || !len.iter().all(u8::is_ascii_digit) {
            return Some("Content-Length is not a number".into());
        }
    }
    if !codings.is_empty() {
        let chunked =
            codings.len() == 1 && codings[0].trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !chunked {
            return Some("the only Transfer-Encoding accepted in requests is chunked".into());
        }
    }
    None
}

/// Whether an HTTP/1 answer to `req` has a body that ends when the site closes the
/// connection: neither Content-Length nor Transfer-Encoding, and a status and method that
/// allow a body (RFC 9112 §6.3).
fn ends_at_close(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    resp.version != http::Version::HTTP_2
        && req.method != http::Method::HEAD
        && !matches!(resp.status.as_u16(), 100..=199 | 204 | 304)
        && !resp.headers.contains_key(http::header::CONTENT_LENGTH)
        && !resp.headers.contains_key(http::header::TRANSFER_ENCODING)
}

fn request_has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || content_length(req).is_some_and(|n| n > 0)
        || (req.version == http::Version::HTTP_2
            && !matches!(req.method, http::Method::GET | http::Method::HEAD))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(domain_matches("*.x.com", "api.x.com"));
        assert!(!domain_matches("*.x.com", "x.com"));
        assert!(!domain_matches("*.x.com", "evilx.com"));
        assert!(domain_matches("x.com", "x.com"));
        assert!(domain_matches(".bank.example", "www.bank.example"));
    }

    #[test]
    fn ambiguous_framing() {
        let req = |headers: &[(&str, &str)]| {
            let mut r = RequestHeader::build("POST", b"/", None).unwrap();
            for (k, v) in headers {
                r.append_header(k.to_string(), *v).unwrap();
            }
            r
        };
        assert!(framing_error(None, &req(&[("content-length", "5")])).is_none());
        assert!(framing_error(None, &req(&[("transfer-encoding", "Chunked")])).is_none());
        for bad in [
            &[("content-length", "5"), ("transfer-encoding", "chunked")][..],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "3, 5")],
            &[("content-length", "+5")],
            &[("content-length", "")],
            &[("content-length", "99999999999999999999")],
            &[("transfer-encoding", "gzip, chunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            assert!(framing_error(None, &req(bad)).is_some(), "{bad:?}");
        }
        let post = req(&[]);
        let ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
        assert!(framing_error(Some(ok), &post).is_none());
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\nHost: a\n\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\nContent-Length: 5\r\n\r\n",
        ] {
            assert!(
                framing_error(Some(bad), &post).is_some(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(split_authority("x.com:8080"), ("x.com", Some(8080)));
        assert_eq!(split_authority("x.com"), ("x.com", None));
        assert_eq!(split_authority("[::1]:80"), ("::1", Some(80)));
    }
}
