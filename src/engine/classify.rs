//! Recognising the activity of a request on a catalogue site: method, host, path, query,
//! GraphQL operation, form and JSON field conditions. Activities are tried in file order
//! and the first that matches wins.
//!
//! Classification runs twice: from the head alone (`Policy::classify`, before any body is
//! buffered) and again with the decoded body (`Policy::decide`). The head pass tells the
//! proxy whether to buffer the body: when an activity's conditions look into the body, or
//! the activity that matches carries content to inspect.

use std::sync::Arc;

use regex::Regex;

use crate::engine::decode::{ContentField, DecodedBody, PtrSeg};
use crate::engine::policy::RequestHead;

/// A compiled activity of a site.
#[derive(Debug)]
pub struct Activity {
    /// Shared with every classification that names the activity.
    pub name: Arc<str>,
    /// Uppercase; empty = any method.
    pub(crate) methods: Vec<String>,
    /// [`method_bit`]s of `methods` (all set when any method will do).
    pub(crate) method_bits: u8,
    pub(crate) host: Option<Regex>,
    pub(crate) path: Option<Regex>,
    pub(crate) graphql_operation: Option<String>,
    pub(crate) form: Vec<(String, Regex)>,
    pub(crate) json: Vec<(String, Vec<PtrSeg>, Regex)>,
    pub(crate) query: Vec<(String, Regex)>,
    pub(crate) content: Vec<ContentField>,
}

/// How far the head alone gets in matching an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadMatch {
    No,
    Yes,
    /// The head matches; conditions on the body remain.
    NeedsBody,
}

/// Whether a request with this head can carry a body at all.
pub fn may_have_body(head: &RequestHead) -> bool {
    let bodiless_method = matches!(
        head.method.as_ref(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "CONNECT"
    );
    if !bodiless_method {
        return head.header("content-length").map(str::trim) != Some("0");
    }
    let declared = head
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    declared || head.header("transfer-encoding").is_some()
}

/// The value of query parameter `name`, percent-decoded.
pub fn query_param(head: &RequestHead, name: &str) -> Option<String> {
    let q = head.query()?;
    crate::engine::decode::parse_form(q.as_bytes())
        .into_iter()
        .find(|p| p.key == name)
        .map(|p| p.value)
}

fn last_segment(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

impl Activity {
    /// Whether the activity has user text to inspect.
    pub fn carries_content(&self) -> bool {
        !self.content.is_empty()
    }

    /// Whether the activity has a `path` condition (required to claim a foreign host).
    pub fn has_path(&self) -> bool {
        self.path.is_some()
    }

    fn graphql_in_head(&self, head: &RequestHead) -> Option<bool> {
        let op = self.graphql_operation.as_deref()?;
        if last_segment(head.path_only()) == op {
            return Some(true);
        }
        Some(query_param(head, "operationName").as_deref() == Some(op))
    }

    /// Whether the activity's methods include `method` (any case), whose
    /// [`method_bit`] is `bit`. Inlined into the classification loop: most activities of a
    /// site are told apart by method alone.
    #[inline(always)]
    fn takes_method(&self, bit: u8, method: &str) -> bool {
        if bit != OTHER_METHOD {
            return self.method_bits & bit != 0;
        }
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }

    /// Matches the conditions the head can answer.
    pub fn match_head(&self, head: &RequestHead) -> HeadMatch {
        if !self.takes_method(method_bit(&head.method), &head.method) {
            return HeadMatch::No;
        }
        if let Some(re) = &self.host {
            if !re.is_match(&head.host) {
                return HeadMatch::No;
            }
        }
        if let Some(re) = &self.path {
            if !re.is_match(head.path_only()) {
                return HeadMatch::No;
            }
        }
        for (name, re) in &self.query {
            match query_param(head, name) {
                Some(v) if re.is_match(&v) => {}
                _ => return HeadMatch::No,
            }
        }
        let mut needs_body = !self.form.is_empty() || !self.json.is_empty();
        if self.graphql_in_head(head) == Some(false) {
            if !may_have_body(head) {
                return HeadMatch::No;
            }
            needs_body = true;
        }
        if needs_body {
            if !may_have_body(head) {
                return HeadMatch::No;
            }
            HeadMatch::NeedsBody
        } else {
            HeadMatch::Yes
        }
    }

    /// Matches every condition, with the decoded body when there is one.
    pub fn matches(&self, head: &RequestHead, body: Option<&DecodedBody>) -> bool {
        match self.match_head(head) {
            HeadMatch::No => false,
            HeadMatch::Yes => true,
            HeadMatch::NeedsBody => match body {
                Some(b) => self.match_body(head, b),
                None => false,
            },
        }
    }

    fn match_body(&self, head: &RequestHead, body: &DecodedBody) -> bool {
        if self.graphql_in_head(head) == Some(false) {
            let Some(op) = self.graphql_operation.as_deref() else {
                return false;
            };
            let named = match body.json() {
                Some(root) => match root.child("operationName").and_then(|n| n.as_str()) {
                    Some(name) => name == op,
                    // A batch of operations: any of them.
                    None => matches!(&root.kind, crate::engine::decode::JsonKind::Array(items)
                        if items.iter().any(|i| i.child("operationName").and_then(|n| n.as_str()) == Some(op))),
                },
                None => body.form_value("operationName") == Some(op),
            };
            if !named {
                return false;
            }
        }
        for (name, re) in &self.form {
            match body.form_value(name) {
                Some(v) if re.is_match(v) => {}
                _ => return false,
            }
        }
        if !self.json.is_empty() {
            let (Some(root), Some(src)) = (body.json(), body.text()) else {
                return false;
            };
            for (_, ptr, re) in &self.json {
                match root.pointer(ptr).and_then(|n| n.scalar_text(src)) {
                    Some(v) if re.is_match(v) => {}
                    _ => return false,
                }
            }
        }
        true
    }
}

/// The result of classifying against one site's activities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteMatch {
    /// Index of the matching activity, if any.
    pub activity: Option<usize>,
    /// An earlier activity waits on the body, so the answer may change with it.
    pub pending_body: bool,
}

/// The common methods, one bit each; any other method is [`OTHER_METHOD`].
pub(crate) const METHOD_BITS: [&str; 7] =
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const OTHER_METHOD: u8 = 0x80;

/// `method`'s bit (any case): its place in [`METHOD_BITS`], else [`OTHER_METHOD`].
pub(crate) fn method_bit(method: &str) -> u8 {
    METHOD_BITS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(method))
        .map_or(OTHER_METHOD, |i| 1 << i)
}

/// The bits of an activity's `methods`; every bit when the list is empty (any method).
pub(crate) fn method_bits(methods: &[String]) -> u8 {
    if methods.is_empty() {
        return u8::MAX;
    }
    methods.iter().fold(0, |bits, m| bits | method_bit(m))
}

/// Head-only classification over a site's activities (first match wins).
pub fn classify_head(activities: &[Activity], head: &RequestHead) -> SiteMatch {
    let mut pending_body = false;
    let bit = method_bit(&head.method);
    for (i, a) in activities.iter().enumerate() {
        if !a.takes_method(bit, &head.method) {
            continue;
        }
        match a.match_head(head) {
            HeadMatch::No => {}
            HeadMatch::Yes => {
                return SiteMatch {
                    activity: Some(i),
                    pending_body,
                }
            }
            HeadMatch::NeedsBody => pending_body = true,
        }
    }
    SiteMatch {
        activity: None,
        pending_body,
    }
}

/// Full classification with the decoded body (or without one when it is unavailable, in
/// which case activities that need the body do not match).
pub fn classify_with_body(
    activities: &[Activity],
    head: &RequestHead,
    body: Option<&DecodedBody>,
) -> Option<usize> {
    activities.iter().position(|a| a.matches(head, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(name: &str, method: &str, path: &str) -> Activity {
        Activity {
            name: name.into(),
            methods: vec![method.into()],
            method_bits: method_bits(&[method.into()]),
            host: None,
            path: Some(Regex::new(path).unwrap()),
            graphql_operation: None,
            form: vec![],
            json: vec![],
            query: vec![],
            content: vec![],
        }
    }

    #[test]
    fn method_bits_say_what_comparing_the_names_says() {
        let listed = [
            vec![],
            vec!["GET".to_string()],
            vec!["POST".into(), "PUT".into()],
            vec!["PROPFIND".into()],
            vec!["DELETE".into(), "REPORT".into()],
        ];
        for methods in listed {
            let a = Activity {
                method_bits: method_bits(&methods),
                methods: methods.clone(),
                ..activity("a", "GET", "^/")
            };
            for m in [
                "GET", "get", "HEAD", "POST", "Put", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
                "REPORT", "TRACE",
            ] {
                let by_name =
                    methods.is_empty() || methods.iter().any(|x| x.eq_ignore_ascii_case(m));
                assert_eq!(
                    a.takes_method(method_bit(m), m),
                    by_name,
                    "{m} in {methods:?}"
                );
            }
        }
    }

    fn head(method: &str, path: &str, ct: &str) -> RequestHead {
        RequestHead {
            method: method.to_string().into(),
            scheme: "https".into(),
            host: "x.com".into(),
            path: path.into(),
            headers: vec![("content-type".into(), ct.into())],
            ..Default::default()
        }
    }

    #[test]
    fn graphql_operation_from_path_or_body() {
        let mut a = activity("post", "POST", "^/i/api/graphql/");
        a.graphql_operation = Some("CreateTweet".into());
        let h = head(
            "POST",
            "/i/api/graphql/abc123/CreateTweet",
            "application/json",
        );
        assert_eq!(a.match_head(&h), HeadMatch::Yes);
        let h = head("POST", "/i/api/graphql/", "application/json");
        assert_eq!(a.match_head(&h), HeadMatch::NeedsBody);
        let body = crate::engine::decode::decode_body(
            Some("application/json"),
            None,
            br#"{"operationName":"CreateTweet"}"#,
            1 << 20,
        )
        .unwrap();
        assert!(a.matches(&h, Some(&body)));
        let body = crate::engine::decode::decode_body(
            Some("application/json"),
            None,
            br#"{"operationName":"Other"}"#,
            1 << 20,
        )
        .unwrap();
        assert!(!a.matches(&h, Some(&body)));
    }

    #[test]
    fn form_conditions_need_the_body_and_order_decides() {
        let mut fb = activity("post", "POST", "^/api/graphql/?$");
        fb.form = vec![(
            "fb_api_req_friendly_name".into(),
            Regex::new("^ComposerStoryCreateMutation$").unwrap(),
        )];
        let other = activity("other", "POST", "^/api/graphql/?$");
        let acts = vec![fb, other];
        let h = head("POST", "/api/graphql/", "application/x-www-form-urlencoded");
        let m = classify_head(&acts, &h);
        assert_eq!(
            m,
            SiteMatch {
                activity: Some(1),
                pending_body: true
            }
        );
        let body = crate::engine::decode::decode_body(
            Some("application/x-www-form-urlencoded"),
            None,
            b"fb_api_req_friendly_name=ComposerStoryCreateMutation&variables=%7B%7D",
            1 << 20,
        )
        .unwrap();
        assert_eq!(classify_with_body(&acts, &h, Some(&body)), Some(0));
        assert_eq!(classify_with_body(&acts, &h, None), Some(1));
    }

    #[test]
    fn get_without_body_never_waits_for_one() {
        let mut a = activity("post", "GET", "^/");
        a.form = vec![("a".into(), Regex::new("b").unwrap())];
        assert_eq!(a.match_head(&head("GET", "/x", "")), HeadMatch::No);
    }
}
