//! The gateway's one configuration file: schema, defaults and located errors.
//!
//! The file is YAML; unknown keys are errors, and every error is reported as
//! `FILE:LINE:COL: message` so that a typo never silently changes behaviour.
//! Without a file, [`Config::default`] is the documented built-in configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::engine::policy::{Action, EngineOptions, LocatedError};

/// Which CONNECT targets are decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InterceptMode {
    /// Only hosts of the site catalogue whose site says `intercept: true`.
    #[default]
    Catalogue,
    /// Every host except those in `proxy.bypass`.
    All,
}

/// What becomes of a CONNECT to an IP address whose TLS ClientHello names no server: the
/// gateway cannot tell which site the client means, and the request's Host may name any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WithoutSni {
    /// Decrypted with a leaf minted for the address: a request whose Host names another
    /// host is refused, one for the address itself is forwarded to it over TLS verified
    /// for that address.
    #[default]
    Intercept,
    /// Relayed blind, never decrypted.
    Relay,
    /// Closed.
    Refuse,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub proxy: ProxyConfig,
    pub transparent: TransparentConfig,
    pub admin: AdminConfig,
    /// Rules directory. Default: `./rules` when present, else the built-in copy.
    pub rules: Option<PathBuf>,
    /// Where the generated CA and other state live.
    pub state_dir: Option<PathBuf>,
    pub ca: CaConfig,
    pub upstream: UpstreamConfig,
    pub clients: ClientsConfig,
    pub inspection: InspectionConfig,
    pub audit: AuditConfig,
    pub pages: PagesConfig,
    pub analytics: AnalyticsConfig,
    /// Proxy authentication on the explicit proxy (off unless `auth.methods` names one).
    pub auth: AuthConfig,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// `false` (default): one single-threaded runtime per worker thread, each connection
    /// served by one of them from start to end (less CPU per request). `true`: one
    /// work-stealing runtime shared by the workers, which evens out uneven load at some
    /// cost per request. A process may run only one gateway with `false`: see
    /// [`crate::server::prepare`].
    pub work_stealing: bool,
    /// The longest a stop (SIGTERM, or the old process of an upgrade) waits for in-flight
    /// requests and tunnels; the gateway exits as soon as they have finished.
    pub grace_period_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            proxy: ProxyConfig::default(),
            transparent: TransparentConfig::default(),
            admin: AdminConfig::default(),
            rules: None,
            state_dir: None,
            ca: CaConfig::default(),
            upstream: UpstreamConfig::default(),
            clients: ClientsConfig::default(),
            inspection: InspectionConfig::default(),
            audit: AuditConfig::default(),
            pages: PagesConfig::default(),
            analytics: AnalyticsConfig::default(),
            auth: AuthConfig::default(),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            work_stealing: false,
            grace_period_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Explicit forward-proxy listeners.
    pub listen: Vec<SocketAddr>,
    pub intercept: InterceptMode,
    /// Domains never intercepted under `intercept: all` (exact, or `*.suffix`).
    pub bypass: Vec<String>,
    /// Ports a CONNECT may target.
    pub connect_ports: Vec<u16>,
    /// A CONNECT to an IP address whose ClientHello names no server.
    pub tls_without_sni: WithoutSni,
    /// Seconds a client may take to send a request head; also how long an HTTP/2
    /// connection may sit without a request.
    pub header_timeout_seconds: u64,
    /// While a request body is being received, each window of this many seconds must
    /// bring at least `body_min_bytes`, or the connection is closed.
    pub body_timeout_seconds: u64,
    pub body_min_bytes: u64,
    /// `proxy.fast_path` is gone: plain HTTP always goes through the pipeline.
    #[serde(rename = "fast_path")]
    removed_fast_path: RemovedFastPath,
}

/// What a file that still sets `proxy.fast_path` is told.
const FAST_PATH_REMOVED: &str = "removed: plain HTTP always goes through the pipeline \
     (there is no separate fast path any more); delete this key";

/// The removed `proxy.fast_path`: whatever value a file gives it is refused with the
/// reason, located where the value starts (an unknown-key error would not say why).
#[derive(Debug, Clone, Default)]
struct RemovedFastPath;

impl<'de> Deserialize<'de> for RemovedFastPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Refused from inside the value's own visit, so that the parser locates it.
        struct Refuse;
        impl<'de> serde::de::Visitor<'de> for Refuse {
            type Value = RemovedFastPath;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(FAST_PATH_REMOVED)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(FAST_PATH_REMOVED))
            }
        }
        // Any other kind of value: "invalid type: …, expected <the reason>".
        d.deserialize_any(Refuse)
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            intercept: InterceptMode::Catalogue,
            bypass: Vec::new(),
            connect_ports: vec![443],
            tls_without_sni: WithoutSni::Intercept,
            header_timeout_seconds: 60,
            body_timeout_seconds: 30,
            body_min_bytes: 1024,
            removed_fast_path: RemovedFastPath,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransparentConfig {
    /// TLS listeners that terminate by SNI (split-horizon DNS deployments).
    pub https_listen: Vec<SocketAddr>,
    /// Plain HTTP listeners that route by Host.
    pub http_listen: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// File holding the bearer token required for state-changing endpoints.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            token_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Validity of minted leaf certificates, in hours.
    pub leaf_validity_hours: u32,
    /// How many minted leaf certificates are kept.
    pub cache_size: usize,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            cert: None,
            key: None,
            leaf_validity_hours: 72,
            cache_size: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// DNS overrides, as `curl --resolve`: `"host:port": "ip:port"`.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// Extra CA certificates (PEM) trusted for upstream servers, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Private destinations that may be reached anyway (CIDRs).
    pub allow_private: Vec<IpNet>,
    /// DNS servers to ask (`ip:port`) instead of the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// Time a name lookup may take before the request is answered 504.
    pub dns_timeout_ms: u64,
    /// How long the system resolver's answers are kept (it gives no TTL); 0: asked for
    /// every request. Answers from `nameservers` are kept for their own TTL.
    pub dns_cache_seconds: u64,
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    /// Offer HTTP/2 to sites over TLS, to requests that came over HTTP/2 (requests from
    /// HTTP/1.1 clients go to the site over HTTP/1.1, so that answers keep its framing).
    pub http2: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            resolve: BTreeMap::new(),
            ca_file: None,
            allow_private: Vec::new(),
            nameservers: Vec::new(),
            dns_timeout_ms: 5_000,
            dns_cache_seconds: 30,
            connect_timeout_ms: 10_000,
            read_timeout_ms: 60_000,
            http2: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientsConfig {
    /// Who may use the proxy.
    pub allow: Vec<IpNet>,
    /// Group of a client by address: group name → CIDRs. First match wins.
    pub groups: BTreeMap<String, Vec<IpNet>>,
    /// Identity headers set by an authenticating hop in front of the gateway.
    pub identity: IdentityConfig,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        let allow = [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        ClientsConfig {
            allow,
            groups: BTreeMap::new(),
            identity: IdentityConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub user_header: String,
    pub group_header: String,
    /// Sources whose identity headers are believed; from anyone else they are stripped.
    pub trusted: Vec<IpNet>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            user_header: "x-permeable-user".into(),
            group_header: "x-permeable-group".into(),
            trusted: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectionConfig {
    /// Largest body buffered for inspection, in bytes.
    pub max_body: usize,
    /// `allow`, `log` or `block`.
    pub on_uninspectable: Action,
    /// File holding the key for the keyed hashes of matched values.
    pub hash_key_file: Option<PathBuf>,
}

impl Default for InspectionConfig {
    fn default() -> Self {
        let engine = EngineOptions::default();
        InspectionConfig {
            max_body: engine.max_body,
            on_uninspectable: engine.on_uninspectable,
            hash_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `stdout`, `off`, or a file path.
    pub output: String,
    /// Also record plain allows.
    pub all: bool,
    /// Record a keyed hash of the user (`user_hash`, keyed with the inspection hash key)
    /// instead of the user's name, for works-council rules.
    pub pseudonymise_users: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            output: "stdout".into(),
            all: false,
            pseudonymise_users: false,
        }
    }
}

/// A proxy authentication method (`auth.methods`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Kerberos through SPNEGO (`Proxy-Authorization: Negotiate …`).
    Negotiate,
    /// A user name and password, checked by binding to LDAP as the user.
    Basic,
}

/// What happens when the directory (or GSSAPI) cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Answer 503 with a page saying why; nothing passes unidentified.
    #[default]
    Refuse,
    /// Let the request through with the group of the client's address.
    Address,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Methods offered in `Proxy-Authenticate`, in this order. Empty: no authentication.
    pub methods: Vec<AuthMethod>,
    /// The realm named in the Basic challenge (shown in the browser's prompt).
    pub basic_realm: String,
    /// Accept Basic on a plain listener that is not loopback: passwords then cross the
    /// network in clear, so this says the network is trusted.
    pub basic_over_plaintext: bool,
    pub on_unavailable: OnUnavailable,
    /// How long a verified password or a user's directory groups are believed.
    pub cache_ttl_seconds: u64,
    /// How long a rejected password is remembered (spares the directory, and lockout
    /// counters, from a client that retries).
    pub negative_ttl_seconds: u64,
    /// Most users (and user/password pairs) remembered.
    pub cache_size: usize,
    pub negotiate: NegotiateConfig,
    pub ldap: Option<LdapConfig>,
    /// Directory groups → policy groups; a user's first listed match wins.
    pub groups: Vec<GroupMapping>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            methods: Vec::new(),
            basic_realm: "permeable".into(),
            basic_over_plaintext: false,
            on_unavailable: OnUnavailable::Refuse,
            cache_ttl_seconds: 300,
            negative_ttl_seconds: 30,
            cache_size: 10_000,
            negotiate: NegotiateConfig::default(),
            ldap: None,
            groups: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NegotiateConfig {
    /// Keytab holding the service key (`HTTP/proxy.host@REALM`); default: the system's
    /// (`KRB5_KTNAME`, else `/etc/krb5.keytab`).
    pub keytab: Option<PathBuf>,
    /// The service principal; default: any key in the keytab.
    pub principal: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// `ldaps://host[:port]`, or `ldap://host[:port]` with `starttls: true`.
    pub url: String,
    pub starttls: bool,
    /// CA certificates (PEM) trusted for the directory, on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Time for connecting and for each operation.
    pub timeout_ms: u64,
    /// Account used to find users and read groups; anonymous when absent.
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<PathBuf>,
    /// A user's DN from a template (`uid={user},ou=people,dc=example,dc=com`)…
    pub user_dn: Option<String>,
    /// …or from a search under `user_base` with `user_filter` (`(sAMAccountName={user})`;
    /// `{principal}` is the whole Kerberos principal).
    pub user_base: Option<String>,
    pub user_filter: Option<String>,
    /// The attribute holding the user's name as the directory spells it (recorded as the
    /// user): `uid`, or `sAMAccountName` on Active Directory.
    pub name_attribute: String,
    /// The user's attribute listing the groups' DNs.
    pub group_attribute: String,
    /// Instead of `group_attribute`: groups found under `group_base` with `group_filter`
    /// (`(member={dn})`).
    pub group_base: Option<String>,
    pub group_filter: Option<String>,
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: String::new(),
            starttls: false,
            ca_file: None,
            timeout_ms: 3_000,
            bind_dn: None,
            bind_password_file: None,
            user_dn: None,
            user_base: None,
            user_filter: None,
            name_attribute: "uid".into(),
            group_attribute: "memberOf".into(),
            group_base: None,
            group_filter: None,
        }
    }
}

/// One directory group (by DN) and the policy group its members get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMapping {
    pub directory: String,
    pub group: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesConfig {
    pub organisation: String,
    pub policy_url: Option<String>,
    pub help_url: Option<String>,
    /// Logo as a data: URL or an https URL (a data: URL keeps pages self-contained).
    pub logo: Option<String>,
    pub accent_color: String,
    /// Key signing coach acknowledgements; generated per process when absent.
    pub coach_key_file: Option<PathBuf>,
    /// How long a coach acknowledgement lasts, in minutes.
    pub coach_ttl_minutes: u64,
}

impl Default for PagesConfig {
    fn default() -> Self {
        PagesConfig {
            organisation: "Your organisation".into(),
            policy_url: None,
            help_url: None,
            logo: None,
            accent_color: "#1f4e9c".into(),
            coach_key_file: None,
            coach_ttl_minutes: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// Groups with fewer distinct clients are reported as `suppressed` (k-anonymity).
    pub min_group_clients: usize,
    /// How many shared link domains get their own label; the rest count as `other`.
    pub shared_domains: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            min_group_clients: 5,
            shared_domains: 100,
        }
    }
}

/// A configuration error located in its file, reported as the rule files' errors are.
pub type ConfigError = LocatedError;

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the configuration: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parse configuration text; `path` is only used to locate errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message: crate::engine::policy::suggest::serde_message_with_suggestion(
                    e.to_string().split(" at line ").next().unwrap_or(""),
                ),
            }
        })?;
        config.validate(path, text)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let locate = |key: &str, message: String| {
            let (line, column) = locate_key(text, key);
            ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        if self.proxy.listen.is_empty()
            && self.transparent.https_listen.is_empty()
            && self.transparent.http_listen.is_empty()
        {
            return Err(locate(
                "listen",
                "no listener: set proxy.listen or a transparent listener".into(),
            ));
        }
        if self.ca.cert.is_some() != self.ca.key.is_some() {
            return Err(locate("ca", "ca.cert and ca.key go together".into()));
        }
        for key in self.upstream.resolve.keys() {
            if split_host_port(key).is_none() {
                return Err(locate(
                    key,
                    format!("upstream.resolve key {key:?} must be host:port"),
                ));
            }
        }
        if !matches!(
            self.inspection.on_uninspectable,
            Action::Allow | Action::Log | Action::Block
        ) {
            return Err(locate(
                "on_uninspectable",
                "inspection.on_uninspectable must be allow, log or block".into(),
            ));
        }
        if self.inspection.max_body == 0 {
            return Err(locate("max_body", "inspection.max_body must be > 0".into()));
        }
        if self.proxy.body_timeout_seconds == 0 {
            return Err(locate(
                "body_timeout_seconds",
                "proxy.body_timeout_seconds must be > 0".into(),
            ));
        }
        if self.upstream.dns_timeout_ms == 0 {
            return Err(locate(
                "dns_timeout_ms",
                "upstream.dns_timeout_ms must be > 0".into(),
            ));
        }
        let locate_auth = |key: &str, message: String| {
            let (line, column) = locate_key_after(text, "auth:", key);
            ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        self.validate_auth(&locate_auth)
    }

    /// The `auth` section's rules; `locate` finds a key within that section.
    fn validate_auth(
        &self,
        locate: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let auth = &self.auth;
        let basic = auth.methods.contains(&AuthMethod::Basic);
        if basic && auth.ldap.is_none() {
            return Err(locate(
                "methods",
                "auth.methods has basic: set auth.ldap, the directory that checks passwords".into(),
            ));
        }
        if basic && !auth.basic_over_plaintext {
            if let Some(addr) = self.proxy.listen.iter().find(|a| !a.ip().is_loopback()) {
                return Err(locate(
                    "methods",
                    format!(
                        "auth.methods has basic, and proxy.listen {addr} is a plain listener \
                         off loopback: Basic would carry passwords in clear over the network; \
                         use negotiate, or set auth.basic_over_plaintext: true if that \
                         network is trusted"
                    ),
                ));
            }
        }
        if auth.cache_size == 0 {
            return Err(locate("cache_size", "auth.cache_size must be > 0".into()));
        }
        let Some(ldap) = &auth.ldap else {
            return Ok(());
        };
        let lower = ldap.url.to_ascii_lowercase();
        if lower.starts_with("ldap://") {
            if !ldap.starttls {
                return Err(locate(
                    "url",
                    "auth.ldap.url is ldap:// without starttls: passwords would reach the \
                     directory in clear; use ldaps:// or starttls: true"
                        .into(),
                ));
            }
        } else if lower.starts_with("ldaps://") {
            if ldap.starttls {
                return Err(locate(
                    "starttls",
                    "auth.ldap.starttls is for ldap:// URLs; ldaps:// is TLS already".into(),
                ));
            }
        } else {
            return Err(locate(
                "url",
                format!(
                    "auth.ldap.url {:?} must start with ldaps:// or ldap://",
                    ldap.url
                ),
            ));
        }
        match (&ldap.user_dn, &ldap.user_base, &ldap.user_filter) {
            (Some(t), None, None) if t.contains("{user}") => {}
            (Some(_), None, None) => {
                return Err(locate(
                    "user_dn",
                    "auth.ldap.user_dn must contain {user}".into(),
                ))
            }
            (None, Some(_), Some(f)) if f.contains("{user}") || f.contains("{principal}") => {}
            (None, Some(_), Some(_)) => {
                return Err(locate(
                    "user_filter",
                    "auth.ldap.user_filter must contain {user} or {principal}".into(),
                ))
            }
            _ => {
                return Err(locate(
                    "ldap",
                    "auth.ldap needs user_dn (a template), or user_base with user_filter (a \
                     search), not both"
                        .into(),
                ))
            }
        }
        if ldap.group_base.is_some() != ldap.group_filter.is_some() {
            return Err(locate(
                "group_",
                "auth.ldap.group_base and group_filter go together".into(),
            ));
        }
        if ldap.bind_dn.is_some() != ldap.bind_password_file.is_some() {
            return Err(locate(
                "bind_",
                "auth.ldap.bind_dn and bind_password_file go together".into(),
            ));
        }
        if ldap.timeout_ms == 0 {
            return Err(locate(
                "timeout_ms",
                "auth.ldap.timeout_ms must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// The state directory: configured, `$PERMEABLE_STATE_DIR`, `$XDG_STATE_HOME/permeable`,
    /// or `~/.local/state/permeable`.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("PERMEABLE_STATE_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
            return PathBuf::from(dir).join("permeable");
        }
        match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".local/state/permeable"),
            None => PathBuf::from("/var/lib/permeable"),
        }
    }
}

/// Best-effort position of `key` in the text, for semantic errors found after parsing.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if let Some(col) = line.find(key) {
            return (i + 1, col + 1);
        }
    }
    (1, 1)
}

/// Best-effort position of `key` after the top-level line starting with `section` (so
/// that a key named in several sections is found in the right one).
fn locate_key_after(text: &str, section: &str, key: &str) -> (usize, usize) {
    let Some(start) = text.lines().position(|l| l.starts_with(section)) else {
        return locate_key(text, key);
    };
    for (i, line) in text.lines().enumerate().skip(start) {
        let from = if i == start { section.len() } else { 0 };
        if let Some(col) = line.get(from..).and_then(|rest| rest.find(key)) {
            return (i + 1, from + col + 1);
        }
    }
    locate_key(text, key)
}

/// Split `host:port` (IPv6 literal in brackets) into its parts.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let port = rest[end + 1..].strip_prefix(':')?;
        (&rest[..end], port)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults() {
        let c = Config::parse(Path::new("c.yaml"), "").unwrap();
        assert_eq!(c.proxy.listen[0].to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9180");
    }

    #[test]
    fn unknown_key_is_located() {
        let err = Config::parse(
            Path::new("c.yaml"),
            "proxy:\n  listen: [\"127.0.0.1:1\"]\n  lisen: 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("c.yaml:3:3: ") && err.contains("unknown field `lisen`"),
            "{err}"
        );
    }

    #[test]
    fn removed_fast_path_is_located_and_explained() {
        for (text, at) in [
            (
                "proxy:\n  listen: [\"127.0.0.1:1\"]\n  fast_path: true\n",
                "c.yaml:3:14: ",
            ),
            ("proxy: { fast_path: false }\n", "c.yaml:1:21: "),
            ("proxy:\n  fast_path: yes please\n", "c.yaml:2:14: "),
        ] {
            let err = Config::parse(Path::new("c.yaml"), text)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(at)
                    && err.contains("proxy.fast_path: ")
                    && err.contains("removed: plain HTTP always goes through the pipeline"),
                "{text:?}: {err}"
            );
        }
        // Without it, the same file is fine.
        assert!(
            Config::parse(Path::new("c.yaml"), "proxy:\n  listen: [\"127.0.0.1:1\"]\n").is_ok()
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let err = Config::parse(
            Path::new("c.yaml"),
            "upstream:\n  connect_timeout_ms: soon\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.yaml:2:"), "{err}");
    }

    #[test]
    fn basic_on_a_plain_listener_off_loopback_is_refused_where_it_is_asked_for() {
        let text = "pages:\n  policy_url: https://intranet.example/social\nproxy:\n  listen: [\"0.0.0.0:8080\"]\nauth:\n  methods: [negotiate, basic]\n  ldap:\n    url: ldaps://dc.example.com\n    user_dn: \"uid={user},ou=people,dc=example,dc=com\"\n";
        let err = Config::parse(Path::new("c.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yaml:6:3: ")
                && err.contains("0.0.0.0:8080")
                && err.contains("basic_over_plaintext"),
            "{err}"
        );
        let trusted = text.replace("auth:\n", "auth:\n  basic_over_plaintext: true\n");
        assert!(Config::parse(Path::new("c.yaml"), &trusted).is_ok());
        // On loopback (a local helper in front, or a test) Basic needs no such statement.
        let local = text.replace("0.0.0.0:8080", "127.0.0.1:8080");
        assert!(Config::parse(Path::new("c.yaml"), &local).is_ok());
        // Negotiate alone sends no password.
        let kerberos = text.replace("[negotiate, basic]", "[negotiate]");
        assert!(Config::parse(Path::new("c.yaml"), &kerberos).is_ok());
    }

    #[test]
    fn directory_settings_that_would_leak_or_cannot_work_are_located() {
        let base = "auth:\n  methods: [basic]\n  ldap:\n    url: URL\n    USER\n";
        for (url, user, at, says) in [
            (
                "ldap://dc.example.com",
                "user_dn: \"uid={user},dc=x\"",
                "c.yaml:4:5: ",
                "starttls",
            ),
            (
                "http://dc",
                "user_dn: \"uid={user},dc=x\"",
                "c.yaml:4:5: ",
                "ldaps://",
            ),
            ("ldaps://dc", "user_dn: \"dc=x\"", "c.yaml:5:5: ", "{user}"),
            (
                "ldaps://dc",
                "user_base: \"dc=x\"",
                "c.yaml:3:3: ",
                "user_dn",
            ),
        ] {
            let text = base.replace("URL", url).replace("USER", user);
            let err = Config::parse(Path::new("c.yaml"), &text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(at) && err.contains(says), "{text}: {err}");
        }
        let err = Config::parse(Path::new("c.yaml"), "auth:\n  methods: [basic]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.yaml:2:3: ") && err.contains("auth.ldap"),
            "{err}"
        );
        let err = Config::parse(Path::new("c.yaml"), "auth:\n  methods: [ntlm]\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.yaml:2:"), "{err}");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("x.com:443"), Some(("x.com", 443)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("x.com"), None);
        assert_eq!(split_host_port("::1:80"), None);
    }
}
