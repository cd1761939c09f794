//! Evaluating a request against a compiled policy: classification, inspection, rule
//! matching, the strictest enforced action, and redaction.
//!
//! Semantics (documented for security staff in `docs/rules.md`):
//! - every rule is evaluated; a rule matches when its `when` matches and its `unless` (if
//!   any) does not;
//! - the strictest action among matching *enforced* rules wins; ties go to the rule that
//!   comes first in `policy.yaml`; no matching rule means `allow`;
//! - monitor rules are reported in `matches` and the trace, and change nothing;
//! - a content-carrying request whose body cannot be inspected gets the built-in
//!   [`UNINSPECTABLE_RULE`] with `inspection.on_uninspectable`, unless an enforced rule with
//!   `uninspectable: true` matched (then the rules decide);
//! - `redact` rewrites the findings of the categories named by the matching enforced redact
//!   rules (all findings when such a rule names none); if the body cannot be rewritten, or
//!   was not inspectable, the request is blocked instead: nothing unredacted is forwarded.

use super::compile::{Condition, Rule};
use super::{
    unclassified, Action, Classification, Decision, Finding, Mode, Policy, RequestHead, RuleMatch,
    UNCLASSIFIED, UNINSPECTABLE_RULE,
};
use crate::engine::classify::{self, may_have_body, HeadMatch};
use crate::engine::decode::{self, DecodedBody, Field, Uninspectable, UninspectableKind};
use crate::engine::redact::{self, FieldChange, Span};

/// Finds the site of a head (its index in the policy): the catalogue by host, then sites
/// that claim any host by API shape (only through an activity with a `path` condition).
fn site_of(policy: &Policy, head: &RequestHead) -> Option<usize> {
    if let Some(i) = policy.site_index_for_host(&head.host) {
        return Some(i);
    }
    policy.any_host_sites.iter().copied().find(|&i| {
        policy.sites.get(i).is_some_and(|s| {
            s.activities
                .iter()
                .any(|a| a.has_path() && a.match_head(head) != HeadMatch::No)
        })
    })
}

pub fn classify_head(policy: &Policy, head: &RequestHead) -> Classification {
    let Some((index, site)) = site_of(policy, head).and_then(|i| Some((i, policy.sites.get(i)?)))
    else {
        return Classification {
            site: None,
            activity: unclassified(),
            needs_body: false,
            head_match: None,
        };
    };
    let m = classify::classify_head(&site.activities, head);
    let activity = m.activity.and_then(|i| site.activities.get(i));
    let inspects = activity.is_some_and(|a| a.carries_content()) && may_have_body(head);
    Classification {
        site: Some(site.id.clone()),
        activity: activity
            .map(|a| a.name.clone())
            .unwrap_or_else(unclassified),
        needs_body: m.pending_body || inspects,
        head_match: Some((index, m)),
    }
}

/// Everything a rule condition looks at.
struct Facts<'a> {
    site: &'a str,
    activity: &'a str,
    group: Option<&'a str>,
    findings: &'a [Finding],
    uninspectable: bool,
    /// Why the body could not be inspected, for `{reason}` in messages.
    reason: &'a str,
}

/// Whether `c` holds; on `false`, why not. The reasons are written only when `explain`
/// (for the trace): a decision on the proxy path does not pay for them.
fn condition_holds(c: &Condition, f: &Facts<'_>, explain: bool) -> Result<String, String> {
    let say = |text: &dyn Fn() -> String| if explain { text() } else { String::new() };
    let mut why = Vec::new();
    if let Some(sites) = &c.sites {
        if !sites.iter().any(|s| s == f.site) {
            return Err(say(&|| format!("site {} not in {:?}", f.site, sites)));
        }
        why.push(say(&|| format!("site {}", f.site)));
    }
    if let Some(acts) = &c.activities {
        if !acts.iter().any(|a| a == f.activity) {
            return Err(say(&|| {
                format!("activity {} not in {:?}", f.activity, acts)
            }));
        }
        why.push(say(&|| format!("activity {}", f.activity)));
    }
    if let Some(groups) = &c.groups {
        match f.group {
            Some(g) if groups.iter().any(|x| x == g) => why.push(say(&|| format!("group {g}"))),
            Some(g) => return Err(say(&|| format!("group {g} not in {groups:?}"))),
            None => return Err(say(&|| format!("no group (wanted one of {groups:?})"))),
        }
    }
    if let Some(u) = c.uninspectable {
        if u != f.uninspectable {
            return Err(say(&|| {
                if u {
                    "body was inspected".into()
                } else {
                    "body was uninspectable".into()
                }
            }));
        }
        if u {
            why.push(say(&|| "body uninspectable".into()));
        }
    }
    if let Some(u) = c.unclassified {
        let is = f.activity == UNCLASSIFIED;
        if u != is {
            return Err(say(&|| {
                if u {
                    "activity is classified".into()
                } else {
                    "activity is unclassified".into()
                }
            }));
        }
    }
    if c.categories.is_some() || c.detectors.is_some() || c.min_count.is_some() {
        let count = f
            .findings
            .iter()
            .filter(|x| {
                c.categories
                    .as_ref()
                    .is_none_or(|cats| cats.iter().any(|p| p.matches(&x.category)))
            })
            .filter(|x| {
                c.detectors
                    .as_ref()
                    .is_none_or(|ds| ds.iter().any(|d| d == &x.detector))
            })
            .count();
        let need = c.min_count.unwrap_or(1);
        if count < need {
            return Err(say(&|| format!("{count} matching finding(s), need {need}")));
        }
        if need > 0 {
            why.push(say(&|| format!("{count} matching finding(s)")));
        }
    }
    if !explain {
        return Ok(String::new());
    }
    if why.is_empty() {
        why.push("no conditions".into());
    }
    Ok(why.join(", "))
}

fn rule_matches(rule: &Rule, f: &Facts<'_>, explain: bool) -> Result<String, String> {
    let why = condition_holds(&rule.when, f, explain)?;
    if let Some(u) = &rule.unless {
        if let Ok(exc) = condition_holds(u, f, explain) {
            return Err(if explain {
                format!("exception applies (unless: {exc})")
            } else {
                String::new()
            });
        }
    }
    Ok(why)
}

/// Fills `{categories}` (the categories of the findings the rule is about, never the
/// values), `{site}`, `{activity}` and `{reason}` (why a body was uninspectable) in a
/// rule's message.
fn fill_message(message: &str, rule: &Rule, f: &Facts<'_>) -> String {
    let mut cats: Vec<&str> = Vec::new();
    for x in f.findings {
        let wanted = rule
            .when
            .categories
            .as_ref()
            .is_none_or(|cs| cs.iter().any(|p| p.matches(&x.category)));
        if wanted && !cats.contains(&x.category.as_str()) {
            cats.push(&x.category);
        }
    }
    message
        .replace("{categories}", &cats.join(", "))
        .replace("{site}", f.site)
        .replace("{activity}", f.activity)
        .replace("{reason}", f.reason)
}

fn describe_findings(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} [{}] in {} at {}..{}",
                f.category, f.detector, f.field, f.start, f.end
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn scan_fields(policy: &Policy, fields: &[Field]) -> Vec<(usize, crate::engine::detect::Match)> {
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        for m in policy.detectors.scan(&f.text) {
            out.push((i, m));
        }
    }
    out
}

fn to_findings(
    policy: &Policy,
    fields: &[Field],
    matches: &[(usize, crate::engine::detect::Match)],
) -> Vec<Finding> {
    matches
        .iter()
        .filter_map(|(fi, m)| {
            let d = policy.detectors.get(m.detector)?;
            let field = fields.get(*fi)?;
            let value = field.text.get(m.start..m.end)?;
            Some(Finding {
                category: d.category.clone(),
                detector: d.id.clone(),
                field: field.name.clone(),
                start: m.start,
                end: m.end,
                value_hash: redact::keyed_hash(&policy.opts.hash_key, value),
            })
        })
        .collect()
}

/// Runs every detector over one text.
pub fn scan_text(policy: &Policy, text: &str) -> Vec<Finding> {
    let matches = policy.detectors.scan(text);
    matches
        .iter()
        .filter_map(|m| {
            let d = policy.detectors.get(m.detector)?;
            Some(Finding {
                category: d.category.clone(),
                detector: d.id.clone(),
                field: "text".into(),
                start: m.start,
                end: m.end,
                value_hash: redact::keyed_hash(&policy.opts.hash_key, text.get(m.start..m.end)?),
            })
        })
        .collect()
}

/// Runs every detector over a body decoded per `content_type` (no Content-Encoding).
pub fn scan_body(policy: &Policy, content_type: &str, body: &[u8]) -> Result<Vec<Finding>, String> {
    let decoded = decode::decode_body(
        Some(content_type),
        None,
        body,
        policy.opts.max_body.max(body.len()),
    )
    .map_err(|e| e.reason)?;
    let fields = decode::all_fields(&decoded);
    let matches = scan_fields(policy, &fields);
    Ok(to_findings(policy, &fields, &matches))
}

/// The human-readable steps of a decision, recorded only when someone will read them
/// (`explain`, `test`); the proxy's decisions skip the formatting.
struct Trace {
    on: bool,
    lines: Vec<String>,
}

impl Trace {
    fn push(&mut self, line: impl FnOnce() -> String) {
        if self.on {
            self.lines.push(line());
        }
    }
}

pub fn decide(
    policy: &Policy,
    head: &RequestHead,
    class: &Classification,
    body: Option<&[u8]>,
    traced: bool,
) -> Decision {
    let mut trace = Trace {
        on: traced,
        lines: Vec::new(),
    };
    let mut decision = Decision {
        site: None,
        activity: UNCLASSIFIED.to_string(),
        action: Action::Allow,
        rule: None,
        message: None,
        matches: Vec::new(),
        findings: Vec::new(),
        body: None,
        uninspectable: None,
        trace: Vec::new(),
    };
    let classified = policy.head_match_of(class);
    let site = match classified
        .and_then(|(i, _)| policy.sites.get(i))
        .or_else(|| {
            let id = class.site.as_deref()?;
            policy.sites.iter().find(|s| &*s.id == id)
        }) {
        Some(s) => s,
        None => {
            trace.push(|| {
                format!(
                    "host {}: not a catalogue site; allowed untouched",
                    head.host
                )
            });
            decision.trace = trace.lines;
            return decision;
        }
    };
    decision.site = Some(site.id.to_string());
    trace.push(|| format!("site: {} ({}) for host {}", site.id, site.name, head.host));

    // The body: unavailable, decodable, or not.
    let mut uninspectable: Option<Uninspectable> = None;
    let mut decoded: Option<DecodedBody> = None;
    let body = match body {
        Some(b) => Some(b),
        None if class.needs_body => {
            uninspectable = Some(Uninspectable::new(
                UninspectableKind::TooLarge,
                format!(
                    "body larger than inspection.max_body ({} bytes)",
                    policy.opts.max_body
                ),
            ));
            None
        }
        None => Some(&[][..]),
    };
    let mut decode_error = None;
    if let Some(b) = body {
        if !b.is_empty() {
            match decode::decode_body(
                head.header("content-type"),
                head.header("content-encoding"),
                b,
                policy.opts.max_body,
            ) {
                Ok(d) => decoded = Some(d),
                Err(e) => decode_error = Some(e),
            }
        }
    }

    // Classification with the body.
    // (Without a body, the head decides alone: one pass over the activities.)
    let head_match = match classified {
        Some((_, m)) => m,
        None => classify::classify_head(&site.activities, head),
    };
    let activity_index = match decoded.as_ref() {
        Some(d) => classify::classify_with_body(&site.activities, head, Some(d)),
        None => head_match.activity,
    };
    let activity = activity_index.and_then(|i| site.activities.get(i));
    decision.activity = activity.map_or(UNCLASSIFIED, |a| &a.name).to_string();
    let pending = head_match.pending_body;
    trace.push(|| {
        format!(
            "activity: {}{}",
            decision.activity,
            if pending {
                " (decided with the body)"
            } else {
                ""
            }
        )
    });

    let carries_content = activity.is_some_and(|a| a.carries_content());
    if decode_error.is_some() && (carries_content || pending) {
        uninspectable = decode_error.take();
    }
    if carries_content && uninspectable.is_none() {
        // Content fields that cannot be read in a binary body (protobuf, an unknown type):
        // the employee's words may be in it, unseen.
        if let Some(d) = decoded
            .as_ref()
            .filter(|d| matches!(d.kind, decode::BodyKind::Binary))
        {
            uninspectable = Some(Uninspectable::new(
                UninspectableKind::Binary,
                format!(
                    "{} body cannot be inspected",
                    if d.content_type.is_empty() {
                        "untyped binary"
                    } else {
                        d.content_type.as_str()
                    }
                ),
            ));
        }
    }
    if uninspectable.is_some() && !(carries_content || pending) {
        // Nothing would have been inspected: the body's absence changes nothing.
        uninspectable = None;
    }

    // Inspection.
    let mut fields: Vec<Field> = Vec::new();
    let mut matches = Vec::new();
    if let (Some(a), Some(d), None) = (activity, decoded.as_ref(), uninspectable.as_ref()) {
        if a.carries_content() {
            fields = decode::extract_fields(d, &a.content);
            if let decode::BodyKind::Multipart(parts) = &d.kind {
                for p in parts.iter().filter(|p| p.text.is_none()) {
                    trace.push(|| {
                        format!(
                            "file part {:?} ({}, {} bytes) not inspected",
                            p.filename.as_deref().unwrap_or(&p.name),
                            p.content_type.as_deref().unwrap_or("no type"),
                            p.end - p.start
                        )
                    });
                }
            }
            if matches!(d.kind, decode::BodyKind::Binary) {
                trace.push(|| {
                    format!(
                        "binary body ({}, {} bytes) not inspected",
                        d.content_type,
                        d.raw.len()
                    )
                });
            }
            matches = scan_fields(policy, &fields);
            trace.push(|| {
                format!(
                    "inspected {} field(s): {}",
                    fields.len(),
                    fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
    }
    decision.findings = to_findings(policy, &fields, &matches);
    if !decision.findings.is_empty() {
        trace.push(|| format!("findings: {}", describe_findings(&decision.findings)));
    } else if !fields.is_empty() {
        trace.push(|| "findings: none".into());
    }
    if let Some(u) = &uninspectable {
        trace.push(|| format!("uninspectable: {u}"));
    }

    // Rules.
    let facts = Facts {
        site: &site.id,
        activity: &decision.activity,
        group: head.group.as_deref(),
        findings: &decision.findings,
        uninspectable: uninspectable.is_some(),
        reason: uninspectable
            .as_ref()
            .map(|u| u.reason.as_str())
            .unwrap_or(""),
    };
    let mut winner: Option<&Rule> = None;
    let mut explicit_uninspectable = false;
    let mut redact_rules: Vec<&Rule> = Vec::new();
    for rule in &policy.rules {
        match rule_matches(rule, &facts, trace.on) {
            Ok(why) => {
                let tag = if rule.mode == Mode::Monitor {
                    " [monitor: would have]"
                } else {
                    ""
                };
                trace.push(|| format!("rule {}: matched ({why}) → {}{tag}", rule.id, rule.action));
                decision.matches.push(RuleMatch {
                    id: rule.id.clone(),
                    action: rule.action,
                    mode: rule.mode,
                });
                if rule.mode == Mode::Enforce {
                    if rule.when.uninspectable == Some(true) {
                        explicit_uninspectable = true;
                    }
                    if rule.action == Action::Redact {
                        redact_rules.push(rule);
                    }
                    if winner.is_none_or(|w| rule.action > w.action) {
                        winner = Some(rule);
                    }
                }
            }
            Err(why) => trace.push(|| format!("rule {}: not matched ({why})", rule.id)),
        }
    }
    if let Some(w) = winner {
        decision.action = w.action;
        decision.rule = Some(w.id.clone());
        decision.message = w.message.as_deref().map(|m| fill_message(m, w, &facts));
    }
    if let Some(reason) = &uninspectable {
        if !explicit_uninspectable && policy.opts.on_uninspectable >= decision.action {
            decision.action = policy.opts.on_uninspectable;
            decision.rule = Some(UNINSPECTABLE_RULE.to_string());
            decision.message = Some(format!("This request could not be inspected: {reason}."));
            decision.matches.push(RuleMatch {
                id: UNINSPECTABLE_RULE.to_string(),
                action: policy.opts.on_uninspectable,
                mode: Mode::Enforce,
            });
            trace.push(|| {
                format!(
                "rule {UNINSPECTABLE_RULE}: matched (no rule speaks for uninspectable bodies) → {}",
                policy.opts.on_uninspectable
            )
            });
        }
    }

    // Redaction.
    if decision.action == Action::Redact {
        match redact_body(
            policy,
            decoded.as_ref(),
            uninspectable.as_ref().map(|u| u.reason.as_str()),
            &fields,
            &matches,
            &redact_rules,
        ) {
            Ok(Some(bytes)) => {
                trace.push(|| format!("redacted body: {} bytes", bytes.len()));
                decision.body = Some(bytes);
            }
            Ok(None) => {
                trace.push(|| "redact: no finding to rewrite; body forwarded unchanged".into())
            }
            Err(e) => {
                trace.push(|| format!("redaction impossible ({e}); blocking instead"));
                decision.action = Action::Block;
                if decision.message.is_none() {
                    decision.message = Some(format!("This request could not be redacted: {e}."));
                }
            }
        }
    }

    match &decision.rule {
        Some(r) => trace.push(|| format!(
            "decision: {} by rule {r} (the strictest enforced action; ties go to the first rule in policy.yaml)",
            decision.action
        )),
        None => trace.push(|| "decision: allow (no enforced rule matched)".into()),
    }
    decision.uninspectable = uninspectable;
    decision.trace = trace.lines;
    decision
}

fn redact_body(
    policy: &Policy,
    decoded: Option<&DecodedBody>,
    uninspectable: Option<&str>,
    fields: &[Field],
    matches: &[(usize, crate::engine::detect::Match)],
    redact_rules: &[&Rule],
) -> Result<Option<Vec<u8>>, String> {
    if let Some(u) = uninspectable {
        return Err(format!("the body was not inspectable: {u}"));
    }
    let Some(decoded) = decoded else {
        return Ok(None);
    };
    let wanted = |category: &str, detector: &str| {
        redact_rules.iter().any(|r| {
            let cat_ok = r
                .when
                .categories
                .as_ref()
                .is_none_or(|cs| cs.iter().any(|p| p.matches(category)));
            let det_ok = r
                .when
                .detectors
                .as_ref()
                .is_none_or(|ds| ds.iter().any(|d| d == detector));
            cat_ok && det_ok
        })
    };
    let mut changes = Vec::new();
    for (fi, field) in fields.iter().enumerate() {
        let spans: Vec<Span<'_>> = matches
            .iter()
            .filter(|(i, _)| *i == fi)
            .filter_map(|(_, m)| {
                let d = policy.detectors.get(m.detector)?;
                wanted(&d.category, &d.id).then_some(Span {
                    start: m.start,
                    end: m.end,
                    category: &d.category,
                    detector: &d.id,
                    detector_order: m.detector,
                    redaction: &d.redaction,
                })
            })
            .collect();
        if spans.is_empty() {
            continue;
        }
        let (new_text, edits) = redact::redact_text(&field.text, &spans, &policy.opts.hash_key);
        changes.push(FieldChange {
            loc: field.loc.clone(),
            new_text,
            edits,
        });
    }
    if changes.is_empty() {
        return Ok(None);
    }
    redact::rewrite_body(decoded, &changes).map(Some)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::engine::policy::EngineOptions;

    fn fixture(opts: &EngineOptions) -> Policy {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-rules");
        match Policy::load(&dir, opts) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn remembered_bodiless_decisions_are_the_same_decisions() {
        // The fixture, with a rule on views that depends on the group.
        let dir = tempfile::tempdir().unwrap();
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-rules");
        for sub in ["detectors", "sites"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            for f in std::fs::read_dir(from.join(sub)).unwrap() {
                let f = f.unwrap().path();
                std::fs::copy(&f, dir.path().join(sub).join(f.file_name().unwrap())).unwrap();
            }
        }
        let rules = std::fs::read_to_string(from.join("policy.yaml")).unwrap().replace(
            "rules:\n",
            "rules:\n  - id: interns-read-only\n    when: { activities: [view], groups: [interns] }\n    action: coach\n",
        );
        std::fs::write(dir.path().join("policy.yaml"), rules).unwrap();
        let policy = Policy::load(dir.path(), &EngineOptions::default()).unwrap();
        let mut coached = 0;
        for (method, path) in [
            ("GET", "/home"),
            ("HEAD", "/x/status/1"),
            ("DELETE", "/i/api/1"),
        ] {
            for group in [None, Some("interns"), Some("sales"), Some("interns")] {
                let mut head = tweet_head(&[]);
                head.method = method.into();
                head.path = path.into();
                head.headers.clear();
                head.group = group.map(str::to_string);
                let class = policy.classify(&head);
                let fresh = decide(&policy, &head, &class, None, false);
                coached += usize::from(fresh.action == Action::Coach);
                for _ in 0..2 {
                    let d = policy.decide_untraced(&head, &class, None);
                    assert_eq!(
                        (d.action, &d.rule, &d.matches, &d.activity, &d.message),
                        (
                            fresh.action,
                            &fresh.rule,
                            &fresh.matches,
                            &fresh.activity,
                            &fresh.message
                        ),
                        "{method} {path} {group:?}"
                    );
                }
            }
        }
        assert!(coached >= 2, "the group decides views of interns");
        assert!(!policy.bodiless.read().is_empty());
    }

    #[test]
    fn untraced_decisions_are_the_same_decisions() {
        let policy = fixture(&EngineOptions::default());
        let head = tweet_head(&[]);
        let class = policy.classify(&head);
        for text in [
            "hello",
            "card 4111 1111 1111 1111",
            "AKIAIOSFODNN7EXAMPLE",
            "BLUEHERON",
        ] {
            let body = format!(r#"{{"variables":{{"tweet_text":"{text}"}}}}"#);
            let traced = policy.decide(&head, &class, Some(body.as_bytes()));
            let quick = policy.decide_untraced(&head, &class, Some(body.as_bytes()));
            assert!(!traced.trace.is_empty() && quick.trace.is_empty());
            assert_eq!(
                (
                    traced.action,
                    &traced.rule,
                    &traced.matches,
                    &traced.findings,
                    &traced.body
                ),
                (
                    quick.action,
                    &quick.rule,
                    &quick.matches,
                    &quick.findings,
                    &quick.body
                ),
                "{text}"
            );
        }
    }

    fn tweet_head(extra: &[(&str, &str)]) -> RequestHead {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        RequestHead {
            method: "POST".into(),
            scheme: "https".into(),
            host: "x.com".into(),
            path: "/i/api/graphql/q1/CreateTweet?x=1".into(),
            headers,
            ..Default::default()
        }
    }

    #[test]
    fn missing_body_of_a_content_activity_is_uninspectable() {
        let p = fixture(&EngineOptions::default());
        let head = tweet_head(&[]);
        let class = p.classify(&head);
        assert_eq!(
            (class.site.as_deref(), &*class.activity, class.needs_body),
            (Some("x"), "post", true)
        );
        let d = p.decide(&head, &class, None);
        assert_eq!(d.action, Action::Block);
        assert_eq!(d.rule.as_deref(), Some(UNINSPECTABLE_RULE));
        let u = d.uninspectable.as_ref().expect("uninspectable");
        assert_eq!(u.kind, crate::engine::decode::UninspectableKind::TooLarge);
        assert!(u.reason.contains("max_body"), "{d:?}");
        assert!(d.body.is_none());
    }

    #[test]
    fn on_uninspectable_comes_from_the_options() {
        let opts = EngineOptions {
            on_uninspectable: Action::Log,
            max_body: 64,
            ..Default::default()
        };
        let p = fixture(&opts);
        let head = tweet_head(&[]);
        let body = format!(r#"{{"variables":{{"tweet_text":"{}"}}}}"#, "a".repeat(100));
        let d = p.decide(&head, &p.classify(&head), Some(body.as_bytes()));
        assert_eq!(d.action, Action::Log);
        assert!(d.uninspectable.is_some());
    }

    #[test]
    fn gzip_bodies_are_inspected_and_redacted_in_gzip() {
        let p = fixture(&EngineOptions::default());
        let head = tweet_head(&[("content-encoding", "gzip")]);
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(br#"{"variables":{"tweet_text":"ssn 123-45-6780"}}"#)
            .unwrap();
        let gz = w.finish().unwrap();
        let d = p.decide(&head, &p.classify(&head), Some(&gz));
        assert_eq!(d.action, Action::Redact, "{:#?}", d.trace);
        let out = d.body.expect("rewritten body");
        let back = crate::engine::decode::decode_body(
            Some("application/json"),
            Some("gzip"),
            &out,
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            back.raw,
            br#"{"variables":{"tweet_text":"ssn [REDACTED:pii.us_ssn]"}}"#
        );
    }

    #[test]
    fn findings_carry_a_keyed_hash_never_the_value() {
        let a = fixture(&EngineOptions {
            hash_key: b"one".to_vec(),
            ..Default::default()
        });
        let b = fixture(&EngineOptions {
            hash_key: b"two".to_vec(),
            ..Default::default()
        });
        let head = tweet_head(&[]);
        let body = br#"{"variables":{"tweet_text":"AKIAIOSFODNN7EXAMPLE"}}"#;
        let fa = a.decide(&head, &a.classify(&head), Some(body)).findings;
        let fb = b.decide(&head, &b.classify(&head), Some(body)).findings;
        assert_eq!(fa.len(), 1);
        assert_ne!(fa[0].value_hash, fb[0].value_hash);
        assert!(!fa[0].value_hash.contains("AKIA"));
        assert_eq!(
            (fa[0].start, fa[0].end, fa[0].field.as_str()),
            (0, 20, "/variables/tweet_text")
        );
    }

    #[test]
    fn monitor_rules_are_recorded_but_not_enforced() {
        let p = fixture(&EngineOptions::default());
        let head = RequestHead {
            method: "POST".into(),
            host: "x.com".into(),
            path: "/i/api/1.1/dm/new2.json".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            ..Default::default()
        };
        let d = p.decide(
            &head,
            &p.classify(&head),
            Some(br#"{"text":"a@b.example and c@d.example"}"#),
        );
        assert_eq!(d.action, Action::Log);
        assert!(d.matches.iter().any(|m| m.id == "dm-findings-monitor"
            && m.mode == Mode::Monitor
            && m.action == Action::Block));
        assert!(d.trace.iter().any(|t| t.contains("would have")));
    }

    #[test]
    fn message_placeholders_name_categories_not_values() {
        let p = fixture(&EngineOptions::default());
        let head = tweet_head(&[]);
        let d = p.decide(
            &head,
            &p.classify(&head),
            Some(br#"{"variables":{"tweet_text":"AKIAIOSFODNN7EXAMPLE"}}"#),
        );
        assert_eq!(
            d.message.as_deref(),
            Some("That looks like a credential (secret.aws_access_key). Don't post it; rotate it.")
        );
    }

    #[test]
    fn views_need_no_body_and_other_hosts_are_allowed() {
        let p = fixture(&EngineOptions::default());
        let head = RequestHead {
            method: "GET".into(),
            host: "x.com".into(),
            path: "/home".into(),
            ..Default::default()
        };
        let class = p.classify(&head);
        assert!(!class.needs_body);
        assert_eq!(p.decide(&head, &class, None).action, Action::Allow);
        let head = RequestHead {
            method: "POST".into(),
            host: "example.org".into(),
            path: "/".into(),
            ..Default::default()
        };
        let class = p.classify(&head);
        assert_eq!((class.site.clone(), class.needs_body), (None, false));
        let d = p.decide(&head, &class, Some(b"AKIAIOSFODNN7EXAMPLE"));
        assert_eq!((d.site, d.action), (None, Action::Allow));
    }

    #[test]
    fn hostile_bodies_never_panic() {
        let p = fixture(&EngineOptions {
            max_body: 4096,
            ..Default::default()
        });
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"{}[]\":,\\u0123456789abcdefAKIA@%+=&-- \r\n\xff\xc3";
        for ct in [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=--",
            "text/plain",
            "",
        ] {
            for enc in [
                None,
                Some("gzip"),
                Some("br"),
                Some("zstd"),
                Some("deflate"),
            ] {
                for len in [0usize, 1, 7, 64, 700] {
                    let body: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            alphabet[(x % alphabet.len() as u64) as usize]
                        })
                        .collect();
                    let mut headers = vec![("content-type".to_string(), ct.to_string())];
                    if let Some(e) = enc {
                        headers.push(("content-encoding".into(), e.into()));
                    }
                    let head = RequestHead {
                        method: "POST".into(),
                        host: "mastodon.social".into(),
                        path: "/api/v1/statuses".into(),
                        headers,
                        ..Default::default()
                    };
                    let d = p.decide(&head, &p.classify(&head), Some(&body));
                    if d.uninspectable.is_some() {
                        assert_eq!(d.action, Action::Block);
                    }
                }
            }
        }
    }
}
