//! Site-shaped refusals: how a catalogue site's API reports an error, so that the gateway's
//! answer to a blocked or coached API call reads, in the site's own clients and SDKs, as an
//! error of that site carrying the rule's message.
//!
//! Each SDK reads its own site's error fields (Mastodon.py `error`, tweepy `errors[].message`
//! or `detail`, atproto `error` + `message`, praw `reason` + `explanation`), and each turns a
//! status into an exception class and a retry policy. So a site entry declares the status
//! and a JSON template per endpoint (`refusal:` in the site file, see `docs/rules.md`), and
//! the compiler refuses the statuses clients answer with a retry or a new login.
//!
//! Rendering is pure: the proxy hands the facts of the decision, and gets the JSON body.

use regex::Regex;
use serde_json::{Map, Value};

/// Statuses a refusal may not use, and why: each makes some client retry the request or
/// ask for credentials, where a refusal must read as final.
pub const REFUSED_STATUSES: &[(u16, &str)] = &[
    (401, "clients refresh tokens or sign in again"),
    (407, "clients ask for proxy credentials"),
    (408, "clients retry it (praw)"),
    (409, "clients retry it as a transient failure (atproto)"),
    (413, "clients retry it as a transient failure (atproto)"),
    (425, "clients retry it"),
    (
        429,
        "clients wait and retry (tweepy, Mastodon.py, praw, atproto)",
    ),
];

/// Placeholders a refusal body may use in its strings.
pub const PLACEHOLDERS: &[&str] = &[
    "message",
    "rule",
    "action",
    "request_id",
    "site",
    "categories",
];

/// A compiled `refusal:` entry.
#[derive(Debug)]
pub struct Refusal {
    pub(crate) host: Option<Regex>,
    pub(crate) path: Option<Regex>,
    pub status: u16,
    pub(crate) body: Map<String, Value>,
    pub(crate) gateway_fields: bool,
}

/// What the gateway says about a decision, in every answer shape.
#[derive(Clone, Debug, Default)]
pub struct RefusalFacts<'a> {
    pub action: &'a str,
    pub rule: &'a str,
    pub message: &'a str,
    pub categories: &'a [String],
    pub request_id: &'a str,
    pub site: &'a str,
    pub policy_url: Option<&'a str>,
    pub continue_url: Option<&'a str>,
    pub reason: Option<&'a str>,
}

impl RefusalFacts<'_> {
    /// The gateway's own fields, as its generic JSON answer carries them.
    pub fn gateway_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("action".into(), self.action.into());
        m.insert("rule".into(), self.rule.into());
        m.insert("message".into(), self.message.into());
        m.insert("categories".into(), self.categories.into());
        m.insert("request_id".into(), self.request_id.into());
        m.insert("policy_url".into(), self.policy_url.into());
        m.insert("continue_url".into(), self.continue_url.into());
        m.insert("reason".into(), self.reason.into());
        m
    }

    fn placeholder(&self, name: &str) -> Option<String> {
        Some(match name {
            "message" => self.message.to_string(),
            "rule" => self.rule.to_string(),
            "action" => self.action.to_string(),
            "request_id" => self.request_id.to_string(),
            "site" => self.site.to_string(),
            "categories" => self.categories.join(", "),
            _ => return None,
        })
    }
}

impl Refusal {
    /// Whether this entry answers for a request to `host` and `path`.
    pub fn applies(&self, host: &str, path: &str) -> bool {
        self.host.as_ref().is_none_or(|h| h.is_match(host))
            && self.path.as_ref().is_none_or(|p| p.is_match(path))
    }

    /// The answer's JSON body for `facts`.
    pub fn render(&self, facts: &RefusalFacts<'_>) -> Value {
        let mut body = Map::new();
        for (k, v) in &self.body {
            body.insert(k.clone(), fill(v, facts));
        }
        if self.gateway_fields {
            for (k, v) in facts.gateway_fields() {
                body.entry(k).or_insert(v);
            }
        }
        Value::Object(body)
    }
}

fn fill(v: &Value, facts: &RefusalFacts<'_>) -> Value {
    match v {
        Value::String(s) => Value::String(substitute(s, |name| facts.placeholder(name))),
        Value::Array(items) => Value::Array(items.iter().map(|i| fill(i, facts)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), fill(v, facts))).collect())
        }
        other => other.clone(),
    }
}

/// `{name}` spans of `s` whose name is a placeholder identifier (`[a-z_]+`), as byte ranges.
pub(crate) fn placeholders(s: &str) -> impl Iterator<Item = (usize, usize, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            if bytes[i] == b'{' {
                let start = i;
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_lowercase() || bytes[j] == b'_') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j] == b'}' && j > start + 1 {
                    i = j + 1;
                    return Some((start, j + 1, &s[start + 1..j]));
                }
            }
            i += 1;
        }
        None
    })
}

/// `s` with each known placeholder replaced; anything else is left as written (the compiler
/// has already refused unknown names).
fn substitute(s: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for (start, end, name) in placeholders(s) {
        if let Some(v) = value(name) {
            out.push_str(&s[last..start]);
            out.push_str(&v);
            last = end;
        }
    }
    out.push_str(&s[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_gateway_fields_do_not_override_the_site() {
        let body = serde_json::json!({
            "errors": [{"code": 403, "message": "{message}"}],
            "rule": "site's own",
            "note": "{action} by {rule} ({categories}) {unknown} {",
        });
        let refusal = Refusal {
            host: None,
            path: None,
            status: 403,
            body: body.as_object().unwrap().clone(),
            gateway_fields: true,
        };
        let cats = vec!["pii.a".to_string(), "secret.b".to_string()];
        let facts = RefusalFacts {
            action: "block",
            rule: "r1",
            message: "Not {sent}.",
            categories: &cats,
            request_id: "abc",
            site: "x",
            ..Default::default()
        };
        let v = refusal.render(&facts);
        assert_eq!(v["errors"][0]["message"], "Not {sent}.");
        assert_eq!(v["errors"][0]["code"], 403);
        assert_eq!(v["rule"], "site's own");
        assert_eq!(v["note"], "block by r1 (pii.a, secret.b) {unknown} {");
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["categories"], serde_json::json!(["pii.a", "secret.b"]));
        assert!(v.get("error").is_none());
    }
}
