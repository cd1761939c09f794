//! What happens after every request, errors included: metrics and the audit event.
//! Called from the pipeline's `logging` phase, the one place that sees every request.

use super::{RequestCtx, Shared};
use crate::audit::{AuditEvent, MatchedRule, ValueHash};
use crate::engine::policy::{Action, UNCLASSIFIED};
use crate::metrics;

/// `response_body_bytes` and `status` are what the client was sent (status 0: nothing).
pub fn record_request(shared: &Shared, ctx: &RequestCtx, response_body_bytes: u64, status: u16) {
    if ctx.answered == Some(407) {
        // A sign-in challenge: a step of proxy authentication, counted in
        // permeable_auth_total. The client's next request is the one that counts.
        return;
    }
    let class = ctx.head.as_ref().and(ctx.class_ref());
    // Site ids come from the compiled catalogue: a bounded set by construction.
    let site = class
        .and_then(|c| c.site.as_deref())
        .unwrap_or(metrics::OTHER);
    let decision = ctx.decision.as_ref();
    let activity = decision
        .map(|d| d.activity.as_str())
        .or_else(|| class.map(|c| &*c.activity))
        .unwrap_or("none");
    let activity = if class.and_then(|c| c.site.as_ref()).is_none() {
        "none"
    } else {
        activity
    };
    let action = match (decision, ctx.answered) {
        (Some(d), _) => d.action.as_str(),
        (None, Some(_)) => "refused",
        (None, None) => "allow",
    };
    // Groups: configured names only (a trusted identity header naming another group
    // counts as `other`), and `suppressed` while too few clients make them up.
    // Distinct clients are counted by user when one signed in (never exported).
    let group_label: &str = match (ctx.client_ip(), ctx.group.as_deref()) {
        (Some(_), Some(group)) if !shared.known_group(group) => metrics::OTHER,
        (Some(ip), Some(group)) => match ctx.user.as_deref() {
            Some(user) => shared.groups.label(group, client_key(user)),
            None => shared.groups.label(group, ip),
        },
        _ => metrics::UNKNOWN,
    };

    let inspection = ctx.inspection_time();
    let matches = decision.map_or(&[][..], |d| &d.matches[..]);
    metrics::count_request(
        &metrics::RequestCount {
            site,
            activity,
            action,
            group: group_label,
            seconds: ctx.elapsed().as_secs_f64(),
            inspection_seconds: (!inspection.is_zero()).then_some(inspection.as_secs_f64()),
            body_bytes: (site != metrics::OTHER)
                .then(|| (ctx.bytes_up() as u64, response_body_bytes)),
            unclassified: activity == UNCLASSIFIED,
        },
        matches
            .iter()
            .map(|m| (m.id.as_str(), m.action.as_str(), m.mode.as_str())),
    );
    let Some(decision) = decision else {
        return;
    };
    if let Some(u) = &decision.uninspectable {
        metrics::UNINSPECTABLE_TOTAL
            .with_label_values(&[site, u.kind.label()])
            .inc();
    }
    for f in &decision.findings {
        metrics::FINDINGS_TOTAL
            .with_label_values(&[&f.category, decision.action.as_str()])
            .inc();
    }
    for domain in ctx.shared_link_domains() {
        shared.shared_domains.record(domain);
    }

    // A plain allow is not an audit event, even when an `allow` rule matched it (the pack's
    // catch-all counts everything); a monitor-mode match is, since that is how a rule is
    // judged before it is enforced.
    let monitored = decision
        .matches
        .iter()
        .any(|m| m.mode == crate::engine::policy::Mode::Monitor);
    if decision.action == Action::Allow && !monitored && !shared.audit.all {
        return;
    }
    let mut categories = std::collections::BTreeMap::new();
    for f in &decision.findings {
        *categories.entry(f.category.as_str()).or_insert(0) += 1;
    }
    let pseudonymise = shared.config.audit.pseudonymise_users;
    let user_hash = ctx
        .user
        .as_deref()
        .filter(|_| pseudonymise)
        .map(|user| pseudonym(ctx.policy_hash_key(), user));
    let event = AuditEvent {
        time: humantime_now(),
        request_id: &ctx.id.to_string(),
        rules_version: ctx.rules_version(),
        client: ctx.client_ip().map(|ip| ip.to_string()),
        user: ctx.user.as_deref().filter(|_| !pseudonymise),
        user_hash,
        auth: ctx.auth,
        auth_unavailable: ctx.auth_degraded,
        group: ctx.group.as_deref().unwrap_or(metrics::UNKNOWN),
        site,
        host: ctx.target.as_ref().map_or("", |t| t.host.as_str()),
        method: ctx.head.as_ref().map_or("", |h| h.method.as_ref()),
        activity,
        action: decision.action.as_str(),
        coached_continue: ctx.coached_continue(),
        rule: decision.rule.as_deref(),
        matched_rules: decision
            .matches
            .iter()
            .map(|m| MatchedRule {
                id: &m.id,
                action: m.action.as_str(),
                mode: m.mode.as_str(),
            })
            .collect(),
        categories,
        value_hashes: decision
            .findings
            .iter()
            .map(|f| ValueHash {
                category: &f.category,
                detector: &f.detector,
                hash: &f.value_hash,
            })
            .collect(),
        uninspectable: decision.uninspectable_reason(),
        status: ctx.answered.unwrap_or(status),
    };
    shared.audit.write(&event);
}

/// A keyed hash of a user's name for the audit trail: keyed with the inspection hash key
/// (`inspection.hash_key_file`), so that replicas sharing the key agree, and separated from
/// the hashes of matched values so that the two can never be compared.
pub fn pseudonym(key: &[u8], user: &str) -> String {
    crate::engine::redact::keyed_hash(key, &format!("permeable-user\0{user}"))
}

/// A user as one client of a group for the k-anonymity count: a hash keyed per process,
/// so that the set holds no names.
fn client_key(user: &str) -> metrics::ClientKey {
    use std::hash::BuildHasher;
    static KEY: std::sync::LazyLock<std::collections::hash_map::RandomState> =
        std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);
    metrics::ClientKey::User(KEY.hash_one(user))
}

fn humantime_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
