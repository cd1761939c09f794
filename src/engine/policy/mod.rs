//! The policy engine's public face: rule files in, an immutable [`Policy`] out, and for
//! each request a [`Classification`] (from the head) and a [`Decision`] (with the body).
//!
//! Stages, each in its own module:
//! - [`schema`]: the YAML shapes (serde, unknown keys rejected), see `docs/rules.md`;
//! - [`locate`]: positions of YAML nodes, so every error reads `FILE:LINE:COL: message`;
//! - [`compile`]: schema → runtime types (regexes, automata), collecting *all* errors;
//! - [`evaluate`]: decode → detect → match rules → strictest enforced action → redact.
//!
//! A `Policy` is built once, shared in an `Arc` across threads and replaced as a whole on
//! reload; its rules never change. Its one interior state is the cache of decisions on
//! requests without a body ([`Policy::decide_untraced`]), behind a read-write lock that a
//! request holds only to look a decision up or to add one.

pub mod compile;
pub mod evaluate;
pub mod locate;
pub mod refusal;
pub mod schema;
pub mod suggest;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::classify::Activity;
pub use crate::engine::classify::{engine_reads, method_name, RequestHead, ENGINE_HEADERS};
use crate::engine::decode::{ContentField, Uninspectable};
use crate::engine::detect::Detectors;

/// Engine settings that come from the gateway's configuration, not from the rule files.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Largest body (after decompression) that is inspected; larger ones are uninspectable.
    pub max_body: usize,
    /// What happens to a content-carrying request whose body could not be inspected.
    pub on_uninspectable: Action,
    /// Key of the HMAC used for `value_hash` and for the `hash` redaction.
    pub hash_key: Vec<u8>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_body: 1024 * 1024,
            on_uninspectable: Action::Block,
            hash_key: b"permeable-default-hash-key".to_vec(),
        }
    }
}

/// What the gateway does with a request. Ordered from the most to the least permissive,
/// so the strictest of several actions is their maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Log,
    Redact,
    Coach,
    Block,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Log => "log",
            Action::Redact => "redact",
            Action::Coach => "coach",
            Action::Block => "block",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Some(Action::Allow),
            "log" => Some(Action::Log),
            "redact" => Some(Action::Redact),
            "coach" => Some(Action::Coach),
            "block" => Some(Action::Block),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a rule changes what happens (`Enforce`) or is only evaluated and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        }
    }
}

/// One site of the catalogue.
#[derive(Debug)]
pub struct Site {
    /// Shared with every classification that names the site.
    pub id: Arc<str>,
    pub name: String,
    /// `example.com` (exact) or `*.example.com` (any subdomain).
    pub domains: Vec<String>,
    /// Whether CONNECTs to these domains are decrypted.
    pub intercept: bool,
    /// Whether the site's activities are also recognised by API shape on any intercepted host.
    pub any_host: bool,
    pub(crate) activities: Vec<Activity>,
    /// Methods the site routes as others (`PATCH` as `PUT`).
    pub(crate) method_aliases: Vec<(String, Vec<String>)>,
    /// Fields the safety net does not scan: the site's own tokens.
    pub(crate) noise: Vec<ContentField>,
    /// Activities whose requests the safety net does not scan (logins carry credentials
    /// for the site itself).
    pub(crate) noise_activities: Vec<String>,
    /// How the site's API reports an error, per endpoint, in file order.
    pub(crate) refusals: Vec<refusal::Refusal>,
}

impl Site {
    /// The shape in which the site's API would refuse a request to `host` and `path`, when
    /// the site file declares one for it.
    pub fn refusal_for(&self, host: &str, path: &str) -> Option<&refusal::Refusal> {
        self.refusals.iter().find(|r| r.applies(host, path))
    }

    /// Names of the site's activities, in file order, without duplicates.
    pub fn activity_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for a in &self.activities {
            if !names.iter().any(|n| **n == *a.name) {
                names.push(a.name.to_string());
            }
        }
        names
    }
}

/// One error in a rule set, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedError {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for LocatedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

impl std::error::Error for LocatedError {}

/// Every error found in a rule set (never only the first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleErrors(pub Vec<LocatedError>);

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleErrors {}

/// What the head alone says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    /// `None`: not a catalogue site. (The rule set's own names, shared.)
    pub site: Option<Arc<str>>,
    /// `"unclassified"` when no activity matched.
    pub activity: Arc<str>,
    /// The body must be buffered: it is inspected, or an activity condition looks into it.
    pub needs_body: bool,
    /// The query string is inspected (a write request, or content the activity names in
    /// it): a decision cannot be remembered for every request of the same shape.
    pub inspects_query: bool,
    /// The site's index in the policy that classified the head, and what its activities
    /// said, so that deciding with the same policy need not classify the head again.
    pub(crate) head_match: Option<(usize, crate::engine::classify::SiteMatch)>,
}

/// One rule that matched a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    pub id: String,
    pub action: Action,
    pub mode: Mode,
}

/// One piece of sensitive content found in a field. Offsets are bytes into the decoded
/// text of `field`; the value itself is never kept, only its keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub category: String,
    pub detector: String,
    pub field: String,
    pub start: usize,
    pub end: usize,
    pub value_hash: String,
    /// Found in a field the activity names as content; otherwise by the safety net, which
    /// counts only for rules with `anywhere: true`.
    pub in_content: bool,
}

/// The engine's answer for one request.
#[derive(Clone, Debug)]
pub struct Decision {
    pub site: Option<String>,
    pub activity: String,
    /// The enforced outcome.
    pub action: Action,
    /// The winning rule.
    pub rule: Option<String>,
    /// The winning rule's message for the employee.
    pub message: Option<String>,
    /// Every matching rule, enforced or monitored.
    pub matches: Vec<RuleMatch>,
    pub findings: Vec<Finding>,
    /// `Some(bytes)` when redaction rewrote the body (same Content-Encoding as the input).
    pub body: Option<Vec<u8>>,
    /// `Some(path?query)` when redaction rewrote the query string.
    pub target: Option<String>,
    /// Why the body could not be inspected.
    pub uninspectable: Option<Uninspectable>,
    /// Human-readable steps, for `explain`, `test` and debugging.
    pub trace: Vec<String>,
}

impl Decision {
    /// Why the body could not be inspected, in words.
    pub fn uninspectable_reason(&self) -> Option<&str> {
        self.uninspectable.as_ref().map(|u| u.reason.as_str())
    }
}

/// Name of the built-in rule applied when a content-carrying body cannot be inspected and
/// no rule of the set speaks about uninspectable requests.
pub const UNINSPECTABLE_RULE: &str = "inspection.on_uninspectable";

/// Activity name of requests to a catalogue site that match no activity.
pub const UNCLASSIFIED: &str = "unclassified";

/// [`UNCLASSIFIED`], shared by the classifications that say it.
pub(crate) fn unclassified() -> Arc<str> {
    static NAME: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| UNCLASSIFIED.into());
    NAME.clone()
}

/// (site index, what its activities said of the head) → decisions by group.
pub(crate) type BodilessDecisions = foldhash::HashMap<
    (usize, crate::engine::classify::SiteMatch),
    Vec<(Option<String>, Arc<Decision>)>,
>;

/// Bounds on the remembered bodiless decisions: keys, and groups per key (a trusted
/// identity header may name any group).
const BODILESS_KEYS: usize = 4096;
const BODILESS_GROUPS: usize = 64;

/// What the detectors found in texts the safety net sees again and again: the member and
/// parameter names of a request (a web client sends the same dozens of feature flags with
/// every call) and its path. Bounded: emptied when full.
pub(crate) type RememberedScans = foldhash::HashMap<Box<str>, Arc<[crate::engine::detect::Match]>>;

/// Bounds on the remembered scans: texts, and the length of one.
const REMEMBERED_SCANS: usize = 1024;
const REMEMBERED_SCAN_LEN: usize = 16 * 1024;

/// A compiled, immutable rule set.
pub struct Policy {
    pub(crate) version: String,
    pub(crate) sites: Vec<Site>,
    pub(crate) exact_hosts: foldhash::HashMap<String, usize>,
    /// `(".example.com", site index)`, longest suffix first.
    pub(crate) suffix_hosts: Vec<(String, usize)>,
    pub(crate) any_host_sites: Vec<usize>,
    /// Decisions on requests without a body, remembered: they depend only on the site, what
    /// its activities said of the head, and the group (see [`Policy::decide_untraced`]).
    pub(crate) bodiless: parking_lot::RwLock<BodilessDecisions>,
    /// Scans of names and paths, remembered (see [`Policy::scan_remembered`]).
    pub(crate) remembered_scans: parking_lot::RwLock<RememberedScans>,
    pub(crate) detectors: Detectors,
    pub(crate) rules: Vec<compile::Rule>,
    /// By detector index: whether the safety net runs it (its category or id is named by a
    /// rule with `anywhere: true`). All false: no safety net.
    pub(crate) net: Vec<bool>,
    pub(crate) opts: EngineOptions,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("version", &self.version)
            .field("sites", &self.sites.len())
            .field("detectors", &self.detectors.len())
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Policy {
    /// The detectors' matches in the names or the path of a request, remembered: the same
    /// ones come with request after request, and a scan is a pure function of the text and this
    /// (immutable) rule set.
    pub(crate) fn scan_remembered(&self, text: &str) -> Arc<[crate::engine::detect::Match]> {
        if text.len() > REMEMBERED_SCAN_LEN {
            return self.detectors.scan(text).into();
        }
        if let Some(found) = self.remembered_scans.read().get(text) {
            return found.clone();
        }
        let found: Arc<[crate::engine::detect::Match]> = self.detectors.scan(text).into();
        let mut memo = self.remembered_scans.write();
        if memo.len() >= REMEMBERED_SCANS {
            memo.clear();
        }
        memo.insert(text.into(), found.clone());
        found
    }

    /// Reads and compiles the rule set under `dir` (`sites/`, `detectors/`, `policy.yaml`;
    /// `tests/` is checked too). Every error of every file is returned together.
    pub fn load(dir: &Path, opts: &EngineOptions) -> Result<Policy, RuleErrors> {
        let files = compile::read_rule_dir(dir)?;
        compile::compile(&files, opts)
    }

    /// Compiles a rule set from in-memory files, named by their path relative to the rule
    /// directory (`sites/x.yaml`, `detectors/pii.yaml`, `policy.yaml`, …), e.g. a copy built
    /// into the binary.
    pub fn from_files(
        files: &[(PathBuf, String)],
        opts: &EngineOptions,
    ) -> Result<Policy, RuleErrors> {
        let files: Vec<compile::SourceFile> = files
            .iter()
            .map(|(p, t)| compile::SourceFile {
                display: p.clone(),
                relative: p.clone(),
                text: t.clone(),
            })
            .collect();
        compile::compile(&files, opts)
    }

    /// Short hex hash of the rule files' contents.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// The catalogue site serving `host` (lowercase, no port): exact domains first, then
    /// the longest matching `*.suffix`.
    pub fn site_for_host(&self, host: &str) -> Option<&Site> {
        self.site_index_for_host(host)
            .and_then(|i| self.sites.get(i))
    }

    fn site_index_for_host(&self, host: &str) -> Option<usize> {
        let host = host.trim_end_matches('.');
        if let Some(&i) = self.exact_hosts.get(host) {
            return Some(i);
        }
        self.suffix_hosts
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()))
            .map(|&(_, i)| i)
    }

    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// The site `id` of this rule set's catalogue.
    pub fn site_by_id(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| &*s.id == id)
    }

    /// Every activity name any site declares, plus `unclassified`: a bounded label set.
    pub fn activity_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in &self.sites {
            for n in s.activity_names() {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names.push(UNCLASSIFIED.to_string());
        names
    }

    /// Ids of the rules, in file order, plus the built-in uninspectable rule.
    pub fn rule_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.rules.iter().map(|r| r.id.clone()).collect();
        ids.push(UNINSPECTABLE_RULE.to_string());
        ids
    }

    /// Ids of the detectors, in load order.
    pub fn detector_ids(&self) -> Vec<String> {
        self.detectors.ids()
    }

    /// Classifies a request from its head alone.
    pub fn classify(&self, head: &RequestHead) -> Classification {
        evaluate::classify_head(self, head)
    }

    /// Decides what to do with a request. `body: None` for a request whose classification
    /// needs the body means the body is unavailable (too large): it is uninspectable.
    pub fn decide(
        &self,
        head: &RequestHead,
        class: &Classification,
        body: Option<&[u8]>,
    ) -> Decision {
        evaluate::decide(self, head, class, body, true)
    }

    /// The same decision without its human-readable trace (`Decision::trace` stays
    /// empty): what the proxy asks on every request, where nobody reads the trace.
    ///
    /// Requests without a body (page views, mostly) are decided once per site, activity
    /// match and group, and the decision remembered for the life of this rule set: such a
    /// request gets the remembered decision itself, not a copy.
    pub fn decide_untraced(
        &self,
        head: &RequestHead,
        class: &Classification,
        body: Option<&[u8]>,
    ) -> Arc<Decision> {
        let key = match (body, self.head_match_of(class)) {
            (None, Some(key)) if !class.needs_body && !class.inspects_query => key,
            _ => return Arc::new(evaluate::decide(self, head, class, body, false)),
        };
        let group = head.group.as_deref();
        let known = self.bodiless.read().get(&key).and_then(|by_group| {
            by_group
                .iter()
                .find(|(g, _)| g.as_deref() == group)
                .map(|(_, d)| d.clone())
        });
        if let Some(decision) = known {
            return decision;
        }
        let decision = Arc::new(evaluate::decide(self, head, class, None, false));
        let mut memo = self.bodiless.write();
        if memo.len() < BODILESS_KEYS || memo.contains_key(&key) {
            let by_group = memo.entry(key).or_default();
            if by_group.len() < BODILESS_GROUPS
                && !by_group.iter().any(|(g, _)| g.as_deref() == group)
            {
                by_group.push((head.group.clone(), decision.clone()));
            }
        }
        decision
    }

    /// The classification's site index and head match, when this policy made it.
    pub(crate) fn head_match_of(
        &self,
        class: &Classification,
    ) -> Option<(usize, crate::engine::classify::SiteMatch)> {
        class.head_match.filter(|&(i, _)| {
            self.sites
                .get(i)
                .is_some_and(|s| class.site.as_ref().is_some_and(|c| Arc::ptr_eq(c, &s.id)))
        })
    }

    /// Runs every detector over one text (the field is named `text`).
    pub fn scan_text(&self, text: &str) -> Vec<Finding> {
        evaluate::scan_text(self, text)
    }

    /// Runs every detector over a body decoded per `content_type` (for `permeable scan`).
    pub fn scan(&self, content_type: &str, body: &[u8]) -> Result<Vec<Finding>, Uninspectable> {
        evaluate::scan_body(self, content_type, body)
    }

    /// Whether the safety net scans write requests (some rule has `anywhere: true`).
    pub fn has_safety_net(&self) -> bool {
        self.net.iter().any(|&b| b)
    }
}

/// Rule directories for tests: a copy of another's catalogue and detectors, under which a
/// test writes its own `policy.yaml`.
#[cfg(test)]
pub(crate) fn copy_catalogue(from: &Path, to: &Path) {
    for sub in ["sites", "detectors"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for f in std::fs::read_dir(from.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, to.join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_order_from_allow_to_block() {
        assert!(Action::Allow < Action::Log);
        assert!(Action::Log < Action::Redact);
        assert!(Action::Redact < Action::Coach);
        assert!(Action::Coach < Action::Block);
    }

    #[test]
    fn head_from_url_strips_port_and_lowercases_host() {
        let h = RequestHead::from_url("post", "https://X.com:443/a/b?c=d", vec![], None).unwrap();
        assert_eq!(h.host, "x.com");
        assert_eq!(h.method, "POST");
        assert_eq!(h.path_only(), "/a/b");
        assert_eq!(h.query(), Some("c=d"));
    }

    #[test]
    fn policy_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Policy>();
    }
}
