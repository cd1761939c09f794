//! Prometheus metrics: every family the gateway exports, and the helpers that keep
//! their labels bounded.
//!
//! The families are `pub static` [`LazyLock`]s registered in
//! [`prometheus::default_registry`] on first use; the admin server renders them with
//! [`gather_text`]. This module records what the proxy hands it and knows nothing of
//! Pingora or the rule engine. `docs/metrics.md` is the written spec: names, types,
//! units and the value set of every label.
//!
//! # Bounded labels
//!
//! Every label value must come from a set fixed by code or by the rule set (site ids,
//! activities, rule ids, categories, configured groups). Anything that could come from
//! the network is passed through [`label_or_other`] against the known set first, so a
//! client cannot create series at will. Two labels need state to stay bounded:
//!
//! - `domain` on `permeable_shared_link_domains_total`: [`SharedDomains`] admits the
//!   first `capacity` distinct domains and counts every later newcomer under `other`.
//! - `group` on the usage families: [`GroupAnonymizer`] reports a group only once it
//!   has at least `min_clients` distinct clients (users when authenticated, else addresses),
//!   and `suppressed` until then.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::LazyLock;

use parking_lot::Mutex;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, TextEncoder,
};

/// Label value for anything outside a label's known set.
pub const OTHER: &str = "other";
/// Group label value for a client in no configured group.
pub const UNKNOWN: &str = "unknown";
/// Group label value while a group has too few distinct clients to be reported.
pub const SUPPRESSED: &str = "suppressed";
/// Activity label value for a request to a known site that no activity matched.
pub const UNCLASSIFIED: &str = "unclassified";

/// Values of `action` decided by the policy, weakest to strictest (the proxy adds
/// `refused` for requests it answered itself before any decision).
pub const ACTIONS: &[&str] = &["allow", "log", "redact", "coach", "block"];
/// Values of `mode` on `permeable_rule_matches_total`.
pub const RULE_MODES: &[&str] = &["enforce", "monitor"];
/// Values of `mode` on `permeable_tunnels_total`.
pub const TUNNEL_MODES: &[&str] = &["intercept", "passthrough", "refused"];
/// Values of `direction` on `permeable_body_bytes_total`.
pub const DIRECTIONS: &[&str] = &["request", "response"];
/// Values of `result` on `permeable_rules_reloads_total`.
pub const RELOAD_RESULTS: &[&str] = &["success", "failure"];
/// Values of `kind` on `permeable_upstream_errors_total` (anything else is `other`).
pub const UPSTREAM_ERROR_KINDS: &[&str] = &[
    "connect", "timeout", "tls", "dns", "reset", "protocol", "refused", OTHER,
];

/// Values of `method` on `permeable_auth_total`: `none` is a request that brought no
/// credentials (answered with a challenge).
pub const AUTH_METHODS: &[&str] = &["negotiate", "basic", "none"];
/// Values of `result` on `permeable_auth_total`.
pub const AUTH_RESULTS: &[&str] = &["success", "failure", "unavailable", "challenged"];
/// Values of `result` on `permeable_auth_directory_lookups_total`.
pub const DIRECTORY_RESULTS: &[&str] = &["success", "failure", "unavailable"];

/// Capacity of [`SharedDomains`] when the configuration does not say.
pub const DEFAULT_SHARED_DOMAINS_CAPACITY: usize = 50;
/// `min_clients` of [`GroupAnonymizer`] when the configuration does not say.
pub const DEFAULT_MIN_GROUP_CLIENTS: usize = 5;

/// Buckets of `permeable_request_duration_seconds`: 0.5 ms to 60 s.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Buckets of `permeable_inspection_duration_seconds`: 1 µs to 1 s, 1-2.5-5 per decade,
/// because deciding on a small post takes microseconds and only a pathological body
/// approaches a second.
const INSPECTION_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
];

// The constructors below only fail on an invalid metric name, a bad label name or a
// duplicate registration; all are constants of this module, so failing is a bug here.

fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    prometheus::default_registry()
        .register(Box::new(collector.clone()))
        .expect("metric family registers once in the default registry");
    collector
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter family"))
}

fn counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).expect("valid counter"))
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(HistogramVec::new(opts, labels).expect("valid histogram family"))
}

/// Requests through the HTTP pipeline, by catalogue site, activity, action taken and
/// client group (a group with too few clients reads `suppressed`).
pub static REQUESTS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_requests_total",
        "Requests through the HTTP pipeline by site, activity, action taken and client group.",
        &["site", "activity", "action", "group"],
    )
});

/// Whole request through the gateway: request head received to response finished.
pub static REQUEST_DURATION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "permeable_request_duration_seconds",
        "Time from receiving a request to finishing its response, upstream time included.",
        &["site"],
        REQUEST_BUCKETS,
    )
});

/// Time spent deciding: decoding the body, running detectors, evaluating rules.
pub static INSPECTION_DURATION_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram_vec(
        "permeable_inspection_duration_seconds",
        "Time the gateway spent classifying, inspecting and deciding on a request.",
        &["site"],
        INSPECTION_BUCKETS,
    )
});

/// Findings by detector category and the action finally taken on the request.
pub static FINDINGS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_findings_total",
        "Sensitive-data findings in inspected bodies by category and the action taken.",
        &["category", "action"],
    )
});

/// Every matching rule, winning or not; `mode="monitor"` rules are counted, not enforced.
pub static RULE_MATCHES_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_rule_matches_total",
        "Rule matches by rule id, the rule's action and its mode (enforce or monitor).",
        &["rule", "action", "mode"],
    )
});

/// CONNECT tunnels by what the gateway did with them.
pub static TUNNELS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_tunnels_total",
        "CONNECT tunnels by mode: intercept (TLS terminated), passthrough (blind), refused.",
        &["mode"],
    )
});

/// Client connections currently open (tunnels and plain HTTP).
pub static CONNECTIONS_ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "permeable_connections_active",
            "Client connections currently open.",
        )
        .expect("valid gauge"),
    )
});

/// A catalogue site sent something no activity matches: its API may have changed.
pub static UNCLASSIFIED_REQUESTS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_unclassified_requests_total",
        "Requests to a catalogue site that matched no activity.",
        &["site"],
    )
});

/// Bodies that should have been inspected but could not be; `reason` is the engine's
/// [`UninspectableKind`](crate::engine::decode::UninspectableKind) label.
pub static UNINSPECTABLE_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_uninspectable_total",
        "Content-carrying requests whose body could not be inspected, by site and reason.",
        &["site", "reason"],
    )
});

/// Failures talking to the real site.
pub static UPSTREAM_ERRORS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_upstream_errors_total",
        "Errors talking to the upstream site by site and kind.",
        &["site", "kind"],
    )
});

/// Body bytes through the HTTP pipeline, as seen on the wire (before decoding).
pub static BODY_BYTES_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_body_bytes_total",
        "Body bytes through the HTTP pipeline by site and direction (request or response).",
        &["site", "direction"],
    )
});

/// Rule-set reloads by outcome; a failed reload keeps the running rule set.
pub static RULES_RELOADS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_rules_reloads_total",
        "Rule-set reloads by result (success or failure).",
        &["result"],
    )
});

/// 1 for the version of the live rule set; see [`set_rules_version`].
pub static RULES_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "permeable_rules_info",
                "Always 1, labelled with the version of the live rule set.",
            ),
            &["version"],
        )
        .expect("valid gauge family"),
    )
});

/// Leaf certificates minted for intercepted sites.
pub static CERTIFICATES_MINTED_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "permeable_certificates_minted_total",
        "Leaf certificates minted for intercepted server names.",
    )
});

/// Certificate lookups answered from the cache.
pub static CERTIFICATE_CACHE_HITS_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "permeable_certificate_cache_hits_total",
        "Leaf certificate lookups answered from the cache.",
    )
});

/// Certificate lookups that had to mint.
pub static CERTIFICATE_CACHE_MISSES_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "permeable_certificate_cache_misses_total",
        "Leaf certificate lookups that missed the cache.",
    )
});

/// Audit events that could not be written (a full disk, a closed pipe): the decisions
/// still apply, but the trail has a hole.
pub static AUDIT_WRITE_ERRORS_TOTAL: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "permeable_audit_write_errors_total",
        "Audit events that could not be written.",
    )
});

/// Client connections closed for being too slow: `head` (a request head not complete within
/// `proxy.header_timeout_seconds`) or `body` (a request body slower than
/// `proxy.body_min_bytes` per `proxy.body_timeout_seconds`).
pub static CLIENT_TIMEOUTS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_client_timeouts_total",
        "Client connections closed for sending a request head or body too slowly.",
        &["phase"],
    )
});

/// Proxy authentication attempts by method and result: `success`, `failure` (wrong
/// password, bad or unknown ticket), `unavailable` (the directory or GSSAPI could not
/// answer: `auth.on_unavailable` applied), `challenged` (no credentials: 407).
pub static AUTH_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_auth_total",
        "Proxy authentication attempts by method (negotiate, basic, none) and result.",
        &["method", "result"],
    )
});

/// Questions put to the directory (a password bind or a user's groups): the cache's
/// misses. With the cache working, at most one per user per `auth.cache_ttl_seconds`.
pub static AUTH_DIRECTORY_LOOKUPS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_auth_directory_lookups_total",
        "Directory lookups (password binds and group reads) by result; cache misses.",
        &["result"],
    )
});

/// Domains of links shared in posts, bounded by [`SharedDomains`].
pub static SHARED_LINK_DOMAINS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "permeable_shared_link_domains_total",
        "Links shared in posts by domain (first N distinct domains; the rest under other).",
        &["domain"],
    )
});

/// A family's series by label values, kept by one thread. `with_label_values` hashes
/// every value byte by byte, takes the family's lock and clones the series on every call;
/// the request families are counted on every request, so each worker thread keeps the
/// handles it has used. Series are never removed from these families, so a handle stays
/// its family's series for good. At most [`LOCAL_SERIES_MAX`] label sets are kept (they
/// come from bounded sets; a reload can bring new ones): past that the cache starts over.
struct LocalSeries<M> {
    /// By [`label_hash`], which the map takes as it is.
    by_hash: HashMap<u64, Vec<Labelled<M>>, std::hash::BuildHasherDefault<Prehashed>>,
    len: usize,
}

/// A series and the label values that name it.
type Labelled<M> = (Box<[Box<str>]>, M);

const LOCAL_SERIES_MAX: usize = 4096;

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A hash of label values, each followed by a byte no UTF-8 text holds (so that "ab", "c"
/// and "a", "bc" differ), eight bytes per step.
fn label_hash(labels: &[&str]) -> u64 {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    let mut h: u64 = 0;
    let mut mix = |word: u64| h = (h.rotate_left(26) ^ word).wrapping_mul(K);
    for l in labels {
        let mut chunks = l.as_bytes().chunks_exact(8);
        for c in &mut chunks {
            mix(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        last[rest.len()] = 0xff;
        mix(u64::from_le_bytes(last));
    }
    h
}

impl<M> LocalSeries<M> {
    fn new() -> LocalSeries<M> {
        LocalSeries {
            by_hash: HashMap::default(),
            len: 0,
        }
    }

    /// The series for `labels`, made by `make` the first time this thread sees them.
    fn get(&mut self, labels: &[&str], make: impl FnOnce() -> M) -> &mut M {
        let hash = label_hash(labels);
        if self.len >= LOCAL_SERIES_MAX && !self.by_hash.contains_key(&hash) {
            self.by_hash.clear();
            self.len = 0;
        }
        let list = self.by_hash.entry(hash).or_default();
        let same = |known: &[Box<str>]| {
            known.len() == labels.len() && known.iter().zip(labels).all(|(a, b)| **a == **b)
        };
        let at = match list.iter().position(|(known, _)| same(known)) {
            Some(at) => at,
            None => {
                self.len += 1;
                list.push((labels.iter().map(|&l| l.into()).collect(), make()));
                list.len() - 1
            }
        };
        &mut list[at].1
    }
}

/// The series one label set of [`count_request`] names; the optional ones are made when
/// first observed, as `with_label_values` at that point would.
struct RequestSeries {
    requests: IntCounter,
    duration: Histogram,
    inspection: Option<Histogram>,
    body_request: Option<IntCounter>,
    body_response: Option<IntCounter>,
    unclassified: Option<IntCounter>,
    /// `permeable_rule_matches_total` series by (rule, action, mode), as requests with
    /// these labels matched them (at most [`RULES_PER_SERIES`]).
    rules: Vec<(Box<str>, &'static str, &'static str, IntCounter)>,
}

const RULES_PER_SERIES: usize = 32;

/// What one finished request adds to the request families.
pub struct RequestCount<'a> {
    pub site: &'a str,
    pub activity: &'a str,
    pub action: &'a str,
    pub group: &'a str,
    pub seconds: f64,
    /// Time spent deciding, when there was any.
    pub inspection_seconds: Option<f64>,
    /// Request and response body bytes, counted for catalogue sites only.
    pub body_bytes: Option<(u64, u64)>,
    pub unclassified: bool,
}

thread_local! {
    static REQUEST_SERIES: std::cell::RefCell<LocalSeries<RequestSeries>> =
        std::cell::RefCell::new(LocalSeries::new());
}

/// Counts one request in `permeable_requests_total`, its duration, inspection time, body
/// bytes, (when no activity matched) `permeable_unclassified_requests_total`, and each
/// matching rule, as (rule id, action, mode), in `permeable_rule_matches_total`.
pub fn count_request<'r>(
    c: &RequestCount<'_>,
    rule_matches: impl Iterator<Item = (&'r str, &'static str, &'static str)>,
) {
    REQUEST_SERIES.with_borrow_mut(|cache| {
        let series = cache.get(&[c.site, c.activity, c.action, c.group], || RequestSeries {
            requests: REQUESTS_TOTAL.with_label_values(&[c.site, c.activity, c.action, c.group]),
            duration: REQUEST_DURATION_SECONDS.with_label_values(&[c.site]),
            inspection: None,
            body_request: None,
            body_response: None,
            unclassified: None,
            rules: Vec::new(),
        });
        series.requests.inc();
        series.duration.observe(c.seconds);
        if let Some(seconds) = c.inspection_seconds {
            series
                .inspection
                .get_or_insert_with(|| INSPECTION_DURATION_SECONDS.with_label_values(&[c.site]))
                .observe(seconds);
        }
        if let Some((up, down)) = c.body_bytes {
            series
                .body_request
                .get_or_insert_with(|| BODY_BYTES_TOTAL.with_label_values(&[c.site, "request"]))
                .inc_by(up);
            series
                .body_response
                .get_or_insert_with(|| BODY_BYTES_TOTAL.with_label_values(&[c.site, "response"]))
                .inc_by(down);
        }
        if c.unclassified {
            series
                .unclassified
                .get_or_insert_with(|| UNCLASSIFIED_REQUESTS_TOTAL.with_label_values(&[c.site]))
                .inc();
        }
        for (rule, action, mode) in rule_matches {
            let known = series
                .rules
                .iter()
                .find(|(r, a, m, _)| **r == *rule && *a == action && *m == mode);
            match known {
                Some((.., counter)) => counter.inc(),
                None => {
                    let counter = RULE_MATCHES_TOTAL.with_label_values(&[rule, action, mode]);
                    counter.inc();
                    if series.rules.len() < RULES_PER_SERIES {
                        series.rules.push((rule.into(), action, mode, counter));
                    }
                }
            }
        }
    });
}

/// Registers every family and creates, at zero, the series whose label values are
/// fixed by code (reload results, tunnel modes), so `rate()` and alerts see them from
/// the first scrape rather than from the first event. Families whose labels come from
/// traffic appear with their first sample. Call once at start-up.
pub fn register_all() {
    LazyLock::force(&REQUESTS_TOTAL);
    LazyLock::force(&REQUEST_DURATION_SECONDS);
    LazyLock::force(&INSPECTION_DURATION_SECONDS);
    LazyLock::force(&FINDINGS_TOTAL);
    LazyLock::force(&RULE_MATCHES_TOTAL);
    LazyLock::force(&TUNNELS_TOTAL);
    LazyLock::force(&CONNECTIONS_ACTIVE);
    LazyLock::force(&UNCLASSIFIED_REQUESTS_TOTAL);
    LazyLock::force(&UNINSPECTABLE_TOTAL);
    LazyLock::force(&UPSTREAM_ERRORS_TOTAL);
    LazyLock::force(&BODY_BYTES_TOTAL);
    LazyLock::force(&RULES_RELOADS_TOTAL);
    LazyLock::force(&RULES_INFO);
    LazyLock::force(&CERTIFICATES_MINTED_TOTAL);
    LazyLock::force(&CERTIFICATE_CACHE_HITS_TOTAL);
    LazyLock::force(&CERTIFICATE_CACHE_MISSES_TOTAL);
    LazyLock::force(&AUDIT_WRITE_ERRORS_TOTAL);
    LazyLock::force(&SHARED_LINK_DOMAINS_TOTAL);
    for (method, results) in [
        ("negotiate", &["success", "failure", "unavailable"][..]),
        ("basic", &["success", "failure", "unavailable"][..]),
        ("none", &["challenged"][..]),
    ] {
        for result in results {
            AUTH_TOTAL.with_label_values(&[method, result]);
        }
    }
    for result in DIRECTORY_RESULTS {
        AUTH_DIRECTORY_LOOKUPS_TOTAL.with_label_values(&[result]);
    }
    for phase in ["head", "body"] {
        CLIENT_TIMEOUTS_TOTAL.with_label_values(&[phase]);
    }
    for result in RELOAD_RESULTS {
        RULES_RELOADS_TOTAL.with_label_values(&[result]);
    }
    for mode in TUNNEL_MODES {
        TUNNELS_TOTAL.with_label_values(&[mode]);
    }
}

/// The live rule-set version, so the previous label can be removed on swap.
static LIVE_RULES_VERSION: Mutex<Option<String>> = Mutex::new(None);

/// Marks `version` as the live rule set: `permeable_rules_info{version}` becomes 1 and
/// the previous version's series is removed, so the family always has one sample.
pub fn set_rules_version(version: &str) {
    let mut live = LIVE_RULES_VERSION.lock();
    if let Some(previous) = live.as_deref() {
        if previous != version {
            // The previous series exists (we set it); an error would only mean it is gone.
            let _ = RULES_INFO.remove_label_values(&[previous]);
        }
    }
    RULES_INFO.with_label_values(&[version]).set(1);
    *live = Some(version.to_owned());
}

/// Records a successful rule-set reload and marks `version` live.
pub fn record_reload_success(version: &str) {
    RULES_RELOADS_TOTAL.with_label_values(&["success"]).inc();
    set_rules_version(version);
}

/// Records a rejected rule-set reload (the running rule set stays live).
pub fn record_reload_failure() {
    RULES_RELOADS_TOTAL.with_label_values(&["failure"]).inc();
}

/// Renders the default registry in the Prometheus text exposition format.
pub fn gather_text() -> String {
    let families = prometheus::gather();
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(error = %err, "encoding metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Content type to serve [`gather_text`] with.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `value` if it is one of `allowed`, else [`OTHER`]: keeps a label bounded when its
/// value may come from outside (a header, a host name, an error message).
pub fn label_or_other<'a, S: AsRef<str>>(value: &'a str, allowed: &[S]) -> &'a str {
    if allowed.iter().any(|a| a.as_ref() == value) {
        value
    } else {
        OTHER
    }
}

/// `value` if it is one of `allowed`, else [`UNKNOWN`]: for the group label, where
/// "we could not tell" reads better than "other".
pub fn label_or_unknown<'a, S: AsRef<str>>(value: &'a str, allowed: &[S]) -> &'a str {
    if allowed.iter().any(|a| a.as_ref() == value) {
        value
    } else {
        UNKNOWN
    }
}

/// Bounds the `domain` label of `permeable_shared_link_domains_total`.
///
/// The first `capacity` distinct domains seen are admitted and keep their own label for
/// the life of the process; every later newcomer is counted under `other`.
///
/// Why first-come rather than a true top-N: a Prometheus counter cannot move its past
/// counts from one label to another, so evicting a domain to admit a more popular one
/// would make both series lie. With first-come admission every series is an honest
/// count since start; the popular domains show up early in practice, and `other`
/// shows how much is not itemised (a large `other` says: raise the capacity). Memory is
/// bounded by `capacity` domains. A restart starts a fresh admission, as it does for
/// every counter.
#[derive(Debug)]
pub struct SharedDomains {
    capacity: usize,
    admitted: Mutex<HashSet<String>>,
}

impl SharedDomains {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            admitted: Mutex::new(HashSet::new()),
        }
    }

    /// The label to count `domain` under: the normalised domain if admitted (admitting
    /// it while there is room), else [`OTHER`]. A value that is not a plausible host
    /// name (empty, too long, characters outside `[a-z0-9.-]`) is always `other`.
    pub fn label(&self, domain: &str) -> String {
        let Some(domain) = normalise_domain(domain) else {
            return OTHER.to_owned();
        };
        let mut admitted = self.admitted.lock();
        if admitted.contains(&domain) {
            return domain;
        }
        if admitted.len() < self.capacity {
            admitted.insert(domain.clone());
            return domain;
        }
        OTHER.to_owned()
    }

    /// Counts one shared link to `domain` in `permeable_shared_link_domains_total`.
    pub fn record(&self, domain: &str) {
        let label = self.label(domain);
        SHARED_LINK_DOMAINS_TOTAL.with_label_values(&[&label]).inc();
    }
}

impl Default for SharedDomains {
    fn default() -> Self {
        Self::new(DEFAULT_SHARED_DOMAINS_CAPACITY)
    }
}

/// Lower-cases, drops a trailing dot and a leading `www.`; `None` when the value cannot
/// be a host name. `other` itself is refused so it cannot be admitted as a domain.
fn normalise_domain(domain: &str) -> Option<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.strip_prefix("www.").unwrap_or(&domain);
    let plausible = !domain.is_empty()
        && domain.len() <= 253
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    plausible.then(|| domain.to_owned())
}

/// Suppresses per-group usage analytics for groups too small to stay anonymous
/// (k-anonymity on the `group` label).
///
/// A group is reported under its own name once at least `min_clients` distinct client
/// addresses have been seen in it, and as [`SUPPRESSED`] until then, so no series can
/// be traced to one or two people. Once revealed, a group stays revealed for the life
/// of the process; counts made while it was suppressed stay under `suppressed`.
///
/// Memory is bounded: per group at most `min_clients` addresses are kept, and only
/// until the threshold is reached, after which the set is dropped for a flag. The
/// number of groups is bounded by the configuration (callers map anything else to
/// `unknown` first).
#[derive(Debug)]
pub struct GroupAnonymizer {
    min_clients: usize,
    groups: Mutex<HashMap<String, GroupClients>>,
}

#[derive(Debug)]
enum GroupClients {
    Counting(HashSet<ClientKey>),
    Revealed,
}

/// Who counts as one client of a group: the authenticated user when there is one (many
/// users behind one address, or one user on several, still count right), else the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    Address(IpAddr),
    /// A hash of the user's name (never the name: this set lives as long as the process).
    User(u64),
}

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> ClientKey {
        ClientKey::Address(ip)
    }
}

impl GroupAnonymizer {
    /// `min_clients` of 0 or 1 never suppresses.
    pub fn new(min_clients: usize) -> Self {
        Self {
            min_clients,
            groups: Mutex::new(HashMap::new()),
        }
    }

    pub fn min_clients(&self) -> usize {
        self.min_clients
    }

    /// Notes that `client` belongs to `group` and returns the label to report: `group`
    /// when it has at least `min_clients` distinct clients, else [`SUPPRESSED`].
    pub fn label<'a>(&self, group: &'a str, client: impl Into<ClientKey>) -> &'a str {
        if self.min_clients <= 1 {
            return group;
        }
        let client = client.into();
        let mut groups = self.groups.lock();
        if !groups.contains_key(group) {
            groups.insert(group.to_owned(), GroupClients::Counting(HashSet::new()));
        }
        let Some(entry) = groups.get_mut(group) else {
            return SUPPRESSED;
        };
        match entry {
            GroupClients::Revealed => group,
            GroupClients::Counting(clients) => {
                clients.insert(client);
                if clients.len() >= self.min_clients {
                    *entry = GroupClients::Revealed;
                    group
                } else {
                    SUPPRESSED
                }
            }
        }
    }
}

impl Default for GroupAnonymizer {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_GROUP_CLIENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises the tests that set the process-wide rules version.
    static RULES_VERSION_TEST: Mutex<()> = Mutex::new(());

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn requests_counted_through_the_thread_cache_land_in_their_own_series() {
        let count = |site: &'static str, activity: &'static str| RequestCount {
            site,
            activity,
            action: "allow",
            group: "unknown",
            seconds: 0.001,
            inspection_seconds: None,
            body_bytes: Some((3, 5)),
            unclassified: false,
        };
        count_request(&count("cache-ab", "c"), std::iter::empty());
        count_request(&count("cache-ab", "c"), std::iter::empty());
        count_request(&count("cache-ab", "d"), std::iter::empty());
        let total = |site, activity| {
            REQUESTS_TOTAL
                .with_label_values(&[site, activity, "allow", "unknown"])
                .get()
        };
        assert_eq!(total("cache-ab", "c"), 2);
        assert_eq!(total("cache-ab", "d"), 1);
        let bytes = BODY_BYTES_TOTAL
            .with_label_values(&["cache-ab", "response"])
            .get();
        assert_eq!(bytes, 15);
        // A series first observed later (inspection time) is made then, and counted.
        count_request(
            &RequestCount {
                inspection_seconds: Some(0.002),
                ..count("cache-ab", "c")
            },
            std::iter::empty(),
        );
        let inspected = INSPECTION_DURATION_SECONDS.with_label_values(&["cache-ab"]);
        assert_eq!(inspected.get_sample_count(), 1);
        assert_eq!(total("cache-ab", "c"), 3);
        assert_eq!(total("cache-ab", "d"), 1);

        let rules = [
            ("cache-rule", "block", "monitor"),
            ("cache-rule", "log", "enforce"),
        ];
        count_request(&count("cache-ab", "c"), rules.into_iter());
        count_request(&count("cache-ab", "c"), rules[..1].iter().copied());
        count_request(&count("cache-ab", "d"), rules[..1].iter().copied());
        let matches = |action, mode| {
            RULE_MATCHES_TOTAL
                .with_label_values(&["cache-rule", action, mode])
                .get()
        };
        assert_eq!(matches("block", "monitor"), 3);
        assert_eq!(matches("log", "enforce"), 1);
    }

    #[test]
    fn the_thread_cache_starts_over_past_its_bound() {
        let mut cache = LocalSeries::new();
        let names: Vec<String> = (0..=LOCAL_SERIES_MAX).map(|i| format!("s{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(*cache.get(&[n], || i), i);
        }
        assert_eq!(*cache.get(&["s4096"], || 0), LOCAL_SERIES_MAX);
        assert_eq!(cache.len, 1);
        // Label sets that join to the same text are told apart.
        assert_eq!(*cache.get(&["ab", "c"], || 100), 100);
        assert_eq!(*cache.get(&["a", "bc"], || 200), 200);
        assert_eq!(*cache.get(&["ab", "c"], || 300), 100);
        // Made again after the restart; what is kept answers with the same handle.
        assert_eq!(*cache.get(&["s0"], || 7), 7);
        assert_eq!(*cache.get(&["s0"], || 8), 7);
    }

    #[test]
    fn label_or_other_keeps_known_values_only() {
        assert_eq!(label_or_other("block", ACTIONS), "block");
        assert_eq!(label_or_other("Block", ACTIONS), OTHER);
        assert_eq!(label_or_other("../../etc", ACTIONS), OTHER);
        let sites = vec!["twitter".to_owned(), "linkedin".to_owned()];
        assert_eq!(label_or_other("linkedin", &sites), "linkedin");
        assert_eq!(label_or_unknown("myspace", &sites), UNKNOWN);
    }

    #[test]
    fn shared_domains_admit_up_to_capacity_then_other() {
        let domains = SharedDomains::new(2);
        assert_eq!(domains.label("github.com"), "github.com");
        assert_eq!(domains.label("WWW.Example.org."), "example.org");
        assert_eq!(domains.label("news.example.net"), OTHER);
        // Admitted domains keep their label after the capacity is reached.
        assert_eq!(domains.label("github.com"), "github.com");
        assert_eq!(domains.label("www.github.com"), "github.com");
        assert_eq!(domains.admitted.lock().len(), 2);
    }

    #[test]
    fn shared_domains_refuse_implausible_hosts_without_using_capacity() {
        let domains = SharedDomains::new(1);
        for bad in [
            "",
            "localhost",
            "exa mple.com",
            "évil.com",
            "a/b.com",
            ".com",
            "other",
        ] {
            assert_eq!(domains.label(bad), OTHER, "{bad:?}");
        }
        assert_eq!(domains.label("example.com"), "example.com");
    }

    #[test]
    fn shared_domains_with_zero_capacity_count_everything_as_other() {
        let domains = SharedDomains::new(0);
        assert_eq!(domains.label("example.com"), OTHER);
    }

    #[test]
    fn shared_domains_record_counts_under_the_bounded_label() {
        let domains = SharedDomains::new(1);
        let admitted = SHARED_LINK_DOMAINS_TOTAL.with_label_values(&["metrics-test.example"]);
        let before = admitted.get();
        domains.record("metrics-test.example");
        domains.record("metrics-test.example");
        assert_eq!(admitted.get() - before, 2);
    }

    #[test]
    fn groups_are_suppressed_until_enough_distinct_clients() {
        let anonymizer = GroupAnonymizer::new(3);
        assert_eq!(anonymizer.label("legal", ip(1)), SUPPRESSED);
        // The same client again does not count twice.
        assert_eq!(anonymizer.label("legal", ip(1)), SUPPRESSED);
        assert_eq!(anonymizer.label("legal", ip(2)), SUPPRESSED);
        assert_eq!(anonymizer.label("sales", ip(3)), SUPPRESSED);
        assert_eq!(anonymizer.label("legal", ip(3)), "legal");
        // Once revealed, any client (even a known one) sees the group name.
        assert_eq!(anonymizer.label("legal", ip(1)), "legal");
        assert_eq!(anonymizer.label("sales", ip(4)), SUPPRESSED);
    }

    #[test]
    fn revealed_groups_drop_their_client_sets() {
        let anonymizer = GroupAnonymizer::new(2);
        anonymizer.label("eng", ip(1));
        anonymizer.label("eng", ip(2));
        for last in 3..=200 {
            anonymizer.label("eng", ip(last));
        }
        let groups = anonymizer.groups.lock();
        assert!(matches!(groups.get("eng"), Some(GroupClients::Revealed)));
    }

    #[test]
    fn min_clients_of_one_never_suppresses() {
        assert_eq!(GroupAnonymizer::new(1).label("solo", ip(1)), "solo");
        assert_eq!(GroupAnonymizer::new(0).label("solo", ip(1)), "solo");
    }

    /// Every family of the spec renders once it has a sample. With
    /// `PERMEABLE_METRICS_SAMPLE=FILE` the exposition is also written to FILE, which
    /// `dashboards/check.sh live` can scrape to exercise its plumbing without a gateway.
    #[test]
    fn every_family_renders_with_samples() {
        register_all();
        REQUESTS_TOTAL
            .with_label_values(&["x", "post", "block", SUPPRESSED])
            .inc();
        REQUEST_DURATION_SECONDS
            .with_label_values(&["x"])
            .observe(0.02);
        INSPECTION_DURATION_SECONDS
            .with_label_values(&["x"])
            .observe(0.000_04);
        FINDINGS_TOTAL
            .with_label_values(&["secret.aws_access_key", "block"])
            .inc();
        RULE_MATCHES_TOTAL
            .with_label_values(&["block-secrets", "block", "enforce"])
            .inc();
        CONNECTIONS_ACTIVE.inc();
        CONNECTIONS_ACTIVE.dec();
        UNCLASSIFIED_REQUESTS_TOTAL.with_label_values(&["x"]).inc();
        UNINSPECTABLE_TOTAL
            .with_label_values(&["x", "too_large"])
            .inc();
        UPSTREAM_ERRORS_TOTAL
            .with_label_values(&["x", "connect"])
            .inc();
        BODY_BYTES_TOTAL
            .with_label_values(&["x", "request"])
            .inc_by(512);
        CERTIFICATES_MINTED_TOTAL.inc();
        CERTIFICATE_CACHE_HITS_TOTAL.inc();
        CERTIFICATE_CACHE_MISSES_TOTAL.inc();
        SharedDomains::new(1).record("example.com");
        let _serial = RULES_VERSION_TEST.lock();
        set_rules_version("metrics-test-sample");

        let text = gather_text();
        let spec = include_str!("../docs/metrics.md");
        let families: Vec<&str> = spec
            .lines()
            .filter_map(|line| line.strip_prefix("| `permeable_"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        assert!(
            families.len() >= 17,
            "families in docs/metrics.md: {families:?}"
        );
        for family in families {
            assert!(
                text.contains(&format!("# TYPE permeable_{family} ")),
                "permeable_{family} is specified in docs/metrics.md but not exported"
            );
        }
        if let Some(path) = std::env::var_os("PERMEABLE_METRICS_SAMPLE") {
            std::fs::write(path, &text).expect("write the sample exposition");
        }
    }

    #[test]
    fn rules_info_keeps_only_the_live_version_and_renders() {
        let _serial = RULES_VERSION_TEST.lock();
        register_all();
        set_rules_version("metrics-test-v1");
        set_rules_version("metrics-test-v2");
        set_rules_version("metrics-test-v2");
        let text = gather_text();
        assert!(text.contains("permeable_rules_info{version=\"metrics-test-v2\"} 1"));
        assert!(!text.contains("metrics-test-v1"));
        let text = gather_text();
        assert!(text.contains("permeable_rules_reloads_total{result=\"failure\"}"));
        assert!(text.contains("permeable_tunnels_total{mode=\"refused\"}"));
        assert!(text.contains("# TYPE permeable_connections_active gauge"));
    }
}
