//! Evaluating a request against a compiled policy, in stages: the site, the body, the
//! candidate activities, the fields to inspect, detection, the rules, redaction.
//!
//! Semantics (documented for security staff in `docs/rules.md`):
//! - a request is read every way its site may read it (see `classify` and `decode`): every
//!   activity it may be is a *candidate* (copies of a classifying field that disagree, a
//!   path or method a router may take otherwise, and any other activity of the site whose
//!   content fields the request fills); the rules are evaluated for each candidate and the
//!   strictest outcome applies;
//! - the fields inspected are the content fields of every candidate, every copy of each;
//!   on a write request the *safety net* also scans every other string value of the body
//!   and the query (less the site's `noise`) with the detectors that rules with
//!   `anywhere: true` name, and only those rules count its findings;
//! - every rule is evaluated; a rule matches when its `when` matches and its `unless` (if
//!   any) does not; the strictest action among matching *enforced* rules wins; ties go to
//!   the rule that comes first in `policy.yaml`; no matching rule means `allow`;
//! - monitor rules are reported in `matches` and the trace, and change nothing;
//! - a content-carrying request whose body cannot be inspected gets the built-in
//!   [`UNINSPECTABLE_RULE`] with `inspection.on_uninspectable`, unless an enforced rule with
//!   `uninspectable: true` matched (then the rules decide);
//! - `redact` rewrites the findings of the categories named by the matching enforced redact
//!   rules (all findings when such a rule names none), in the body and in the query; if a
//!   finding cannot be rewritten (the body was not inspectable, or the finding is in a
//!   reading of the body other than the one rewritten, or in a name), the request is
//!   blocked instead: nothing unredacted is forwarded.

use super::compile::{Condition, Rule};
use super::{
    unclassified, Action, Classification, Decision, Finding, Mode, Policy, RequestHead, RuleMatch,
    Site, UNCLASSIFIED, UNINSPECTABLE_RULE,
};
use crate::engine::classify::{self, may_have_body, RequestView, SiteMatch, Truth};
use crate::engine::decode::{
    self, BodyKind, ContentField, DecodedBody, Field, FieldLoc, Inputs, PtrSeg, Uninspectable,
    UninspectableKind,
};
use crate::engine::detect::view::canonical_value;
use crate::engine::redact::{self, FieldChange, Span};

/// Finds the site of a head (its index in the policy): the catalogue by host, then sites
/// that claim any host by API shape (only through an activity with a `path` condition).
fn site_of(policy: &Policy, head: &RequestHead) -> Option<usize> {
    if let Some(i) = policy.site_index_for_host(&head.host) {
        return Some(i);
    }
    policy.any_host_sites.iter().copied().find(|&i| {
        policy.sites.get(i).is_some_and(|s| {
            let view = RequestView::new(head, &s.method_aliases, None, may_have_body(head));
            s.activities
                .iter()
                .any(|a| a.has_path() && a.assess(&view).truth != Truth::No)
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
            inspects_query: false,
            head_match: None,
        };
    };
    let has_body = may_have_body(head);
    let view = RequestView::new(head, &site.method_aliases, None, has_body);
    let m = classify::classify(&site.activities, &view);
    let activity = m.activity().and_then(|i| site.activities.get(i));
    let carries = m
        .each()
        .any(|i| site.activities.get(i).is_some_and(|a| a.carries_content()));
    let net = head.is_write() && policy.has_safety_net();
    // A POST body may hold `_method`, which routes it as another method.
    let override_possible = head.method.eq_ignore_ascii_case("POST")
        && site.activities.iter().any(|a| a.reachable_by_override());
    Classification {
        site: Some(site.id.clone()),
        activity: activity
            .map(|a| a.name.clone())
            .unwrap_or_else(unclassified),
        needs_body: has_body && (m.pending_body || carries || net || override_possible),
        inspects_query: head.query().is_some() && (carries || net),
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

/// The findings a condition counts: of its categories and detectors, and in content
/// fields unless it says `anywhere`.
fn counted<'f>(c: &'f Condition, f: &'f Facts<'_>) -> impl Iterator<Item = &'f Finding> + 'f {
    f.findings.iter().filter(move |x| {
        (c.anywhere || x.in_content)
            && c.categories
                .as_ref()
                .is_none_or(|cats| cats.iter().any(|p| p.matches(&x.category)))
            && c.detectors
                .as_ref()
                .is_none_or(|ds| ds.iter().any(|d| d == &x.detector))
    })
}

/// Whether `c` holds; on `false`, why not. The reasons are written only when `explain`
/// (for the trace): a decision on the proxy path does not pay for them.
fn condition_holds(c: &Condition, f: &Facts<'_>, explain: bool) -> Result<Why, Why> {
    let say = |text: &dyn Fn() -> String| Why(if explain { text() } else { String::new() });
    let mut why: Vec<Why> = Vec::new();
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
        let count = counted(c, f).count();
        let need = c.min_count.unwrap_or(1);
        let place = if c.anywhere {
            "anywhere in the request"
        } else {
            "in content"
        };
        if count < need {
            return Err(say(&|| {
                format!("{count} matching finding(s) {place}, need {need}")
            }));
        }
        if need > 0 {
            why.push(say(&|| format!("{count} matching finding(s) {place}")));
        }
    }
    if !explain {
        return Ok(Why(String::new()));
    }
    if why.is_empty() {
        return Ok(Why("no conditions".into()));
    }
    Ok(Why(why
        .iter()
        .map(|w| w.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")))
}

/// Why a condition holds or not, in words (written only for a trace).
struct Why(String);

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn rule_matches(rule: &Rule, f: &Facts<'_>, explain: bool) -> Result<Why, Why> {
    let why = condition_holds(&rule.when, f, explain)?;
    if let Some(u) = &rule.unless {
        if let Ok(exc) = condition_holds(u, f, explain) {
            return Err(Why(if explain {
                format!("exception applies (unless: {exc})")
            } else {
                String::new()
            }));
        }
    }
    Ok(why)
}

/// Fills `{categories}` (the categories of the findings the rule is about, never the
/// values), `{site}`, `{activity}` and `{reason}` (why a body was uninspectable) in a
/// rule's message.
fn fill_message(message: &str, rule: &Rule, f: &Facts<'_>) -> String {
    let mut cats: Vec<&str> = Vec::new();
    for x in counted(&rule.when, f) {
        if !cats.contains(&x.category.as_str()) {
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
                "{} [{}] in {} at {}..{}{}",
                f.category,
                f.detector,
                f.field,
                f.start,
                f.end,
                if f.in_content { "" } else { " (safety net)" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Detector matches in `fields`, by field index; `keep` says which detectors count.
fn scan_fields(
    policy: &Policy,
    fields: &[Field],
    offset: usize,
    keep: impl Fn(usize) -> bool,
    out: &mut Vec<(usize, crate::engine::detect::Match)>,
) {
    for (i, f) in fields.iter().enumerate() {
        // Names and paths come again request after request: their scans are remembered.
        let again = matches!(&f.loc, FieldLoc::Other(n)
            if n == decode::fields::NAMES_FIELD || n == decode::fields::PATH_FIELD);
        let (remembered, fresh);
        let found: &[crate::engine::detect::Match] = if again {
            remembered = policy.scan_remembered(&f.text);
            &remembered
        } else {
            fresh = policy.detectors.scan(&f.text);
            &fresh
        };
        for &m in found {
            if keep(m.detector) {
                out.push((offset + i, m));
            }
        }
    }
}

fn to_findings(
    policy: &Policy,
    fields: &[Field],
    content_fields: usize,
    matches: &[(usize, crate::engine::detect::Match)],
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(matches.len());
    for (fi, m) in matches {
        let (Some(d), Some(field)) = (policy.detectors.get(m.detector), fields.get(*fi)) else {
            continue;
        };
        let Some(value) = field.text.get(m.start..m.end) else {
            continue;
        };
        let finding = Finding {
            category: d.category.clone(),
            detector: d.id.clone(),
            field: field.name.clone(),
            start: m.start,
            end: m.end,
            value_hash: redact::keyed_hash(&policy.opts.hash_key, &canonical_value(value)),
            in_content: *fi < content_fields,
        };
        // The safety net reads a value in every reading of the request, and in its raw
        // bytes: one finding per value and category is enough for the rules.
        if !finding.in_content
            && out
                .iter()
                .any(|f| f.category == finding.category && f.value_hash == finding.value_hash)
        {
            continue;
        }
        out.push(finding);
    }
    out
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
                value_hash: redact::keyed_hash(
                    &policy.opts.hash_key,
                    &canonical_value(text.get(m.start..m.end)?),
                ),
                in_content: true,
            })
        })
        .collect()
}

/// Runs every detector over every text of a body decoded per `content_type` (no
/// Content-Encoding).
pub fn scan_body(
    policy: &Policy,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<Finding>, Uninspectable> {
    let decoded = decode::decode_body(
        Some(content_type),
        None,
        body,
        policy.opts.max_body.max(body.len()),
    )?;
    let (fields, rendered) = scanned_fields(&decoded);
    let mut matches = Vec::new();
    scan_fields(policy, &fields, 0, |_| true, &mut matches);
    shared_with_the_text(&fields, &rendered, &mut matches);
    Ok(to_findings(policy, &fields, fields.len(), &matches))
}

/// The fields `permeable scan` reads in a body, as the proxy reads a write's: every value
/// and name, each read in the charset the body or its part declares, each holding markup
/// as rendered too, and the readings of the whole body. With the rendered readings (see
/// [`shared_with_the_text`]).
pub fn scanned_fields(decoded: &DecodedBody) -> (Vec<Field>, Vec<(usize, usize)>) {
    let inputs = Inputs::body(decoded);
    let mut fields = decode::all_fields(&inputs);
    charset_twins(&inputs, decoded, &mut fields, 0);
    let mut rendered = Vec::new();
    rendered_twins(&mut fields, 0, &mut rendered);
    fields.extend(decoded.whole_readings());
    (fields, rendered)
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

/// The body of a request as the engine has it.
struct BodyRead {
    decoded: Option<DecodedBody>,
    /// Why it cannot be read (counted only when what the request is depends on it).
    error: Option<Uninspectable>,
}

/// Stage: the body, unavailable (too large to buffer), absent, decodable, or not.
fn read_body(
    policy: &Policy,
    head: &RequestHead,
    class: &Classification,
    body: Option<&[u8]>,
) -> BodyRead {
    let max_body = policy.opts.max_body;
    let bytes = match body {
        Some(b) => b,
        None if class.needs_body => {
            return BodyRead {
                decoded: None,
                error: Some(Uninspectable::new(
                    UninspectableKind::TooLarge,
                    format!("body larger than inspection.max_body ({max_body} bytes)"),
                )),
            }
        }
        None => &[],
    };
    if bytes.is_empty() {
        return BodyRead {
            decoded: None,
            error: None,
        };
    }
    // Every Content-Type and Content-Encoding field the request carries counts.
    let types: Vec<&str> = head.headers_named("content-type").collect();
    let encodings: Vec<&str> = head.headers_named("content-encoding").collect();
    let encoding = (!encodings.is_empty()).then(|| encodings.join(","));
    match decode::decode_body_as(&types, encoding.as_deref(), bytes, max_body) {
        Ok(d) => BodyRead {
            decoded: Some(d),
            error: None,
        },
        Err(e) => BodyRead {
            decoded: None,
            error: Some(e),
        },
    }
}

/// The rules' verdict for one candidate activity.
struct Verdict<'p> {
    activity: String,
    winner: Option<&'p Rule>,
    matches: Vec<RuleMatch>,
    explicit_uninspectable: bool,
    redact_rules: Vec<&'p Rule>,
    lines: Vec<String>,
}

impl Verdict<'_> {
    fn action(&self) -> Action {
        self.winner.map_or(Action::Allow, |w| w.action)
    }
}

/// Stage: every rule against one candidate activity.
fn evaluate_rules<'p>(policy: &'p Policy, facts: &Facts<'_>, traced: bool) -> Verdict<'p> {
    let mut v = Verdict {
        activity: facts.activity.to_string(),
        winner: None,
        matches: Vec::new(),
        explicit_uninspectable: false,
        redact_rules: Vec::new(),
        lines: Vec::new(),
    };
    for rule in &policy.rules {
        match rule_matches(rule, facts, traced) {
            Ok(why) => {
                if traced {
                    let tag = if rule.mode == Mode::Monitor {
                        " [monitor: would have]"
                    } else {
                        ""
                    };
                    v.lines.push(format!(
                        "rule {}: matched ({why}) → {}{tag}",
                        rule.id, rule.action
                    ));
                }
                v.matches.push(RuleMatch {
                    id: rule.id.clone(),
                    action: rule.action,
                    mode: rule.mode,
                });
                if rule.mode == Mode::Enforce {
                    if rule.when.uninspectable == Some(true) {
                        v.explicit_uninspectable = true;
                    }
                    if rule.action == Action::Redact {
                        v.redact_rules.push(rule);
                    }
                    if v.winner.is_none_or(|w| rule.action > w.action) {
                        v.winner = Some(rule);
                    }
                }
            }
            Err(why) => {
                if traced {
                    v.lines
                        .push(format!("rule {}: not matched ({why})", rule.id));
                }
            }
        }
    }
    v
}

/// Stage: fields that other activities of the site name as content, found in this request
/// (by any activity whose method and host fit): a request may be what its shape says
/// rather than what its path or operation name claims (a GraphQL operation is chosen by a
/// persisted-query id the gateway cannot read). They are inspected as content; the request
/// is still decided as the activity it was classified as. Selectors that take a whole JSON
/// document say nothing about the request and are not followed here.
fn shape_fields(
    site: &Site,
    view: &RequestView<'_>,
    matched: &SiteMatch,
    inputs: &Inputs<'_>,
) -> Vec<Field> {
    let mut out = Vec::new();
    if inputs.body.is_none() && inputs.query.is_empty() {
        return out;
    }
    for (i, a) in site.activities.iter().enumerate() {
        if !a.carries_content()
            || matched.candidates & (1 << i) != 0
            || a.method_and_host(view) == Truth::No
        {
            continue;
        }
        // Only selectors that name something: `*` alone says nothing about a request.
        let params: Vec<ContentField> = a
            .content
            .iter()
            .filter(|c| {
                matches!(c, ContentField::Param(segs) if segs.iter().any(|s| matches!(s, PtrSeg::Key(_))))
            })
            .cloned()
            .collect();
        if params.is_empty() {
            continue;
        }
        out.extend(
            decode::extract_fields(inputs, &params)
                .into_iter()
                .filter(|f| !f.whole_document && !f.text.trim().is_empty()),
        );
    }
    out
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
        target: None,
        uninspectable: None,
        trace: Vec::new(),
    };
    let Some(site) = locate_site(policy, head, class, &mut trace) else {
        decision.trace = trace.lines;
        return decision;
    };
    decision.site = Some(site.id.to_string());
    let BodyRead { decoded, error } = read_body(policy, head, class, body);
    let decoded = decoded.as_ref();
    trace_body(decoded, &mut trace);
    let view = RequestView::new(head, &site.method_aliases, decoded, false);
    let mut reading = read_request(policy, site, class, &view, error, &mut trace);
    let inspection = inspect(policy, site, head, &view, &mut reading, body, &mut trace);
    decision.findings = inspection.findings.clone();
    let redact_rules = apply_rules(policy, site, head, &reading, &mut decision, &mut trace);
    if decision.action == Action::Redact {
        redact(
            policy,
            head,
            &view,
            &reading,
            &inspection,
            &redact_rules,
            &mut decision,
            &mut trace,
        );
    }
    match &decision.rule {
        Some(r) => trace.push(|| format!(
            "decision: {} by rule {r} (the strictest enforced action; ties go to the first rule in policy.yaml)",
            decision.action
        )),
        None => trace.push(|| "decision: allow (no enforced rule matched)".into()),
    }
    decision.uninspectable = reading.uninspectable;
    decision.trace = trace.lines;
    decision
}

/// Stage: the catalogue site the classification named, or none (a host outside the
/// catalogue is allowed untouched).
fn locate_site<'p>(
    policy: &'p Policy,
    head: &RequestHead,
    class: &Classification,
    trace: &mut Trace,
) -> Option<&'p Site> {
    let site = policy
        .head_match_of(class)
        .and_then(|(i, _)| policy.sites.get(i))
        .or_else(|| {
            let id = class.site.as_deref()?;
            policy.sites.iter().find(|s| &*s.id == id)
        });
    match site {
        Some(s) => trace.push(|| format!("site: {} ({}) for host {}", s.id, s.name, head.host)),
        None => trace.push(|| {
            format!(
                "host {}: not a catalogue site; allowed untouched",
                head.host
            )
        }),
    }
    site
}

fn trace_body(decoded: Option<&DecodedBody>, trace: &mut Trace) {
    if let Some(d) = decoded {
        trace.push(|| {
            let alt: Vec<&str> = d.alt.iter().map(BodyKind::label).collect();
            format!(
                "body: {}{}",
                d.kind.label(),
                if alt.is_empty() {
                    String::new()
                } else {
                    format!(" (also read as {})", alt.join(", "))
                }
            )
        });
    }
}

/// What a request is, as far as the engine can read it.
struct Reading<'b> {
    decoded: Option<&'b DecodedBody>,
    /// The activities' verdict on the request with its body.
    matched: SiteMatch,
    /// The candidate activities in order (`None`: unclassified).
    candidates: Vec<Option<usize>>,
    /// Whether a candidate names content fields.
    carries_content: bool,
    /// Every candidate is a `noise` activity (a login): only its own fields are read.
    only_noise: bool,
    /// Why the body cannot be inspected, when that matters.
    uninspectable: Option<Uninspectable>,
}

impl Reading<'_> {
    fn name_of<'s>(site: &'s Site, c: &Option<usize>) -> &'s str {
        c.and_then(|i| site.activities.get(i))
            .map_or(UNCLASSIFIED, |a| a.name.as_ref())
    }
}

/// Stage: the candidate activities with the body, and whether a body that does not decode
/// (or a binary one where content is expected) makes the request uninspectable.
fn read_request<'b>(
    policy: &Policy,
    site: &Site,
    class: &Classification,
    view: &RequestView<'b>,
    decode_error: Option<Uninspectable>,
    trace: &mut Trace,
) -> Reading<'b> {
    let decoded = view.body;
    // The head's classification stands when nothing in a body could change it (and it was
    // made by this rule set).
    let head_match = policy.head_match_of(class).map(|(_, m)| m);
    let matched = match head_match {
        Some(m) if decoded.is_none() && !m.pending_body => m,
        _ => classify::classify(&site.activities, view),
    };
    let pending = head_match.is_some_and(|m| m.pending_body) || matched.pending_body;
    let carries_content = matched
        .each()
        .any(|i| site.activities.get(i).is_some_and(|a| a.carries_content()));
    let mut uninspectable = decode_error.filter(|_| carries_content || pending);
    if carries_content && uninspectable.is_none() {
        // Content fields that cannot be read in a binary body (protobuf, an unknown type):
        // the employee's words may be in it, unseen.
        if let Some(d) = decoded.filter(|d| matches!(d.kind, BodyKind::Binary)) {
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
    let mut candidates: Vec<Option<usize>> = matched.each().map(Some).collect();
    if candidates.is_empty() {
        candidates.push(None);
    }
    trace.push(|| {
        let names: Vec<&str> = candidates
            .iter()
            .map(|c| Reading::name_of(site, c))
            .collect();
        format!(
            "activity: {}{}{}",
            names[0],
            if pending {
                " (decided with the body)"
            } else {
                ""
            },
            if names.len() > 1 {
                format!(
                    "; the site may also read it as {} (the strictest outcome applies)",
                    names[1..].join(", ")
                )
            } else {
                String::new()
            }
        )
    });
    let only_noise = candidates.iter().all(|c| {
        let n = Reading::name_of(site, c);
        site.noise_activities.iter().any(|x| x == n)
    });
    Reading {
        decoded,
        matched,
        candidates,
        carries_content,
        only_noise,
        uninspectable,
    }
}

/// What was read and found.
struct Inspection {
    /// Content fields first, then the safety net's.
    fields: Vec<Field>,
    matches: Vec<(usize, crate::engine::detect::Match)>,
    findings: Vec<Finding>,
}

/// Stage: the fields to inspect (every candidate's content fields, fields other activities
/// name, then the safety net's) and what the detectors find in them.
fn inspect(
    policy: &Policy,
    site: &Site,
    head: &RequestHead,
    view: &RequestView<'_>,
    reading: &mut Reading<'_>,
    wire: Option<&[u8]>,
    trace: &mut Trace,
) -> Inspection {
    let inputs = view.inputs(true);
    let mut fields: Vec<Field> = Vec::new();
    // Rendered readings (see `rendered_twins`): (its index, the index of its field).
    let mut rendered: Vec<(usize, usize)> = Vec::new();
    if reading.uninspectable.is_none() {
        let named = reading
            .candidates
            .iter()
            .flatten()
            .filter_map(|c| site.activities.get(*c))
            .flat_map(|a| decode::extract_fields(&inputs, &a.content));
        // A login carries the employee's credentials for the site: only what its own
        // activity names is read (the safety net and other activities' fields are not).
        let shaped = if reading.only_noise {
            Vec::new()
        } else {
            shape_fields(site, view, &reading.matched, &inputs)
        };
        let mut seen: foldhash::HashSet<FieldLoc> = Default::default();
        for f in named.chain(shaped) {
            if seen.insert(f.loc.clone()) {
                fields.push(f);
            }
        }
        if let Some(BodyKind::Multipart(parts)) = reading.decoded.map(|d| &d.kind) {
            for p in parts.iter().filter(|p| p.text.is_none()) {
                trace.push(|| {
                    format!(
                        "file part {:?} ({}, {} bytes) not inspected",
                        p.filename.as_deref().unwrap_or(p.name()),
                        p.content_type.as_deref().unwrap_or("no type"),
                        p.end - p.start
                    )
                });
            }
        }
        if reading.carries_content && fields.is_empty() {
            reading.uninspectable = unreadable_content(&reading.candidates, site, reading.decoded);
        }
        if let Some(d) = reading.decoded {
            charset_twins(&inputs, d, &mut fields, 0);
        }
        query_twins(head, &inputs, &mut fields, 0);
        rendered_twins(&mut fields, 0, &mut rendered);
    }
    let content_fields = fields.len();
    let net_scans = head.is_write() && policy.has_safety_net() && !reading.only_noise;
    if net_scans {
        safety_net_fields(site, head, &inputs, reading.decoded, wire, &mut fields);
        // A body with a charset of its own is read whole in it by the safety net; parts
        // that declare one are read field by field.
        if let Some(d) = reading
            .decoded
            .filter(|d| !matches!(d.charset, decode::Charset::Also(_)))
        {
            charset_twins(&inputs, d, &mut fields, content_fields);
        }
        query_twins(head, &inputs, &mut fields, content_fields);
        rendered_twins(&mut fields, content_fields, &mut rendered);
        // The path carries words too (a hashtag followed, a list renamed by URL), in
        // ISO-8859-1 too where its escapes are not UTF-8 (see `query_twins`).
        let spelled: Vec<u8> = percent_encoding::percent_decode_str(head.path_only()).collect();
        let latin = decode::charset::undeclared_target_reading(&spelled);
        fields.push(Field::reading(
            decode::fields::PATH_FIELD.into(),
            String::from_utf8_lossy(&spelled).into_owned(),
            true,
        ));
        if let Some(text) = latin {
            let name = format!("{} (read as windows-1252)", decode::fields::PATH_FIELD);
            fields.push(Field::reading(name, text, true));
        }
    }
    let mut matches = Vec::new();
    scan_fields(policy, &fields[..content_fields], 0, |_| true, &mut matches);
    scan_fields(
        policy,
        &fields[content_fields..],
        content_fields,
        |d| policy.net.get(d).copied().unwrap_or(false),
        &mut matches,
    );
    shared_with_the_text(&fields, &rendered, &mut matches);
    trace.push(|| {
        let names: Vec<&str> = fields[..content_fields]
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        format!(
            "inspected {} field(s): {}{}",
            names.len(),
            names.join(", "),
            if net_scans {
                format!(
                    "; the safety net scanned {} more",
                    fields.len() - content_fields
                )
            } else {
                String::new()
            }
        )
    });
    let findings = to_findings(policy, &fields, content_fields, &matches);
    if !findings.is_empty() {
        trace.push(|| format!("findings: {}", describe_findings(&findings)));
    } else if !fields.is_empty() {
        trace.push(|| "findings: none".into());
    }
    if let Some(u) = &reading.uninspectable {
        trace.push(|| format!("uninspectable: {u}"));
    }
    Inspection {
        fields,
        matches,
        findings,
    }
}

/// Stage: every rule for every candidate activity; the strictest outcome goes into
/// `decision`, and the built-in uninspectable rule when no rule speaks for an
/// uninspectable body. Returns the redacting rules that apply (of every candidate that
/// redacts, when redaction wins).
fn apply_rules<'p>(
    policy: &'p Policy,
    site: &Site,
    head: &RequestHead,
    reading: &Reading<'_>,
    decision: &mut Decision,
    trace: &mut Trace,
) -> Vec<&'p Rule> {
    let reason = reading
        .uninspectable
        .as_ref()
        .map(|u| u.reason.as_str())
        .unwrap_or("");
    let mut verdicts: Vec<(Verdict<'p>, &str)> = Vec::new();
    for c in &reading.candidates {
        let name = Reading::name_of(site, c);
        if verdicts.iter().any(|(v, _)| v.activity == name) {
            continue;
        }
        let facts = Facts {
            site: &site.id,
            activity: name,
            group: head.group.as_deref(),
            findings: &decision.findings,
            uninspectable: reading.uninspectable.is_some(),
            reason,
        };
        verdicts.push((evaluate_rules(policy, &facts, trace.on), name));
    }
    let strictest = verdicts.iter().enumerate().fold(0, |best, (i, (v, _))| {
        if v.action() > verdicts[best].0.action() {
            i
        } else {
            best
        }
    });
    let redact_rules: Vec<&Rule> = if verdicts[strictest].0.action() == Action::Redact {
        verdicts
            .iter()
            .filter(|(v, _)| v.action() == Action::Redact)
            .flat_map(|(v, _)| v.redact_rules.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    let several = verdicts.len() > 1;
    for (v, _) in &mut verdicts {
        if several {
            let (activity, action) = (&v.activity, v.action());
            trace.push(|| format!("as {activity}: → {action}"));
        }
        for l in std::mem::take(&mut v.lines) {
            trace.push(|| l);
        }
    }
    let (verdict, activity) = verdicts.swap_remove(strictest);
    decision.activity = verdict.activity.clone();
    decision.matches = verdict.matches;
    if let Some(w) = verdict.winner {
        let facts = Facts {
            site: &site.id,
            activity,
            group: head.group.as_deref(),
            findings: &decision.findings,
            uninspectable: reading.uninspectable.is_some(),
            reason,
        };
        decision.action = w.action;
        decision.rule = Some(w.id.clone());
        decision.message = w.message.as_deref().map(|m| fill_message(m, w, &facts));
    }
    if let Some(reason) = &reading.uninspectable {
        if !verdict.explicit_uninspectable && policy.opts.on_uninspectable >= decision.action {
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
    redact_rules
}

/// Stage: the redaction a `redact` decision asks for, in the body and the query; a request
/// that cannot be rewritten is blocked instead.
#[allow(clippy::too_many_arguments)]
fn redact(
    policy: &Policy,
    head: &RequestHead,
    view: &RequestView<'_>,
    reading: &Reading<'_>,
    inspection: &Inspection,
    redact_rules: &[&Rule],
    decision: &mut Decision,
    trace: &mut Trace,
) {
    let rewrite = if let Some(u) = &reading.uninspectable {
        Err(Unredactable::Uninspectable(u.to_string()))
    } else {
        redact_request(
            policy,
            reading.decoded,
            head,
            &view.query,
            &inspection.fields,
            &inspection.matches,
            redact_rules,
        )
    };
    match rewrite {
        Ok(Rewrite { body, target }) if body.is_some() || target.is_some() => {
            trace.push(|| {
                let mut parts = Vec::new();
                if let Some(b) = &body {
                    parts.push(format!("redacted body: {} bytes", b.len()));
                }
                if target.is_some() {
                    parts.push("redacted query string".to_string());
                }
                parts.join("; ")
            });
            decision.body = body;
            decision.target = target;
        }
        Ok(_) => trace.push(|| "redact: no finding to rewrite; request forwarded unchanged".into()),
        Err(e) => {
            trace.push(|| format!("redaction impossible ({e}); blocking instead"));
            decision.action = Action::Block;
            if decision.message.is_none() {
                decision.message = Some(format!("This request could not be redacted: {e}."));
            }
        }
    }
}

/// A body whose structure has no parameters (text, binary) where the activity looks for
/// named fields: the words may be in it, in a form the gateway cannot read.
fn unreadable_content(
    cands: &[Option<usize>],
    site: &Site,
    decoded: Option<&DecodedBody>,
) -> Option<Uninspectable> {
    let d = decoded?;
    if !matches!(d.kind, BodyKind::Text | BodyKind::Binary) {
        return None;
    }
    let whole_body = cands
        .iter()
        .flatten()
        .filter_map(|c| site.activities.get(*c))
        .any(|a| a.content.contains(&ContentField::Body));
    if whole_body {
        return None;
    }
    let essence = decode::MediaType::parse(&d.content_type).essence;
    let (kind, what) = if essence.starts_with("text/") {
        (UninspectableKind::Malformed, "plain text")
    } else {
        (UninspectableKind::Binary, "binary")
    };
    Some(Uninspectable::new(
        kind,
        format!(
            "{} body ({what}) holds none of the fields this activity carries its text in",
            if d.content_type.is_empty() {
                "untyped"
            } else {
                d.content_type.as_str()
            }
        ),
    ))
}

/// Stage: in a body whose declared charset is read besides UTF-8, or a multipart part that
/// declares its own (see `decode::charset`), each field of the body from `from` on read in
/// that charset too, as a field of its own that cannot be rewritten: a value the site reads
/// as `BLUEHÉRON` or as full-width digits is inspected as such, and a redaction it needs
/// blocks the request.
fn charset_twins(inputs: &Inputs<'_>, decoded: &DecodedBody, fields: &mut Vec<Field>, from: usize) {
    let body = match decoded.charset {
        decode::Charset::Also(encoding) => Some(encoding),
        _ => None,
    };
    let parts = match &decoded.kind {
        BodyKind::Multipart(parts) => parts.as_slice(),
        _ => &[],
    };
    let part_charsets = parts
        .iter()
        .any(|p| decode::charset::part_charset(p).is_some());
    if body.is_none() && !part_charsets {
        return;
    }
    let form = matches!(decoded.kind, BodyKind::Form(_));
    let twins: Vec<Field> = fields[from..]
        .iter()
        .filter_map(|f| {
            let (decode::Source::Body(_), start, end) = decode::fields::raw_span(inputs, &f.loc)?
            else {
                return None;
            };
            let part = parts.iter().find(|p| (p.start, p.end) == (start, end));
            // A part already read in its charset (or transfer-encoded) has no other text.
            if part.is_some_and(|p| p.transfer_encoded) {
                return None;
            }
            let encoding = part.and_then(decode::charset::part_charset).or(body)?;
            let bytes = decoded.raw.get(start..end)?;
            let bytes = if form && encoding.is_ascii_compatible() {
                decode::form::form_decode_bytes(bytes)
            } else {
                bytes.to_vec()
            };
            let text = decode::charset::reading(encoding, &bytes)?;
            let name = format!("{} (read as {})", f.name, encoding.name());
            Some(Field::reading(name, text, f.whole_document))
        })
        .collect();
    fields.extend(twins);
}

/// Stage: each field from `from` on that holds markup, also as a page that renders it
/// shows it (`<b>4539</b>148803436467`, `BLUE**HERON**`; see `decode::render`): a field of
/// its own that cannot be rewritten, so a redaction only it needs blocks the request.
/// Each twin is listed in `twins` with the field it reads.
fn rendered_twins(fields: &mut Vec<Field>, from: usize, twins: &mut Vec<(usize, usize)>) {
    let made: Vec<(usize, Field)> = fields[from..]
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let text = decode::render::rendered(&f.text)?;
            let name = format!("{} (as rendered)", f.name);
            Some((from + i, Field::reading(name, text, f.whole_document)))
        })
        .collect();
    for (source, twin) in made {
        twins.push((fields.len(), source));
        fields.push(twin);
    }
}

/// Stage: what a rendered reading finds that its field's text as sent holds too (the same
/// detector, the same letters and digits, as many times) is that text's finding: redacting
/// the text removes it from the rendering too, so the rendering's copy is dropped. A
/// value the markup alone makes (`<b>4539</b>148803436467`) stays, and blocks.
pub fn shared_with_the_text(
    fields: &[Field],
    twins: &[(usize, usize)],
    matches: &mut Vec<(usize, crate::engine::detect::Match)>,
) {
    if twins.is_empty() {
        return;
    }
    let value = |field: usize, m: &crate::engine::detect::Match| -> (usize, String) {
        let text = fields[field].text.get(m.start..m.end).unwrap_or("");
        let letters = text
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        (m.detector, letters)
    };
    // Per twin, the values its field as sent holds, each as many times as found.
    let mut held: foldhash::HashMap<(usize, (usize, String)), usize> = Default::default();
    for &(twin, source) in twins {
        for (_, m) in matches.iter().filter(|(f, _)| *f == source) {
            *held.entry((twin, value(source, m))).or_default() += 1;
        }
    }
    matches.retain(|(f, m)| {
        if !twins.iter().any(|(twin, _)| twin == f) {
            return true;
        }
        match held.get_mut(&(*f, value(*f, m))) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        }
    });
}

/// Stage: query parameters from `from` on whose escapes spell bytes that are not UTF-8
/// (`q=BLUEH%C9RON`), read in ISO-8859-1 too, as fields of their own that cannot be
/// rewritten: a servlet container reads a query in its connector's URI encoding, which the
/// gateway cannot know, and ISO-8859-1 when none is set. A redaction only that reading
/// needs blocks the request.
fn query_twins(head: &RequestHead, inputs: &Inputs<'_>, fields: &mut Vec<Field>, from: usize) {
    let Some(query) = head.query().map(str::as_bytes) else {
        return;
    };
    if inputs.query.is_empty() || decode::charset::escapes_spell_utf8(query) {
        return;
    }
    let twins: Vec<Field> = fields[from..]
        .iter()
        .filter_map(|f| {
            let (decode::Source::Query, start, end) = decode::fields::raw_span(inputs, &f.loc)?
            else {
                return None;
            };
            let spelled = decode::form::form_decode_bytes(query.get(start..end)?);
            let text = decode::charset::undeclared_target_reading(&spelled)?;
            let name = format!("{} (read as windows-1252)", f.name);
            Some(Field::reading(name, text, f.whole_document))
        })
        .collect();
    fields.extend(twins);
}

/// Stage: what the safety net scans on a write request: every text of the body and the
/// query (see `decode::all_fields`) that is not already a content field or the site's
/// noise; and where a structure may hide text its fields do not hold (a multipart body's
/// part headers and preamble, a binary body's strings, which protobuf keeps as plain ASCII,
/// a body that does not decode), the raw bytes, less the noise and the contents of
/// pictures, sound and video.
fn safety_net_fields(
    site: &Site,
    head: &RequestHead,
    inputs: &Inputs<'_>,
    decoded: Option<&DecodedBody>,
    wire: Option<&[u8]>,
    fields: &mut Vec<Field>,
) {
    let noise = decode::extract_fields(inputs, &site.noise);
    // What is already read: usually a few content and noise fields, compared one by one;
    // hashed when there are many (a form of thousands of fields).
    let known: Vec<&FieldLoc> = fields.iter().chain(&noise).map(|f| &f.loc).collect();
    let hashed: Option<foldhash::HashSet<&FieldLoc>> =
        (known.len() > 16).then(|| known.iter().copied().collect());
    let read = |loc: &FieldLoc| match &hashed {
        Some(set) => set.contains(loc),
        None => known.contains(&loc),
    };
    let more: Vec<Field> = decode::all_fields(inputs)
        .into_iter()
        .filter(|f| !read(&f.loc))
        .collect();
    fields.extend(more);
    // Where the noise is in the query (`query`) or in the body, for the raw readings below:
    // spans shifted by `at`.
    let noise_holes = |query: bool, at: usize| -> Vec<(usize, usize)> {
        noise
            .iter()
            .filter_map(|f| match decode::fields::raw_span(inputs, &f.loc)? {
                (decode::Source::Query, start, end) if query => Some((at + start, at + end)),
                (decode::Source::Body(_), start, end) if !query => Some((at + start, at + end)),
                _ => None,
            })
            .collect()
    };
    // Escapes read as written (see the body's below): the target, noise parameters left out.
    if head.path.contains('%') {
        let holes = noise_holes(true, head.path_only().len() + 1);
        fields.push(decode::fields::raw_text(
            "(target as written)",
            head.path.as_bytes(),
            &holes,
        ));
    }
    // The body in the charset it declares, where that reading is not the UTF-8 one; a body
    // read as UTF-16 also as the bytes it was sent as (a reader may ignore its mark).
    if let Some(d) = decoded.filter(|d| !matches!(d.charset, decode::Charset::Utf8)) {
        let essence = decode::MediaType::parse(&d.content_type).essence;
        if !decode::is_media_type(&essence) {
            fields.extend(d.charset_reading(&noise_holes(false, 0)));
            if let Some(sent) = &d.sent {
                fields.push(decode::fields::raw_text("body (as sent)", sent, &[]));
            }
        }
    }
    let raw = match decoded {
        Some(d) if matches!(d.kind, BodyKind::Multipart(_) | BodyKind::Binary) => {
            if decode::is_media_type(&decode::MediaType::parse(&d.content_type).essence) {
                return;
            }
            &d.raw[..]
        }
        // A body whose escapes (`%39`, `\u0039`) a reader of the bytes as written sees
        // differently from the decoded values: `BLUEHERON4%39…` shows the codename with a
        // version suffix where the decoded `BLUEHERON49…` is one longer word. Read as
        // written too.
        Some(d) if memchr::memchr2(b'%', b'\\', &d.raw).is_some() => &d.raw[..],
        Some(_) => return,
        None => match wire {
            Some(bytes) if !bytes.is_empty() => bytes,
            _ => return,
        },
    };
    let mut holes = noise_holes(false, 0);
    if let Some(BodyKind::Multipart(parts)) = decoded.map(|d| &d.kind) {
        holes.extend(
            parts
                .iter()
                .filter(|p| p.is_media())
                .map(|p| (p.start, p.end)),
        );
    }
    fields.push(decode::fields::raw_text("body (raw)", raw, &holes));
    // A body not read as JSON, a form or parts (text, binary, one that does not decode)
    // with its escapes undone too, as a site or a client decoding `%39` shows it.
    let structured = matches!(
        decoded.map(|d| &d.kind),
        Some(BodyKind::Json(_) | BodyKind::Form(_) | BodyKind::Multipart(_))
    );
    if !structured && memchr::memchr(b'%', raw).is_some() {
        // The noise and the pictures blanked first, as in the reading as written.
        let undone = decode::form::form_decode_bytes(&decode::fields::blanked(raw, &holes));
        fields.push(decode::fields::raw_text(
            "body (escapes undone)",
            &undone,
            &[],
        ));
    }
}

/// Why a redaction could not be made: the request is blocked instead.
#[derive(Debug, thiserror::Error)]
enum Unredactable {
    #[error("the body was not inspectable: {0}")]
    Uninspectable(String),
    #[error("{0} is in a part of the request that can be read in more than one way and cannot be rewritten")]
    Ambiguous(String),
    #[error("the request has no body to rewrite")]
    NoBody,
    #[error(transparent)]
    Rewrite(#[from] redact::RewriteError),
}

/// A redaction's result: the new body and the new request target, where they changed.
#[derive(Default)]
struct Rewrite {
    body: Option<Vec<u8>>,
    target: Option<String>,
}

/// Stage: rewrite every finding the redacting rules want, in the body and the query.
fn redact_request(
    policy: &Policy,
    decoded: Option<&DecodedBody>,
    head: &RequestHead,
    query: &[decode::FormPair],
    fields: &[Field],
    matches: &[(usize, crate::engine::detect::Match)],
    redact_rules: &[&Rule],
) -> Result<Rewrite, Unredactable> {
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
    let mut body_changes = Vec::new();
    let mut query_changes = Vec::new();
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
        if !field.rewritable {
            return Err(Unredactable::Ambiguous(field.name.clone()));
        }
        let (new_text, edits) = redact::redact_text(&field.text, &spans, &policy.opts.hash_key);
        let change = FieldChange {
            loc: field.loc.clone(),
            new_text,
            edits,
        };
        if redact::is_query_change(&change) {
            query_changes.push(change);
        } else {
            body_changes.push(change);
        }
    }
    let mut out = Rewrite::default();
    if !body_changes.is_empty() {
        let decoded = decoded.ok_or(Unredactable::NoBody)?;
        out.body = Some(redact::rewrite_body(decoded, &body_changes)?);
    }
    if !query_changes.is_empty() {
        let q = head.query().unwrap_or("");
        let new_query = redact::rewrite_query(q, query, &query_changes)?;
        out.target = Some(format!("{}?{new_query}", head.path_only()));
    }
    Ok(out)
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
        crate::engine::policy::copy_catalogue(&from, dir.path());
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
    fn escapes_are_also_read_as_written() {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = Policy::load(&rules, &EngineOptions::default()).unwrap();
        // `BLUEHERON4` then an escaped digit: decoded, one longer word; as written, the
        // codename with a version suffix.
        let json = tweet_head(&[]);
        let escaped = br#"{"variables":{"tweet_text":"hi","note":"BLUEHERON4\u0039x"}}"#;
        let plain = br#"{"variables":{"tweet_text":"hi","note":"BLUEHERON49x"}}"#;
        let form = RequestHead {
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            path: "/1.1/statuses/update.json".into(),
            ..json.clone()
        };
        let query = RequestHead {
            path: "/1.1/favorites/create.json?id=1&note=BLUEHERON4%39x".into(),
            headers: vec![],
            ..json.clone()
        };
        for (head, body) in [
            (&json, &escaped[..]),
            (&form, &b"status=hi&note=BLUEHERON4%39x"[..]),
            (&query, &b""[..]),
        ] {
            let d = policy.decide(head, &policy.classify(head), Some(body));
            assert_eq!(d.action, Action::Block, "{:?}", d.trace);
            assert!(
                d.trace
                    .iter()
                    .any(|t| t.contains("as written") || t.contains("(raw)")),
                "{:?}",
                d.trace
            );
        }
        let d = policy.decide(&json, &policy.classify(&json), Some(plain));
        assert_eq!(d.action, Action::Allow, "{:?}", d.trace);
    }

    #[test]
    fn site_noise_is_left_out_of_the_target_as_written() {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = Policy::load(&rules, &EngineOptions::default()).unwrap();
        // YouTube's web client sends its API key in the query: noise, also when the target
        // holds an escape and is read as written.
        let like = |extra: &str| {
            RequestHead {
            method: "POST".into(),
            scheme: "https".into(),
            host: "www.youtube.com".into(),
            path: format!(
                "/youtubei/v1/like/like?key=AIzaKFHhf42XVTzxhTvzxbBwFHp2N5c3nj-s26G&prettyPrint=false&{extra}"
            ),
            headers: vec![("content-type".into(), "application/json".into())],
            ..Default::default()
        }
        };
        let body = br#"{"target":{"videoId":"AlZoQi1BsMF"}}"#;
        for (extra, want) in [
            ("q=caf%C3%A9", Action::Allow),
            ("q=BLUEHERON4%39x", Action::Block),
        ] {
            let head = like(extra);
            let d = policy.decide(&head, &policy.classify(&head), Some(body));
            assert_eq!(d.action, want, "{extra}: {:?}", d.trace);
        }
    }

    #[test]
    fn json_after_a_byte_order_mark_is_read_and_redacted_in_place() {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = Policy::load(&rules, &EngineOptions::default()).unwrap();
        let head = RequestHead {
            method: "POST".into(),
            scheme: "https".into(),
            host: "mastodon.social".into(),
            path: "/api/v1/statuses".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            ..Default::default()
        };
        let decide =
            |body: &str| policy.decide(&head, &policy.classify(&head), Some(body.as_bytes()));
        let d = decide("\u{FEFF}{\"status\":\"hello all\"}");
        assert_eq!(d.action, Action::Allow, "{:?}", d.trace);
        assert!(d.uninspectable.is_none(), "{:?}", d.trace);
        let d = decide("\u{FEFF}{\"status\":\"pay 4539148803436467 now\"}");
        assert_eq!(d.action, Action::Redact, "{:?}", d.trace);
        let body = String::from_utf8(d.body.expect("a rewritten body")).unwrap();
        assert!(body.starts_with("\u{FEFF}{\"status\":\"pay "), "{body:?}");
        assert!(!body.contains("4539148803436467"), "{body:?}");
        let d = decide("\u{FEFF}{\"status\":\"BLUEHERON\"}");
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
    }

    #[test]
    fn bodies_are_read_in_their_charset_and_utf16_is_written_back_as_utf16() {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = Policy::load(&rules, &EngineOptions::default()).unwrap();
        let head = |content_type: &str| RequestHead {
            method: "POST".into(),
            scheme: "https".into(),
            host: "mastodon.social".into(),
            path: "/api/v1/statuses".into(),
            headers: vec![("content-type".into(), content_type.into())],
            ..Default::default()
        };
        let decide = |content_type: &str, body: &[u8]| {
            let head = head(content_type);
            policy.decide(&head, &policy.classify(&head), Some(body))
        };
        let utf16le =
            |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };

        // UTF-16 JSON: redacted in UTF-16, every byte outside the value as sent.
        let before = "\u{feff}{\"status\":\"pay ";
        let after = " now \u{418}\u{432}\u{430}\u{43d}\",\"visibility\":\"public\"}";
        let body = utf16le(&format!("{before}4539148803436467{after}"));
        let d = decide("application/json", &body);
        assert_eq!(d.action, Action::Redact, "{:?}", d.trace);
        let out = d.body.expect("a rewritten body");
        let (head_len, tail_len) = (utf16le(before).len(), utf16le(after).len());
        assert_eq!(out[..head_len], body[..head_len]);
        assert_eq!(out[out.len() - tail_len..], body[body.len() - tail_len..]);
        let units: Vec<u16> = out
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect();
        let text = String::from_utf16(&units).unwrap();
        assert!(
            !text.contains("4539148803436467") && text.contains("6467"),
            "{text}"
        );
        // Allowed UTF-16 arrives as sent.
        let d = decide(
            "application/json",
            &utf16le("\u{feff}{\"status\":\"caf\u{e9}\"}"),
        );
        assert_eq!(
            (d.action, d.body.is_none()),
            (Action::Allow, true),
            "{:?}",
            d.trace
        );

        // UTF-32 (big-endian, RFC 4627's zero bytes): the same, in UTF-32.
        let utf32be =
            |s: &str| -> Vec<u8> { s.chars().flat_map(|c| u32::from(c).to_be_bytes()).collect() };
        let body = utf32be(&format!("{}4539148803436467{after}", &before[3..]));
        let d = decide("application/json", &body);
        assert_eq!(d.action, Action::Redact, "{:?}", d.trace);
        let out = d.body.expect("a rewritten body");
        let (head_len, tail_len) = (utf32be(&before[3..]).len(), utf32be(after).len());
        assert_eq!(out[..head_len], body[..head_len]);
        assert_eq!(out[out.len() - tail_len..], body[body.len() - tail_len..]);
        let text: String = out
            .chunks_exact(4)
            .map(|u| char::from_u32(u32::from_be_bytes([u[0], u[1], u[2], u[3]])).unwrap())
            .collect();
        assert!(
            !text.contains("4539148803436467") && text.contains("6467"),
            "{text}"
        );

        // A legacy charset: the value as the site decodes it.
        let latin = "application/x-www-form-urlencoded; charset=ISO-8859-1";
        let d = decide(latin, b"status=caf%E9+au+lait");
        assert_eq!(
            (d.action, d.body.is_none()),
            (Action::Allow, true),
            "{:?}",
            d.trace
        );
        let d = decide(latin, b"status=news+on+BLUEH%C9RON");
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        // No charset declared, values that are not UTF-8: read in ISO-8859-1 too (the
        // servlet default), a form's and a multipart value's alike.
        let untyped_form = "application/x-www-form-urlencoded";
        let d = decide(untyped_form, b"status=news+on+BLUEH%C9RON");
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        let d = decide(untyped_form, b"status=caf%E9+au+lait");
        assert_eq!(
            (d.action, d.body.is_none()),
            (Action::Allow, true),
            "{:?}",
            d.trace
        );
        let value = b"--B\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nBLUEH\xc9RON\r\n--B--\r\n";
        let d = decide("multipart/form-data; boundary=B", value);
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        // A card only the declared charset shows cannot be masked in place: blocked.
        let d = decide(
            "application/x-www-form-urlencoded; charset=shift_jis",
            b"status=%82%53%82%54%82%52%82%58%82%50%82%53%82%57%82%57%82%4F%82%52%82%53%82%52%82%55%82%53%82%55%82%56",
        );
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        // Multipart parts in the charset they declare.
        let part = |headers: &str, content: &[u8]| -> Vec<u8> {
            let mut b =
                format!("--B\r\nContent-Disposition: form-data; name=\"status\"\r\n{headers}\r\n")
                    .into_bytes();
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n--B--\r\n");
            b
        };
        let multipart = "multipart/form-data; boundary=B";
        let cp1251 = "Content-Type: text/plain; charset=windows-1251\r\n";
        let d = decide(multipart, &part(cp1251, b"news on BLUEH\xc5RON"));
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        let russian = part(cp1251, b"\xcf\xf0\xe8\xe2\xe5\xf2, \xec\xe8\xf0");
        let d = decide(multipart, &russian);
        assert_eq!(
            (d.action, d.body.is_none()),
            (Action::Allow, true),
            "{:?}",
            d.trace
        );
        let sjis = "Content-Type: text/plain; charset=Shift_JIS\r\n";
        let digits: Vec<u8> = b"4539148803436467"
            .iter()
            .flat_map(|d| [0x82, 0x4f + (d - b'0')])
            .collect();
        let d = decide(multipart, &part(sjis, &digits));
        assert_eq!(d.action, Action::Block, "{:?}", d.trace);
        // A part in UTF-8 that declares Latin-1: read both ways (`BLUEHÃ‰RON` in Latin-1).
        let latin_part = "Content-Type: text/plain; charset=ISO-8859-1\r\n";
        let d = decide(multipart, &part(latin_part, "caf\u{e9}".as_bytes()));
        assert_eq!(d.action, Action::Allow, "{:?}", d.trace);
        // The same card in UTF-8 full-width digits is masked as usual.
        let d = decide(
            "application/x-www-form-urlencoded",
            "status=\u{ff14}\u{ff15}\u{ff13}\u{ff19}\u{ff11}\u{ff14}\u{ff18}\u{ff18}\u{ff10}\u{ff13}\u{ff14}\u{ff13}\u{ff16}\u{ff14}\u{ff16}\u{ff17}".as_bytes(),
        );
        assert_eq!(d.action, Action::Redact, "{:?}", d.trace);
    }

    #[test]
    fn remembered_scans_decide_as_fresh_ones() {
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let policy = Policy::load(&rules, &EngineOptions::default()).unwrap();
        let head = tweet_head(&[]);
        let leaky =
            br#"{"variables":{"tweet_text":"hi"},"features":{"AKIAZ7QW4TRX6NBLM3PK":true}}"#;
        let clean = br#"{"variables":{"tweet_text":"hi"},"features":{"longform_notetweets":true}}"#;
        for _ in 0..3 {
            let d = policy.decide(&head, &policy.classify(&head), Some(leaky));
            assert_eq!(d.action, Action::Block, "{:?}", d.trace);
            let d = policy.decide(&head, &policy.classify(&head), Some(clean));
            assert_eq!(d.action, Action::Allow, "{:?}", d.trace);
        }
        assert_eq!(policy.remembered_scans.read().len(), 3);
    }

    #[test]
    fn one_value_written_differently_has_one_hash() {
        let policy = fixture(&EngineOptions::default());
        let head = tweet_head(&[]);
        let hash_of = |text: &str| {
            let body = serde_json::json!({"variables": {"tweet_text": text}}).to_string();
            let d = policy.decide(&head, &policy.classify(&head), Some(body.as_bytes()));
            let cards: Vec<String> = d
                .findings
                .iter()
                .filter(|f| f.category == "pii.credit_card")
                .map(|f| f.value_hash.clone())
                .collect();
            assert_eq!(cards.len(), 1, "{text}: {:?}", d.findings);
            cards[0].clone()
        };
        let plain = hash_of("card 4539148803436467");
        assert_eq!(hash_of("card 4539 1488 0343 6467"), plain);
        assert_eq!(hash_of("card 4539-1488-0343-6467"), plain);
        assert_eq!(hash_of("card 4539\u{200B}1488\u{00A0}0343 6467"), plain);
        assert_ne!(hash_of("card 4111 1111 1111 1111"), plain);
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
