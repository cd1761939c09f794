//! Assembling a running gateway from a [`Config`]: the CA, the rules, the listeners on
//! Pingora, and the admin port with its reloader. Used by `permeable run` and, in-process,
//! by the integration tests.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;

use crate::admin::{Admin, Readiness};
use crate::audit::Audit;
use crate::config::Config;
use crate::engine::policy::{EngineOptions, Policy};
use crate::metrics;
use crate::pages::Pages;
use crate::proxy::front::{Connections, Front, InFlight, Listener, Work};
use crate::proxy::{Gateway, Shared};
use crate::reload::{Reloader, RulesSource};
use crate::tls::{self, LeafResolver};
use crate::upstream::Resolver;

/// Why the gateway could not start. Printed as is; exit code 2.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Everything prepared before Pingora takes over the thread.
pub struct Prepared {
    server: Server,
    pub shared: Arc<Shared>,
    pub reloader: Arc<Reloader>,
    admin_listener: TcpListener,
    pub admin_addr: SocketAddr,
    token: Option<String>,
    probe_addr: Option<SocketAddr>,
    /// Set when the CA was created on this start: where its certificate is.
    pub created_ca: Option<PathBuf>,
    pub rules_source: RulesSource,
}

/// Where the rules come from: configured, `./rules` when present, else built in.
pub fn rules_source(config: &Config, config_dir: Option<&Path>) -> RulesSource {
    match &config.rules {
        Some(dir) if dir.is_relative() => {
            RulesSource::Dir(config_dir.map_or(dir.clone(), |d| d.join(dir)))
        }
        Some(dir) => RulesSource::Dir(dir.clone()),
        None if Path::new("rules").is_dir() => RulesSource::Dir(PathBuf::from("rules")),
        None => RulesSource::Builtin,
    }
}

pub fn engine_options(config: &Config) -> Result<EngineOptions, StartError> {
    let hash_key = match &config.inspection.hash_key_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            StartError(format!(
                "{}: cannot read inspection.hash_key_file: {e}",
                path.display()
            ))
        })?,
        None => EngineOptions::default().hash_key,
    };
    Ok(EngineOptions {
        max_body: config.inspection.max_body,
        on_uninspectable: config.inspection.on_uninspectable,
        hash_key,
    })
}

/// Set once a gateway with `work_stealing: false` has been built in this process.
///
/// Pingora 0.9.1's no-steal runtime records, per worker thread, which runtimes
/// `pingora_runtime::current_handle()` spawns on, in a `thread_local::ThreadLocal` keyed by
/// an id that the `thread_local` crate recycles when a thread exits, and never clears the
/// record (cloudflare/pingora#981). Once such a gateway has stopped, the next threads
/// handed those ids (the workers of the next gateway in the same process, whatever its
/// runtime flavour) find the dead runtimes there: Pingora's accept loop and every
/// connection task are spawned on them and cancelled at once, and the gateway never
/// serves. The binary runs one gateway per process (an upgrade is a new process), so it is
/// unaffected; a process that starts several (the in-process tests) must use
/// `work_stealing: true` throughout, and this refuses the combination that cannot work.
static NO_STEAL_BUILT: AtomicBool = AtomicBool::new(false);

/// Build the gateway: fails early, with a clear message, on anything that would make it
/// misbehave later (unreadable CA, rules that do not compile, ports in use).
///
/// With `work_stealing: false` (the default), only one gateway can be built per process,
/// and none after it (Pingora 0.9.1, cloudflare/pingora#981): a second call is refused with a
/// [`StartError`] rather than starting a gateway that would never serve.
pub fn prepare(
    config: Config,
    config_dir: Option<&Path>,
    upgrade: bool,
) -> Result<Prepared, StartError> {
    if NO_STEAL_BUILT.load(Ordering::Acquire) {
        return Err(StartError(NO_STEAL_AGAIN.to_string()));
    }
    metrics::register_all();
    let state_dir = config.state_dir();
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        StartError(format!(
            "{}: cannot create the state directory: {e}",
            state_dir.display()
        ))
    })?;
    let (leaves, created_ca) = interception_ca(&config, &state_dir)?;
    let (source, opts, policy) = load_rules(&config, config_dir)?;
    let bundle = write_upstream_roots(&state_dir, config.upstream.ca_file.as_deref())?;
    let admin = AdminEndpoint::bind(&config, upgrade)?;
    if !upgrade {
        check_listeners_free(&config)?;
    }
    let shared = shared_state(config, leaves, policy)?;
    let reloader = Arc::new(Reloader::new(shared.policy.clone(), source.clone(), opts));

    if !shared.config.work_stealing && NO_STEAL_BUILT.swap(true, Ordering::AcqRel) {
        return Err(StartError(NO_STEAL_AGAIN.to_string()));
    }
    let mut server = pingora_server(&shared.config, &state_dir, &bundle, upgrade);
    let probe_addr = add_listeners(&mut server, &shared);

    Ok(Prepared {
        server,
        shared,
        reloader,
        admin_listener: admin.listener,
        admin_addr: admin.addr,
        token: admin.token,
        probe_addr,
        created_ca,
        rules_source: source,
    })
}

/// Stage 1: the interception CA (the configured one, or the state directory's, created on
/// first start) and the resolver that mints leaves from it. The second value is where a
/// newly created CA's certificate is.
fn interception_ca(
    config: &Config,
    state_dir: &Path,
) -> Result<(Arc<LeafResolver>, Option<PathBuf>), StartError> {
    let (ca, created) = tls::load_or_create_ca(
        config.ca.cert.as_deref(),
        config.ca.key.as_deref(),
        state_dir,
    )
    .map_err(|e| StartError(e.to_string()))?;
    let leaves = LeafResolver::new(ca, config.ca.cache_size, config.ca.leaf_validity_hours);
    Ok((Arc::new(leaves), created))
}

/// Stage 2: the rule set, compiled; a rule set that does not compile stops start-up with
/// its errors. Also returns where it came from and the engine options, for reloads.
fn load_rules(
    config: &Config,
    config_dir: Option<&Path>,
) -> Result<(RulesSource, EngineOptions, Policy), StartError> {
    let source = rules_source(config, config_dir);
    let opts = engine_options(config)?;
    let policy = source.load(&opts).map_err(|e| {
        StartError(format!(
            "rules from {} do not compile:\n{e}",
            source.describe()
        ))
    })?;
    metrics::set_rules_version(policy.version());
    Ok((source, opts, policy))
}

/// The admin port, bound before anything serves (a port in use is a start-up error, not a
/// log line), and the token that protects it off loopback.
struct AdminEndpoint {
    listener: TcpListener,
    addr: SocketAddr,
    token: Option<String>,
}

impl AdminEndpoint {
    /// Stage 3: bind `admin.listen` and read `admin.token_file`; an admin port off loopback
    /// without a token is refused.
    fn bind(config: &Config, upgrade: bool) -> Result<AdminEndpoint, StartError> {
        let listener = bind_admin(config.admin.listen, upgrade).map_err(|e| {
            StartError(format!(
                "cannot listen on admin.listen {}: {e}",
                config.admin.listen
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?;
        let token = match &config.admin.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        StartError(format!(
                            "{}: cannot read admin.token_file: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None if !addr.ip().is_loopback() => {
                return Err(StartError(format!(
                    "admin.listen {addr} is not loopback: set admin.token_file to protect /-/reload"
                )))
            }
            None => None,
        };
        Ok(AdminEndpoint {
            listener,
            addr,
            token,
        })
    }
}

/// Stage 4 (not on an upgrade, where the old process holds them): every proxy listener's
/// port is free. Pingora binds with SO_REUSEPORT, which would silently share the port with
/// a stale instance.
fn check_listeners_free(config: &Config) -> Result<(), StartError> {
    for addr in config
        .proxy
        .listen
        .iter()
        .chain(&config.transparent.https_listen)
        .chain(&config.transparent.http_listen)
    {
        TcpListener::bind(addr).map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    }
    Ok(())
}

/// Stage 5: what every request shares — resolver, interception TLS, pages and their coach
/// key, audit output, authenticator, group anonymiser and the policy handle. A keytab that
/// cannot be read, a directory CA that does not parse or an audit file that cannot be
/// opened stops start-up here rather than failing requests later.
fn shared_state(
    config: Config,
    leaves: Arc<LeafResolver>,
    policy: Policy,
) -> Result<Arc<Shared>, StartError> {
    let coach_key = match &config.pages.coach_key_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            StartError(format!(
                "{}: cannot read pages.coach_key_file: {e}",
                path.display()
            ))
        })?,
        None => {
            let mut k = vec![0u8; 32];
            rand::Rng::fill(&mut rand::thread_rng(), &mut k[..]);
            k
        }
    };
    let auth = crate::auth::Authenticator::from_config(&config.auth)
        .map_err(|e| StartError(e.to_string()))?
        .map(Arc::new);
    let audit = Audit::open(&config.audit.output, config.audit.all).map_err(|e| {
        StartError(format!(
            "{}: cannot open the audit log: {e}",
            config.audit.output
        ))
    })?;
    Ok(Arc::new(Shared {
        resolver: Resolver::new(
            &config.upstream.resolve,
            &config.upstream.allow_private,
            Duration::from_millis(config.upstream.dns_timeout_ms),
        )
        .with_nameservers(&config.upstream.nameservers)
        .with_system_cache(Duration::from_secs(config.upstream.dns_cache_seconds)),
        tls: tls::interception_server_config(leaves.clone()),
        leaves,
        connections: Arc::new(Connections::default()),
        in_flight: Arc::new(InFlight::default()),
        pages: Pages::new(config.pages.clone(), coach_key),
        audit,
        groups: metrics::GroupAnonymizer::new(config.analytics.min_group_clients),
        shared_domains: metrics::SharedDomains::new(config.analytics.shared_domains),
        auth,
        policy: Arc::new(ArcSwap::from_pointee(policy)),
        config,
    }))
}

/// Stage 6: Pingora's server, configured from ours (threads, work stealing, the upstream
/// trust bundle, grace periods, pid file and upgrade socket in the state directory).
fn pingora_server(config: &Config, state_dir: &Path, bundle: &Path, upgrade: bool) -> Server {
    let mut conf = ServerConf {
        threads: config.threads.max(1),
        work_stealing: config.work_stealing,
        ca_file: Some(bundle.display().to_string()),
        grace_period_seconds: Some(config.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(config.grace_period_seconds.max(1)),
        pid_file: state_dir.join("permeable.pid").display().to_string(),
        upgrade_sock: state_dir.join("upgrade.sock").display().to_string(),
        upstream_keepalive_pool_size: 256,
        ..ServerConf::default()
    };
    conf.daemon = false;
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    server
}

/// Stage 7: the proxy pipeline (one, shared by every listener) and a front door service per
/// kind of listener. Returns the first address listened on, which readiness probes.
fn add_listeners(server: &mut Server, shared: &Arc<Shared>) -> Option<SocketAddr> {
    let mut http = pingora::proxy::http_proxy(
        &server.configuration,
        Gateway {
            shared: shared.clone(),
        },
    );
    // An HTTP/2 connection without a request in flight is closed after the time a client
    // gets to send a request head: idle or trickling HTTP/2 clients do not pile up.
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(Duration::from_secs(
        shared.config.proxy.header_timeout_seconds.max(1),
    ));
    http.server_options = Some(options);
    let http = Arc::new(http);

    let mut probe_addr = None;
    let listeners = [
        (
            Listener::Explicit,
            &shared.config.proxy.listen,
            "explicit proxy",
        ),
        (
            Listener::TransparentTls,
            &shared.config.transparent.https_listen,
            "transparent https",
        ),
        (
            Listener::TransparentHttp,
            &shared.config.transparent.http_listen,
            "transparent http",
        ),
    ];
    for (kind, addrs, name) in listeners {
        if addrs.is_empty() {
            continue;
        }
        let front = Front {
            shared: shared.clone(),
            http: http.clone(),
            listener: kind,
            listening: parking_lot::Mutex::new(Some(shared.in_flight.enter(Work::Listener))),
        };
        let mut service = Service::new(name.to_string(), front);
        for addr in addrs.iter() {
            let mut endpoint = ListenerConfig::tcp(addr.to_string());
            if kind == Listener::TransparentHttp {
                // Plain HTTP only: the front door and the pipeline read into buffers of
                // their own, so Pingora's read buffer in front of the socket (64 KiB per
                // connection) would only add a copy of every read. (TLS listeners keep
                // it: it spares the TLS layer a system call per record.)
                endpoint = endpoint.l4_buffer(L4BufferSettings::default().read(0));
            }
            service.add_listener(endpoint);
            probe_addr.get_or_insert(*addr);
        }
        server.add_service(service);
    }
    probe_addr
}

const NO_STEAL_AGAIN: &str = "a gateway with work_stealing: false was already built in this \
     process; Pingora 0.9.1 cannot run another one after it (cloudflare/pingora#981): \
     set work_stealing: true on every gateway of a process that starts several";

/// The admin listener, bound with SO_REUSEPORT so that a new process started with
/// `--upgrade` can bind it while the old one still serves (Pingora hands over only its own
/// listeners). Outside an upgrade, a plain bind first proves that nobody else holds the
/// port: a stale instance must not silently share it.
fn bind_admin(addr: SocketAddr, upgrade: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    if !upgrade {
        drop(TcpListener::bind(addr)?);
    }
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Trust for upstream certificates: the system roots plus `upstream.ca_file`, written as
/// one bundle for Pingora's connector (which otherwise trusts only one or the other).
fn write_upstream_roots(state_dir: &Path, extra: Option<&Path>) -> Result<PathBuf, StartError> {
    use base64::Engine as _;
    let mut pem = String::new();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    if let Some(path) = extra {
        let text = std::fs::read_to_string(path).map_err(|e| {
            StartError(format!(
                "{}: cannot read upstream.ca_file: {e}",
                path.display()
            ))
        })?;
        let mut reader = std::io::BufReader::new(text.as_bytes());
        let certs: Vec<_> = rustls_pemfile::certs(&mut reader).collect();
        if certs.is_empty() || certs.iter().any(|c| c.is_err()) {
            return Err(StartError(format!(
                "{}: upstream.ca_file holds no usable PEM certificate",
                path.display()
            )));
        }
        pem.push_str(&text);
        if !text.ends_with('\n') {
            pem.push('\n');
        }
    }
    let out = state_dir.join("upstream-roots.pem");
    std::fs::write(&out, pem)
        .map_err(|e| StartError(format!("{}: cannot write: {e}", out.display())))?;
    Ok(out)
}

/// A shutdown request from the embedding code (tests) rather than a Unix signal.
pub struct ChannelShutdown(pub tokio::sync::Mutex<tokio::sync::mpsc::Receiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        match self.0.lock().await.recv().await {
            Some(s) => s,
            None => ShutdownSignal::FastShutdown,
        }
    }
}

/// How a run of the gateway came to an end.
enum Stopped {
    /// Pingora's `run` returned, or panicked (with the panic's payload).
    Pingora(std::thread::Result<()>),
    /// A graceful stop found nothing left in flight, or its grace period is over.
    Drained,
}

impl Prepared {
    /// Start the admin port, the reloader's triggers and the readiness probe on their own
    /// runtime thread, run Pingora, and return once the gateway has stopped.
    ///
    /// A graceful stop (SIGTERM, or the old process of an upgrade once it has handed its
    /// listeners over) returns as soon as the listeners have stopped and every connection
    /// and request has finished, or when `grace_period_seconds` is over, whichever comes
    /// first; the caller then exits. Pingora 0.9.1 cannot end a graceful stop early: once
    /// its listeners stop, `Server::run` sleeps out the whole grace period, however
    /// little is left to do, then shuts its runtimes down. So Pingora runs on a thread of
    /// its own, and this watches what is in flight ([`InFlight`]) from the outside.
    pub fn run(self, run_args: RunArgs) {
        let ready = Arc::new(Readiness::default());
        let admin = Arc::new(Admin {
            reloader: self.reloader.clone(),
            ready: ready.clone(),
            token: self.token.clone(),
        });
        let reloader = self.reloader.clone();
        let listener = self.admin_listener;
        let probe = self.probe_addr;
        let watch_changes = true;
        let phases = self.server.watch_execution_phase();
        let in_flight = self.shared.in_flight.clone();
        let grace = Duration::from_secs(self.shared.config.grace_period_seconds);
        let (stopped_tx, mut stopped) = tokio::sync::mpsc::unbounded_channel();
        let drained = stopped_tx.clone();
        std::thread::Builder::new()
            .name("permeable-admin".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the admin runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    reloader.spawn_signal_handler();
                    if watch_changes {
                        reloader.spawn_watcher();
                    }
                    tokio::spawn(wait_until_listening(probe, ready.clone()));
                    tokio::spawn(follow_shutdown(phases, ready, in_flight, grace, drained));
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => admin.serve(l).await,
                        Err(e) => tracing::error!(error = %e, "admin listener unusable"),
                    }
                });
            })
            .ok();
        // Pingora gets the signals through a channel: the caller's watcher (Unix signals,
        // or a test's channel) need not be sendable to Pingora's thread, and it stays
        // here, where it is still listened to during a graceful stop.
        let (signal_tx, signal_rx) = tokio::sync::mpsc::channel(1);
        let server = self.server;
        std::thread::Builder::new()
            .name("permeable-pingora".into())
            .spawn(move || {
                let pingora_args = RunArgs {
                    shutdown_signal: Box::new(ChannelShutdown(tokio::sync::Mutex::new(signal_rx))),
                };
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    server.run(pingora_args)
                }));
                let _ = stopped_tx.send(Stopped::Pingora(result));
            })
            .expect("cannot start the gateway's main thread");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cannot start the signal runtime");
        let outcome = rt.block_on(async move {
            let mut stopping = false;
            loop {
                tokio::select! {
                    outcome = stopped.recv() => return outcome,
                    signal = run_args.shutdown_signal.recv() => {
                        // A fast stop (SIGINT) during a graceful one ends it at once.
                        if stopping && matches!(signal, ShutdownSignal::FastShutdown) {
                            return None;
                        }
                        stopping = true;
                        // (Pingora reads one signal; any later one is not for it.)
                        let _ = signal_tx.try_send(signal);
                    }
                }
            }
        });
        if let Some(Stopped::Pingora(Err(panic))) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

/// How often a stopping gateway looks at what is still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Follow Pingora's execution phases: once it stops accepting, the gateway is no longer
/// ready; once its listeners have stopped, wait until nothing is in flight (or the grace
/// period is over) and say so on `stopped`.
async fn follow_shutdown(
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    ready: Arc<Readiness>,
    in_flight: Arc<InFlight>,
    grace: Duration,
    stopped: tokio::sync::mpsc::UnboundedSender<Stopped>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match phases.recv().await {
            // SIGTERM: the listeners are told to stop.
            Ok(ExecutionPhase::GracefulTerminate) => ready.stopping(),
            // Any stop, after an upgrade's hand-over too: the listeners are told to stop.
            Ok(ExecutionPhase::ShutdownStarted) => break,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
    ready.stopping();
    tracing::info!(
        grace_period_seconds = grace.as_secs(),
        "stopping: no new connections; waiting for in-flight requests and tunnels"
    );
    let drain = async {
        loop {
            if in_flight.is_idle() {
                // A connection accepted just before the listeners stopped is counted
                // when its task first runs: look again a moment later before believing
                // that nothing is left.
                tokio::time::sleep(DRAIN_POLL).await;
                if in_flight.is_idle() {
                    return;
                }
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    };
    match tokio::time::timeout(grace, drain).await {
        Ok(()) => tracing::info!("stopped: nothing left in flight"),
        Err(_) => tracing::warn!(
            grace_period_seconds = grace.as_secs(),
            "stopped: the grace period is over; what was still in flight is cut"
        ),
    }
    let _ = stopped.send(Stopped::Drained);
}

async fn wait_until_listening(addr: Option<SocketAddr>, ready: Arc<Readiness>) {
    let Some(mut addr) = addr else {
        return;
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            ready.listening();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this binary that builds a gateway: a no-steal one marks the
    /// process, and any gateway after it is refused with a message that says why.
    #[test]
    fn a_second_gateway_after_a_no_steal_one_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let config = || {
            let mut c = Config {
                state_dir: Some(state.path().to_path_buf()),
                threads: 1,
                ..Config::default()
            };
            c.proxy.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
            c.admin.listen = SocketAddr::from(([127, 0, 0, 1], 0));
            c.audit.output = "off".into();
            c
        };
        assert!(
            !config().work_stealing,
            "the default is the no-steal runtime"
        );
        let first = prepare(config(), None, false).map_err(|e| e.0);
        assert!(first.is_ok(), "{:?}", first.err());
        for work_stealing in [false, true] {
            let mut c = config();
            c.work_stealing = work_stealing;
            match prepare(c, None, false) {
                Ok(_) => panic!("a second gateway was built (work_stealing: {work_stealing})"),
                Err(e) => assert!(e.0.contains("pingora#981"), "{e}"),
            }
        }
    }
}
