//! Where a request goes: asynchronous name resolution with `upstream.resolve` overrides,
//! and the refusal of private destinations that keeps the gateway from being an open door
//! into the organisation's own network.
//!
//! Names are resolved by the system resolver (`getaddrinfo` on a blocking thread) unless
//! `upstream.nameservers` is set; then the gateway asks those servers itself, without
//! blocking a thread per lookup, and caches answers for their TTL. The system resolver
//! gives no TTL: its answers are kept for `upstream.dns_cache_seconds` (30 s by default; 0
//! asks it for every request), so that a request to a known site does not wait on a lookup.
//! Either way a lookup has `upstream.dns_timeout_ms` to finish, failures are not kept, and
//! every address, cached or fresh, is checked against the private ranges when it is used.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::TokioResolver;
use ipnet::IpNet;

/// Why a destination cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Name resolution failed or returned nothing.
    NotFound(String),
    /// Resolution took too long.
    Timeout,
    /// The destination is loopback, link-local or private and not explicitly allowed.
    Private(IpAddr),
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::NotFound(e) => write!(f, "cannot resolve the destination: {e}"),
            ResolveError::Timeout => f.write_str("name resolution timed out"),
            ResolveError::Private(ip) => write!(
                f,
                "destination resolves to a private or local address ({ip}), which this gateway does not reach"
            ),
        }
    }
}

/// Resolves destinations for both intercepted requests and blind tunnels.
#[derive(Clone)]
pub struct Resolver {
    /// `upstream.resolve`, by lowercase host (IPv6 without brackets), then port.
    overrides: foldhash::HashMap<String, Vec<(u16, SocketAddr)>>,
    allow_private: Vec<IpNet>,
    timeout: Duration,
    /// Set when `upstream.nameservers` names the servers to ask.
    servers: Option<TokioResolver>,
    /// The system resolver's answers, when they are kept (shared by every clone).
    system_cache: Option<Arc<SystemCache>>,
}

/// Names the system resolver's answers are kept for at most; a full cache first drops what
/// has expired, then everything (a burst of new names costs lookups, never memory).
const SYSTEM_CACHE_ENTRIES: usize = 4096;

/// A kept answer: when it was made, and the addresses.
type Kept = (Instant, Arc<[IpAddr]>);

/// One lookup of a name under way: every request that needs the name while it runs waits
/// for its answer.
type Pending = Arc<tokio::sync::OnceCell<Result<Arc<[IpAddr]>, ResolveError>>>;

/// The system resolver's answers by host.
struct SystemCache {
    ttl: Duration,
    entries: parking_lot::Mutex<foldhash::HashMap<String, Kept>>,
    /// Lookups under way, by host: when an answer expires under load, one lookup replaces
    /// it instead of one per request in flight.
    pending: parking_lot::Mutex<foldhash::HashMap<String, Pending>>,
    /// How many times the system resolver was asked.
    asked: std::sync::atomic::AtomicU64,
}

impl SystemCache {
    fn new(ttl: Duration) -> SystemCache {
        SystemCache {
            ttl,
            entries: Default::default(),
            pending: Default::default(),
            asked: Default::default(),
        }
    }

    /// The lookup of `host` under way, or a new one. Lookups whose every waiter went away
    /// before they finished are dropped when too many are listed.
    fn pending(&self, host: &str) -> Pending {
        let mut pending = self.pending.lock();
        if pending.len() >= SYSTEM_CACHE_ENTRIES && !pending.contains_key(host) {
            pending.retain(|_, p| Arc::strong_count(p) > 1);
        }
        pending.entry(host.to_string()).or_default().clone()
    }

    /// The addresses of `host` when an answer younger than the TTL is kept.
    fn get(&self, host: &str, now: Instant) -> Option<Arc<[IpAddr]>> {
        let entries = self.entries.lock();
        let (at, ips) = entries.get(host)?;
        (now.saturating_duration_since(*at) < self.ttl).then(|| ips.clone())
    }

    fn put(&self, host: &str, ips: Arc<[IpAddr]>, now: Instant) {
        let mut entries = self.entries.lock();
        if entries.len() >= SYSTEM_CACHE_ENTRIES && !entries.contains_key(host) {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= SYSTEM_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(host.to_string(), (now, ips));
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("allow_private", &self.allow_private)
            .field("timeout", &self.timeout)
            .field("nameservers", &self.servers.is_some())
            .field("system_cache", &self.system_cache.as_ref().map(|c| c.ttl))
            .finish()
    }
}

impl Resolver {
    pub fn new(
        overrides: &BTreeMap<String, SocketAddr>,
        allow_private: &[IpNet],
        timeout: Duration,
    ) -> Resolver {
        let mut by_host: foldhash::HashMap<String, Vec<(u16, SocketAddr)>> = Default::default();
        // (Keys are checked as host:port when the configuration loads.)
        for (key, addr) in overrides {
            if let Some((host, port)) = crate::config::split_host_port(key) {
                let ports = by_host.entry(host.to_ascii_lowercase()).or_default();
                ports.retain(|&(p, _)| p != port);
                ports.push((port, *addr));
            }
        }
        Resolver {
            overrides: by_host,
            allow_private: allow_private.to_vec(),
            timeout,
            servers: None,
            system_cache: None,
        }
    }

    /// Keep the system resolver's answers for `ttl` (zero: ask it for every request).
    pub fn with_system_cache(mut self, ttl: Duration) -> Resolver {
        self.system_cache = (!ttl.is_zero()).then(|| Arc::new(SystemCache::new(ttl)));
        self
    }

    /// Ask these DNS servers (UDP, and TCP for truncated answers) instead of the system
    /// resolver. Answers are cached for their TTL; `/etc/hosts` is not read.
    pub fn with_nameservers(mut self, nameservers: &[SocketAddr]) -> Resolver {
        if nameservers.is_empty() {
            self.servers = None;
            return self;
        }
        let mut config = ResolverConfig::new();
        for addr in nameservers {
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        let mut opts = ResolverOpts::default();
        // Both families, so that the private-range check sees every address of the name.
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 4096;
        opts.timeout = self.timeout;
        opts.attempts = 1;
        opts.ndots = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        self.servers = Some(resolver);
        self
    }

    async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        match &self.servers {
            None => {
                let Some(cache) = self.system_cache.as_deref() else {
                    return self.ask_system(host, port).await;
                };
                let with_port =
                    |ips: &[IpAddr]| ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
                if let Some(ips) = cache.get(host, Instant::now()) {
                    return Ok(with_port(&ips));
                }
                let pending = cache.pending(host);
                let answer = pending
                    .get_or_init(|| async {
                        // A lookup that ended between this request's miss and now has
                        // left its answer.
                        if let Some(ips) = cache.get(host, Instant::now()) {
                            cache.pending.lock().remove(host);
                            return Ok(ips);
                        }
                        cache
                            .asked
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let answer = self.ask_system(host, port).await.map(|addrs| {
                            addrs.iter().map(SocketAddr::ip).collect::<Arc<[IpAddr]>>()
                        });
                        // Kept before the lookup is no longer listed as under way, so that
                        // a request arriving in between finds it. Failures are not kept.
                        match &answer {
                            Ok(ips) if !ips.is_empty() => {
                                cache.put(host, ips.clone(), Instant::now());
                            }
                            _ => {}
                        }
                        cache.pending.lock().remove(host);
                        answer
                    })
                    .await;
                answer.as_deref().map(with_port).map_err(Clone::clone)
            }
            Some(servers) => {
                // A trailing dot makes the name absolute: no search domains are tried.
                let name = if host.ends_with('.') {
                    host.to_string()
                } else {
                    format!("{host}.")
                };
                let answer = tokio::time::timeout(self.timeout, servers.lookup_ip(name))
                    .await
                    .map_err(|_| ResolveError::Timeout)?;
                match answer {
                    Ok(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(ip, port)).collect()),
                    Err(e)
                        if e.proto()
                            .is_some_and(|p| matches!(p.kind(), ProtoErrorKind::Timeout)) =>
                    {
                        Err(ResolveError::Timeout)
                    }
                    Err(e) => Err(ResolveError::NotFound(e.to_string())),
                }
            }
        }
    }

    /// The system resolver's addresses for `host` (getaddrinfo, on a blocking thread).
    async fn ask_system(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let lookup = tokio::net::lookup_host((host.to_string(), port));
        Ok(tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| ResolveError::Timeout)?
            .map_err(|e| ResolveError::NotFound(e.to_string()))?
            .collect())
    }

    /// The address to connect to for `host:port`. Overrides are trusted as configured;
    /// anything resolved through DNS is checked against the private ranges after
    /// resolution, so a public name pointing at 127.0.0.1 is refused too.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, ResolveError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Some(addr) = self.overridden(host, port) {
            return Ok(addr);
        }
        let addr = if let Ok(ip) = host.parse::<IpAddr>() {
            SocketAddr::new(ip, port)
        } else {
            // Boxed: a lookup's future is large, and a target in `upstream.resolve` or given
            // as an address awaits none.
            let addrs = Box::pin(self.lookup(host, port)).await?;
            // A name with any private address is refused whole: choosing the public one
            // would leave the choice to whoever controls the DNS answer's order.
            if let Some(private) = addrs.iter().find(|a| !self.reachable(a.ip())) {
                return Err(ResolveError::Private(private.ip()));
            }
            *addrs
                .first()
                .ok_or_else(|| ResolveError::NotFound(format!("no address for {host}")))?
        };
        if !self.reachable(addr.ip()) {
            return Err(ResolveError::Private(addr.ip()));
        }
        Ok(addr)
    }

    /// The `upstream.resolve` entry for `host` (without brackets) and `port`, if any. A
    /// lowercase host (as the proxy passes it) is looked up as it is; another is lowercased
    /// in a buffer kept by the thread: a lookup allocates nothing.
    fn overridden(&self, host: &str, port: u16) -> Option<SocketAddr> {
        thread_local!(static LOWER: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });
        if self.overrides.is_empty() {
            return None;
        }
        let find = |host: &str| {
            let ports = self.overrides.get(host)?;
            ports
                .iter()
                .find(|&&(p, _)| p == port)
                .map(|&(_, addr)| addr)
        };
        if !host.bytes().any(|b| b.is_ascii_uppercase()) {
            return find(host);
        }
        LOWER.with_borrow_mut(|lower| {
            lower.clear();
            lower.push_str(host);
            lower.make_ascii_lowercase();
            find(lower)
        })
    }

    fn reachable(&self, ip: IpAddr) -> bool {
        !is_private(ip) || self.allow_private.iter().any(|net| net.contains(&ip))
    }
}

/// Loopback, private, link-local (including cloud metadata), unique-local, unspecified,
/// multicast, broadcast and other non-global ranges, in every spelling: an IPv6 address
/// is global only inside `2000::/3` (less its special-purpose and documentation blocks, and
/// 6to4 addresses whose embedded IPv4 address is not global), or as a NAT64 address
/// (`64:ff9b::/96`) of a global IPv4 address. IPv4-mapped, IPv4-compatible (`::a.b.c.d`)
/// and IPv4-translated (`::ffff:0:a.b.c.d`) forms, Teredo and local-use NAT64 are refused.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 shared address space
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => !is_global_v6(v6),
    }
}

fn embedded_v4(bits: u128, shift: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::from((bits >> shift) as u32))
}

fn is_global_v6(v6: std::net::Ipv6Addr) -> bool {
    let bits = u128::from(v6);
    let within = |prefix: u128, len: u32| bits >> (128 - len) == prefix >> (128 - len);
    // NAT64 (RFC 6052 well-known prefix): as global as the IPv4 address it embeds.
    if within(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        return !is_private(embedded_v4(bits, 0));
    }
    // Global unicast is 2000::/3; everything outside it (::/8 with the IPv4-compatible,
    // mapped and translated forms, 64:ff9b:1::/48, 100::/64, fc00::/7, fe80::/10,
    // fec0::/10, ff00::/8, 5f00::/16…) is not.
    if !within(0x2000 << 112, 3) {
        return false;
    }
    // 6to4: as global as the IPv4 address it embeds.
    if within(0x2002 << 112, 16) {
        return !is_private(embedded_v4(bits, 80));
    }
    let special = [
        (0x2001u128 << 112, 23), // IETF special purpose, Teredo among them
        ((0x2001u128 << 112) | (0x0db8 << 96), 32), // documentation
        (0x3fffu128 << 112, 20), // documentation (RFC 9637)
    ];
    !special.iter().any(|&(p, l)| within(p, l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "100.64.1.1",
            "192.0.0.8",
            // IPv4-compatible, IPv4-translated and mapped spellings.
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:0:169.254.169.254",
            "::ffff:0:8.8.8.8",
            "::ffff:10.0.0.1",
            // NAT64 and 6to4 embedding a private address, local-use NAT64.
            "64:ff9b::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            // Teredo, benchmarking, ORCHID, documentation, site-local, ULA, multicast, discard.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:10::1",
            "2001:db8::1",
            "3fff::1",
            "fec0::1",
            "fd00::1",
            "ff02::1",
            "100::1",
            "5f00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "104.244.42.1",
            "2606:4700::1111",
            "2a03:2880:f12f:83:face:b00c:0:25de",
            "2001:4860:4860::8888",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn overrides_and_refusal() {
        let mut o = BTreeMap::new();
        o.insert("X.com:443".to_string(), "127.0.0.1:9443".parse().unwrap());
        o.insert("x.com:80".to_string(), "127.0.0.1:9080".parse().unwrap());
        o.insert("[::2]:443".to_string(), "127.0.0.1:9666".parse().unwrap());
        o.insert(
            "127.0.0.2:80".to_string(),
            "127.0.0.1:9081".parse().unwrap(),
        );
        let r = Resolver::new(&o, &[], Duration::from_secs(2));
        assert_eq!(r.resolve("x.com", 443).await.unwrap().port(), 9443);
        assert_eq!(r.resolve("X.Com", 80).await.unwrap().port(), 9080);
        assert_eq!(r.resolve("[::2]", 443).await.unwrap().port(), 9666);
        assert_eq!(r.resolve("127.0.0.2", 80).await.unwrap().port(), 9081);
        // Another port of an overridden host is not overridden.
        assert!(matches!(
            r.resolve("127.0.0.2", 81).await,
            Err(ResolveError::Private(_))
        ));
        assert!(matches!(
            r.resolve("127.0.0.1", 443).await,
            Err(ResolveError::Private(_))
        ));
        assert!(matches!(
            r.resolve("localhost", 443).await,
            Err(ResolveError::Private(_))
        ));
        let r = Resolver::new(
            &o,
            &["127.0.0.0/8".parse().unwrap()],
            Duration::from_secs(2),
        );
        assert!(r.resolve("127.0.0.1", 443).await.is_ok());
    }

    #[tokio::test]
    async fn system_answers_are_kept_for_their_time_and_checked_at_each_use() {
        let none = BTreeMap::new();
        let local = ["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let r = Resolver::new(&none, &local, Duration::from_secs(2))
            .with_system_cache(Duration::from_secs(30));
        let cache = r.system_cache.clone().unwrap();
        // A real lookup (`/etc/hosts`) is kept, for any port.
        let first = r.resolve("localhost", 80).await.unwrap();
        assert!(first.ip().is_loopback());
        assert!(cache.get("localhost", Instant::now()).is_some());
        assert_eq!(r.resolve("localhost", 8080).await.unwrap().port(), 8080);
        // A kept answer is used without asking: this name exists nowhere else.
        let name = "kept.permeable.invalid";
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        cache.put(name, Arc::from(vec![ip]), Instant::now());
        assert_eq!(
            r.resolve(name, 443).await.unwrap(),
            SocketAddr::new(ip, 443)
        );
        // Every clone shares the cache.
        assert_eq!(r.clone().resolve(name, 443).await.unwrap().ip(), ip);
        // The private ranges apply to kept answers too.
        let strict = Resolver {
            allow_private: Vec::new(),
            ..r.clone()
        };
        assert!(matches!(
            strict.resolve(name, 443).await,
            Err(ResolveError::Private(_))
        ));
        // An expired answer is asked again (and this name has none).
        let old = Instant::now() - Duration::from_secs(31);
        cache.put(name, Arc::from(vec![ip]), old);
        assert!(matches!(
            r.resolve(name, 443).await,
            Err(ResolveError::NotFound(_))
        ));
        // A failure is not kept; without a cache every request asks.
        assert!(cache.get(name, Instant::now()).is_none());
        let uncached =
            Resolver::new(&none, &local, Duration::from_secs(2)).with_system_cache(Duration::ZERO);
        assert!(uncached.system_cache.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_for_a_name_share_one_lookup() {
        let none = BTreeMap::new();
        let local = ["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let r = Resolver::new(&none, &local, Duration::from_secs(2))
            .with_system_cache(Duration::from_secs(30));
        let cache = r.system_cache.clone().unwrap();
        let asked = || cache.asked.load(std::sync::atomic::Ordering::Relaxed);
        let burst = |name: &'static str| {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let r = r.clone();
                    tokio::spawn(async move { r.resolve(name, 443).await })
                })
                .collect();
            futures_util::future::join_all(tasks)
        };
        for answer in burst("localhost").await {
            assert!(answer.unwrap().unwrap().ip().is_loopback());
        }
        assert_eq!(asked(), 1);
        // Expired under load: one lookup again.
        let ip: Arc<[IpAddr]> = Arc::from(vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        cache.put("localhost", ip, Instant::now() - Duration::from_secs(31));
        for answer in burst("localhost").await {
            assert!(answer.unwrap().is_ok());
        }
        assert_eq!(asked(), 2);
        // A failure reaches every request that waited for it, and is not kept: the next
        // request asks again.
        for answer in burst("nowhere.permeable.invalid").await {
            assert!(matches!(answer.unwrap(), Err(ResolveError::NotFound(_))));
        }
        let after_failure = asked();
        assert!(r.resolve("nowhere.permeable.invalid", 443).await.is_err());
        assert_eq!(asked(), after_failure + 1);
        assert!(cache.pending.lock().is_empty());
    }

    #[test]
    fn a_full_system_cache_drops_what_expired_then_everything() {
        let cache = SystemCache::new(Duration::from_secs(30));
        let ip: Arc<[IpAddr]> = Arc::from(vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        let now = Instant::now();
        let old = now - Duration::from_secs(60);
        for i in 0..SYSTEM_CACHE_ENTRIES {
            let at = if i % 2 == 0 { old } else { now };
            cache.put(&format!("h{i}.example"), ip.clone(), at);
        }
        cache.put("new.example", ip.clone(), now);
        assert_eq!(cache.entries.lock().len(), SYSTEM_CACHE_ENTRIES / 2 + 1);
        assert!(cache.get("h1.example", now).is_some());
        assert!(cache.get("h0.example", now).is_none());
        for i in 0..SYSTEM_CACHE_ENTRIES {
            cache.put(&format!("n{i}.example"), ip.clone(), now);
        }
        assert!(cache.entries.lock().len() <= SYSTEM_CACHE_ENTRIES);
        assert!(cache
            .get(&format!("n{}.example", SYSTEM_CACHE_ENTRIES - 1), now)
            .is_some());
    }
}
