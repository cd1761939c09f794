//! The YAML shapes of rule files, as documented in `docs/rules.md`. Every struct rejects
//! unknown keys; semantic checks (regexes, categories, references) happen in `compile`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Action;

/// One value or a list of them (`method: POST` or `method: [POST, PUT]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `sites/<site>.yaml` without its activities (those are read one by one so that every
/// faulty activity is reported).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSpec {
    pub site: String,
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default = "default_true")]
    pub intercept: bool,
    #[serde(default)]
    pub any_host: bool,
    /// Methods the site routes as others: `{ PATCH: [PUT] }`.
    #[serde(default)]
    pub method_aliases: BTreeMap<String, OneOrMany<String>>,
    /// Path regexes compare case (default: they ignore it, as many routers do).
    #[serde(default)]
    pub paths_case_sensitive: bool,
    /// Fields (and whole activities) the safety net does not scan.
    #[serde(default)]
    pub noise: Vec<NoiseSpec>,
    /// Read separately; present here only so that the key is known.
    #[serde(default)]
    pub activities: Option<serde_yaml::Value>,
    /// How the site's API reports an error: one [`RefusalSpec`] or a list of them. Read
    /// separately, like `activities`, so that each entry's errors are located.
    #[serde(default)]
    pub refusal: Option<serde_yaml::Value>,
}

/// One `refusal:` entry: the status and JSON body the gateway answers an API call with when
/// a rule blocks or coaches it, shaped as the site's own errors so that its clients show
/// the rule's message. Entries are tried in order; `host`/`path` narrow one to some
/// endpoints, and an entry without either answers every other API call of the site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalSpec {
    /// A regex on the host (case ignored).
    #[serde(default)]
    pub host: Option<String>,
    /// A regex on the path, without the query.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default = "default_refusal_status")]
    pub status: u16,
    /// The JSON object answered; `{message}`, `{rule}`, `{action}`, `{request_id}`, `{site}`
    /// and `{categories}` in its strings are filled in.
    pub body: serde_yaml::Value,
    /// Also carry the gateway's own fields (`action`, `rule`, `message`, `categories`,
    /// `request_id`, `policy_url`, `continue_url`, `reason`) beside the site's, where the body
    /// does not use those names: for sites whose clients tolerate unknown members.
    #[serde(default)]
    pub gateway_fields: bool,
}

fn default_refusal_status() -> u16 {
    403
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySpec {
    pub activity: String,
    #[serde(default)]
    pub method: Option<OneOrMany<String>>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub graphql_operation: Option<String>,
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    #[serde(default)]
    pub json: BTreeMap<String, String>,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub content: Vec<ContentSpec>,
}

/// A selector: where the user's words are (`content:`), or a field the safety net leaves
/// alone (`noise:`). Exactly one of the keys; `body` is for content only, `activity` (a
/// whole activity the safety net leaves alone) for noise only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    /// A JSON pointer; `*` matches every array element / object member.
    #[serde(default)]
    pub json: Option<String>,
    /// A form field.
    #[serde(default)]
    pub form: Option<String>,
    /// A query-string parameter.
    #[serde(default)]
    pub query: Option<String>,
    /// JSON inside a form field.
    #[serde(default)]
    pub form_json: Option<FormJsonSpec>,
    /// A multipart part by name, `*` for every text part.
    #[serde(default)]
    pub multipart: Option<String>,
    /// The whole decoded body.
    #[serde(default)]
    pub body: Option<bool>,
    /// A whole activity (noise only).
    #[serde(default)]
    pub activity: Option<String>,
}

/// An entry of an activity's `content:`.
pub type ContentSpec = SelectorSpec;
/// An entry of a site's `noise:`.
pub type NoiseSpec = SelectorSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormJsonSpec {
    pub field: String,
    pub pointer: String,
}

/// `detectors/*.yaml`: `detectors: [...]`, each item read separately.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    pub id: String,
    pub category: String,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub patterns: Vec<String>,
    #[serde(default)]
    pub dictionary: Vec<String>,
    #[serde(default)]
    pub dictionary_file: Option<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    #[serde(default)]
    pub validator: Option<String>,
    #[serde(default)]
    pub context: Option<ContextSpec>,
    #[serde(default)]
    pub redaction: Option<RedactionSpec>,
    /// Written variants of the dictionary's terms (default: all kinds).
    #[serde(default)]
    pub variants: Option<crate::engine::detect::Variants>,
    #[serde(default)]
    pub placeholders: Option<PlaceholdersSpec>,
    /// Whether the detector also reads base64 blobs (default: `secret.*` detectors).
    #[serde(default)]
    pub wrapped: Option<bool>,
}

/// What a detector's placeholders look like (see `detect::placeholder`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceholdersSpec {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub min_entropy: Option<f64>,
    #[serde(default)]
    pub runs: Option<bool>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub example_pattern: Option<String>,
    #[serde(default)]
    pub report_examples: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    pub words: Vec<String>,
    #[serde(default = "default_window")]
    pub window: usize,
    #[serde(default)]
    pub required: bool,
}

fn default_window() -> usize {
    40
}

/// How a detector's findings are redacted: exactly one of the keys.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionSpec {
    #[serde(default)]
    pub mask: Option<MaskSpec>,
    #[serde(default)]
    pub replace: Option<String>,
    #[serde(default)]
    pub hash: Option<HashSpec>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    #[serde(default = "default_mask_char")]
    pub char: char,
}

fn default_keep_last() -> usize {
    4
}

fn default_mask_char() -> char {
    '*'
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HashSpec {
    /// Hex digits of the HMAC kept.
    #[serde(default)]
    pub length: Option<usize>,
    /// `{hash}`, `{category}` and `{detector}` are replaced.
    #[serde(default)]
    pub template: Option<String>,
}

/// One item of `policy.yaml`'s `rules:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub when: ConditionSpec,
    #[serde(default)]
    pub unless: Option<ConditionSpec>,
    /// An [`Action`] by name (read as text so that a misspelt one is reported with the
    /// rule's other mistakes).
    pub action: String,
    #[serde(default)]
    pub message: Option<String>,
    /// A [`super::Mode`] by name.
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    #[serde(default)]
    pub sites: Option<Vec<String>>,
    #[serde(default)]
    pub activities: Option<Vec<String>>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub detectors: Option<Vec<String>>,
    #[serde(default)]
    pub min_count: Option<usize>,
    #[serde(default)]
    pub uninspectable: Option<bool>,
    #[serde(default)]
    pub unclassified: Option<bool>,
    /// Findings anywhere in a write request count, not only in the activity's content:
    /// the safety net scans every other value for this rule's categories.
    #[serde(default)]
    pub anywhere: Option<bool>,
}

/// One item of `tests/*.yaml`'s `tests:`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    pub name: String,
    pub request: TestRequest,
    pub expect: TestExpect,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub body_file: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
}

fn default_method() -> String {
    "GET".to_string()
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestExpect {
    /// A site id, or `null`/`~` for "not a catalogue site".
    #[serde(default, deserialize_with = "present")]
    pub site: Option<Option<String>>,
    #[serde(default)]
    pub activity: Option<String>,
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub not_rules: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub not_categories: Vec<String>,
    #[serde(default)]
    pub uninspectable: Option<bool>,
    #[serde(default)]
    pub body: Option<BodyExpect>,
    /// The path and query as forwarded (a redaction may rewrite the query).
    #[serde(default)]
    pub target: Option<TargetExpect>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetExpect {
    #[serde(default)]
    pub contains: Vec<String>,
    #[serde(default)]
    pub not_contains: Vec<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyExpect {
    #[serde(default)]
    pub contains: Vec<String>,
    #[serde(default)]
    pub not_contains: Vec<String>,
    #[serde(default)]
    pub json: BTreeMap<String, serde_yaml::Value>,
    /// `true`: the body must be forwarded unchanged.
    #[serde(default)]
    pub unchanged: Option<bool>,
}
