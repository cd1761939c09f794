//! Recognising the activity of a request on a catalogue site: method, host, path, query,
//! GraphQL operation and parameter conditions.
//!
//! # Reading a request the way the site may
//! The gateway cannot know exactly how a site's framework reads a request, so each
//! condition is answered over every reading some framework could make, and says whether
//! it holds under *all* of them ([`Truth::Yes`]), *some* ([`Truth::Maybe`]) or none:
//! - **parameters** (`form:`, `json:`, `query:`): every copy of a repeated name, in every
//!   structure of the body and in the query string (see `decode::fields`); a condition holds
//!   for certain only when every copy matches;
//! - **paths**: as sent, and as a router normalises them (`//` collapsed, dot segments
//!   resolved, percent-encoded unreserved characters decoded, `;parameters` dropped, a
//!   trailing slash ignored); path regexes ignore case unless the site says otherwise;
//! - **methods**: the request's method and the site's declared aliases (`PATCH` routed as
//!   `PUT`) for certain; a method override (`X-HTTP-Method-Override`, `_method` on a POST)
//!   maybe.
//!
//! Activities are tried in file order. Every activity that matches under some reading is
//! a *candidate*, up to and including the first that matches under every reading; the
//! policy then applies the strictest decision among the candidates, so a request that
//! some framework would read as a post is decided as a post.
//!
//! Classification runs twice: from the head alone
//! ([`classify_head`](crate::engine::policy::evaluate::classify_head), before any body is
//! buffered) and again with the decoded body ([`classify`]). The head pass tells the proxy
//! whether to buffer the body.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use regex::Regex;

use crate::engine::decode::fields::Inputs;
use crate::engine::decode::keys::{name_readings, segments_match, NameMatch};
use crate::engine::decode::{self, BodyKind, ContentField, DecodedBody, FormPair, PtrSeg};

/// The parts of a request the engine looks at before the body.
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    /// (A common method is not allocated per request.)
    pub method: Cow<'static, str>,
    /// `http` or `https` (not allocated per request).
    pub scheme: Cow<'static, str>,
    /// Lowercase, without port.
    pub host: String,
    /// Path including `?query`.
    pub path: String,
    /// Names lowercase. The engine reads only [`ENGINE_HEADERS`]; the proxy passes those.
    pub headers: Vec<(String, String)>,
    pub group: Option<String>,
    pub client: Option<IpAddr>,
}

/// A request method as a [`RequestHead`] keeps it: the common ones without allocating.
pub fn method_name(method: &str) -> Cow<'static, str> {
    match METHOD_BITS.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_string()),
    }
}

/// The header fields the engine reads: body framing and decoding, and method overrides.
/// The proxy copies only these into a [`RequestHead`].
pub const ENGINE_HEADERS: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether the engine reads the header field `name` (any case).
pub fn engine_reads(name: &str) -> bool {
    ENGINE_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h))
}

impl RequestHead {
    /// The first header of that (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        match self.path.find('?') {
            Some(i) => &self.path[..i],
            None => &self.path,
        }
    }

    /// The raw query (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.path.find('?').map(|i| &self.path[i + 1..])
    }

    /// Whether the method writes (anything but GET, HEAD, OPTIONS and TRACE).
    pub fn is_write(&self) -> bool {
        !["GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"]
            .iter()
            .any(|m| self.method.eq_ignore_ascii_case(m))
    }

    /// Builds a head from a method, an absolute URL, headers and a group (used by the CLI
    /// and tests). The host is lowercased and stripped of its port.
    pub fn from_url(
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        group: Option<String>,
    ) -> Result<RequestHead, BadUrl> {
        let (scheme, rest) = url.split_once("://").ok_or(BadUrl::NotAbsolute)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(stripped) = authority.strip_prefix('[') {
            stripped.split(']').next().unwrap_or(stripped).to_string()
        } else {
            authority.split(':').next().unwrap_or(authority).to_string()
        };
        if host.is_empty() {
            return Err(BadUrl::NoHost);
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(RequestHead {
            method: method.to_ascii_uppercase().into(),
            scheme: scheme.to_ascii_lowercase().into(),
            host: host.to_ascii_lowercase(),
            path,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            group,
            client: None,
        })
    }
}

/// Why a URL given to [`RequestHead::from_url`] is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadUrl {
    NotAbsolute,
    NoHost,
}

impl std::fmt::Display for BadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadUrl::NotAbsolute => "not an absolute URL",
            BadUrl::NoHost => "URL without host",
        })
    }
}

impl std::error::Error for BadUrl {}

/// Whether a condition holds under every reading of a request, some, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Truth {
    No,
    Maybe,
    Yes,
}

impl Truth {
    /// Over the values some readings give: none → `No`; all match → `Yes`; some → `Maybe`.
    fn over<'v>(values: impl Iterator<Item = &'v str>, re: &Regex) -> Truth {
        let (mut any, mut all, mut seen) = (false, true, false);
        for v in values {
            seen = true;
            if re.is_match(v) {
                any = true;
            } else {
                all = false;
            }
        }
        match (seen, any, all) {
            (true, true, true) => Truth::Yes,
            (true, true, false) => Truth::Maybe,
            _ => Truth::No,
        }
    }
}

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
    /// Conditions on parameters wherever they are (`form:` and `json:`): as written, the
    /// selector, the regex.
    pub(crate) params: Vec<(String, Vec<PtrSeg>, Regex)>,
    /// Conditions on the query string alone.
    pub(crate) query: Vec<(String, Vec<PtrSeg>, Regex)>,
    pub(crate) content: Vec<ContentField>,
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

/// A path as routers read it: percent-encoded unreserved characters decoded, `\` as `/`,
/// `;parameters` dropped from segments, empty and `.` segments dropped, `..` resolved, and
/// no trailing slash (but for the root). Borrowed when there is nothing to change.
pub fn normalise_path(path: &str) -> Cow<'_, str> {
    let plain = path.len() <= 1
        || (!path.ends_with('/')
            && !path.contains("//")
            && !path.contains("/.")
            && !path.bytes().any(|b| matches!(b, b'%' | b';' | b'\\')));
    if plain {
        return Cow::Borrowed(path);
    }
    let mut decoded = String::with_capacity(path.len());
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Some(c) = decode::hex_byte(&b[i + 1..i + 3]) {
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(c as char);
                    i += 3;
                    continue;
                }
            }
        }
        // Decoding stops at ASCII bytes only, so the rest is copied char by char.
        let ch_len = path[i..].chars().next().map_or(1, char::len_utf8);
        let piece = &path[i..i + ch_len];
        decoded.push_str(if piece == "\\" { "/" } else { piece });
        i += ch_len;
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// A request as classification sees it: the readings of its method and path, its query's
/// pairs and its decoded body, computed once for all the activities of its site.
pub struct RequestView<'a> {
    pub head: &'a RequestHead,
    /// The method's [`method_bit`].
    bit: u8,
    /// Other methods the site may route the request as, and whether for certain.
    other_methods: Vec<(String, bool)>,
    path: &'a str,
    normalised: Cow<'a, str>,
    /// The normalised path with a trailing slash (routers that ignore it take either).
    slashed: String,
    pub query: Vec<FormPair>,
    pub body: Option<&'a DecodedBody>,
    /// A body is still to come: conditions on it cannot be answered yet.
    pub body_pending: bool,
}

/// The request headers that override the method, as frameworks and APIs honour them.
const OVERRIDE_HEADERS: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

impl<'a> RequestView<'a> {
    /// `aliases`: the site's `method_aliases` (a method, and the methods it is routed as).
    pub fn new(
        head: &'a RequestHead,
        aliases: &[(String, Vec<String>)],
        body: Option<&'a DecodedBody>,
        body_pending: bool,
    ) -> RequestView<'a> {
        let path = head.path_only();
        let query = head
            .query()
            .map(|q| decode::parse_form(q.as_bytes()))
            .unwrap_or_default();
        let normalised = normalise_path(path);
        let slashed = if normalised == "/" {
            String::new()
        } else {
            format!("{normalised}/")
        };
        let mut view = RequestView {
            head,
            bit: method_bit(&head.method),
            other_methods: Vec::new(),
            path,
            normalised,
            slashed,
            query,
            body,
            body_pending,
        };
        view.other_methods = view.method_readings(aliases);
        view
    }

    fn method_readings(&self, aliases: &[(String, Vec<String>)]) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        let add = |m: &str, certain: bool, out: &mut Vec<(String, bool)>| {
            let m = m.trim().to_ascii_uppercase();
            if m.is_empty() || m.eq_ignore_ascii_case(&self.head.method) {
                return;
            }
            match out.iter_mut().find(|(x, _)| *x == m) {
                Some(existing) => existing.1 |= certain,
                None => out.push((m, certain)),
            }
        };
        let mut overrides: Vec<&str> = Vec::new();
        for h in OVERRIDE_HEADERS {
            overrides.extend(self.head.headers_named(h));
        }
        if self.head.method.eq_ignore_ascii_case("POST") {
            overrides.extend(self.param_values(&[PtrSeg::Key("_method".into())], false));
        }
        for m in overrides {
            add(m, false, &mut out);
        }
        let actual = self.head.method.to_ascii_uppercase();
        let mut from: Vec<(String, bool)> = vec![(actual, true)];
        from.extend(out.iter().cloned());
        for (m, certain) in from {
            for (alias_of, routed_as) in aliases {
                if alias_of.eq_ignore_ascii_case(&m) {
                    for r in routed_as {
                        add(r, certain, &mut out);
                    }
                }
            }
        }
        out
    }

    /// The normalised path (what routers see).
    pub fn normalised_path(&self) -> &str {
        &self.normalised
    }

    /// Every scalar value a parameter selector reaches: in every structure of the body
    /// (unless `query_only`) and in the query string.
    pub fn param_values(&self, segs: &[PtrSeg], query_only: bool) -> Vec<&str> {
        let mut out = Vec::new();
        let name_hit = |key: &str| {
            name_readings(key)
                .iter()
                .any(|r| segments_match(segs, r) == Some(NameMatch::Whole))
        };
        if !query_only {
            if let Some(body) = self.body {
                for (_, kind) in body.views() {
                    match kind {
                        BodyKind::Json(root) => {
                            let src = body.text().unwrap_or("");
                            for (_, _, node) in decode::select(root, segs) {
                                if let Some(t) = node.scalar_text(src) {
                                    out.push(t);
                                }
                            }
                        }
                        BodyKind::Form(pairs) => out.extend(
                            pairs
                                .iter()
                                .filter(|p| name_hit(&p.key))
                                .map(|p| p.value.as_str()),
                        ),
                        BodyKind::Multipart(parts) => {
                            for p in parts {
                                if let Some(t) = &p.text {
                                    if p.names.iter().any(|n| name_hit(n)) {
                                        out.push(t);
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        out.extend(
            self.query
                .iter()
                .filter(|p| name_hit(&p.key))
                .map(|p| p.value.as_str()),
        );
        out
    }

    /// The inputs fields are selected from (the query counts when `with_query`).
    pub fn inputs(&self, with_query: bool) -> Inputs<'_> {
        Inputs {
            body: self.body,
            query: if with_query { &self.query } else { &[] },
        }
    }
}

/// What an activity says of a request: the truth of its conditions, and whether some of
/// them wait on the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub truth: Truth,
    pub needs_body: bool,
}

impl Activity {
    /// Whether the activity has user text to inspect.
    pub fn carries_content(&self) -> bool {
        !self.content.is_empty()
    }

    /// Whether a POST may be routed to this activity by a method override in its body
    /// (`_method`, as Rack reads it): it carries content and does not take POST itself.
    pub(crate) fn reachable_by_override(&self) -> bool {
        self.carries_content() && !self.takes_method(method_bit("POST"), "POST")
    }

    /// Whether the activity has a `path` condition (required to claim a foreign host).
    pub fn has_path(&self) -> bool {
        self.path.is_some()
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

    fn method_truth(&self, view: &RequestView<'_>) -> Truth {
        if self.takes_method(view.bit, &view.head.method) {
            return Truth::Yes;
        }
        let mut best = Truth::No;
        for (m, certain) in &view.other_methods {
            if self.takes_method(method_bit(m), m) {
                best = best.max(if *certain { Truth::Yes } else { Truth::Maybe });
            }
        }
        best
    }

    /// The truth of the method and host conditions alone.
    pub(crate) fn method_and_host(&self, view: &RequestView<'_>) -> Truth {
        let method = self.method_truth(view);
        if method == Truth::No {
            return Truth::No;
        }
        match &self.host {
            Some(re) if !re.is_match(&view.head.host) => Truth::No,
            _ => method,
        }
    }

    fn path_truth(&self, view: &RequestView<'_>) -> Truth {
        let Some(re) = &self.path else {
            return Truth::Yes;
        };
        let norm: &str = &view.normalised;
        let routed = re.is_match(norm) || (!view.slashed.is_empty() && re.is_match(&view.slashed));
        let as_sent = if view.path == norm {
            routed
        } else {
            re.is_match(view.path)
        };
        match (routed, as_sent) {
            (true, true) => Truth::Yes,
            (false, false) => Truth::No,
            _ => Truth::Maybe,
        }
    }

    fn graphql_truth(&self, view: &RequestView<'_>) -> Assessment {
        let yes = Assessment {
            truth: Truth::Yes,
            needs_body: false,
        };
        let Some(op) = self.graphql_operation.as_deref() else {
            return yes;
        };
        let last = view.normalised.rsplit('/').next().unwrap_or("");
        if view.body_pending && last != op {
            return Assessment {
                truth: Truth::Maybe,
                needs_body: true,
            };
        }
        let name = [PtrSeg::Key("operationName".into())];
        let batch = [PtrSeg::Any, PtrSeg::Key("operationName".into())];
        let mut values = view.param_values(&name, view.body_pending);
        if let Some(BodyKind::Json(root)) = view.body.map(|b| &b.kind) {
            values.extend(
                decode::select(root, &batch)
                    .into_iter()
                    .filter_map(|(_, _, n)| n.as_str()),
            );
        }
        if last == op {
            values.push(last);
        }
        let truth = match (values.contains(&op), values.iter().all(|v| *v == op)) {
            (true, true) => Truth::Yes,
            (true, false) => Truth::Maybe,
            _ => Truth::No,
        };
        Assessment {
            truth,
            needs_body: false,
        }
    }

    /// Answers every condition over the readings of `view`.
    pub fn assess(&self, view: &RequestView<'_>) -> Assessment {
        let mut truth = self.method_and_host(view);
        if truth == Truth::No {
            return Assessment {
                truth,
                needs_body: false,
            };
        }
        truth = truth.min(self.path_truth(view));
        if truth == Truth::No {
            return Assessment {
                truth,
                needs_body: false,
            };
        }
        for (_, segs, re) in &self.query {
            truth = truth.min(Truth::over(view.param_values(segs, true).into_iter(), re));
        }
        let graphql = self.graphql_truth(view);
        truth = truth.min(graphql.truth);
        let mut needs_body = graphql.needs_body;
        if !self.params.is_empty() && view.body_pending {
            needs_body = true;
        } else {
            for (_, segs, re) in &self.params {
                truth = truth.min(Truth::over(view.param_values(segs, false).into_iter(), re));
            }
        }
        Assessment { truth, needs_body }
    }
}

/// The result of classifying against one site's activities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SiteMatch {
    /// The candidate activities, one bit each by index (see the module docs).
    pub candidates: u64,
    /// An activity waits on the body, so the answer may change with it.
    pub pending_body: bool,
}

impl SiteMatch {
    /// The first candidate: the activity a request is reported as.
    pub fn activity(&self) -> Option<usize> {
        (self.candidates != 0).then(|| self.candidates.trailing_zeros() as usize)
    }

    /// The candidates in file order.
    pub fn each(&self) -> impl Iterator<Item = usize> {
        let mask = self.candidates;
        (0..64).filter(move |i| mask & (1 << i) != 0)
    }
}

/// Activities a site may have (they are told apart in a 64-bit set).
pub const MAX_ACTIVITIES: usize = 64;

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

/// Classification over a site's activities: every candidate up to the first certain one.
/// With `view.body_pending`, activities that wait on the body are skipped and reported as
/// `pending_body`.
pub fn classify(activities: &[Activity], view: &RequestView<'_>) -> SiteMatch {
    let mut m = SiteMatch {
        candidates: 0,
        pending_body: false,
    };
    let quick = view.other_methods.is_empty();
    for (i, a) in activities.iter().enumerate().take(MAX_ACTIVITIES) {
        if quick && !a.takes_method(view.bit, &view.head.method) {
            continue;
        }
        let Assessment { truth, needs_body } = a.assess(view);
        if truth == Truth::No {
            continue;
        }
        if needs_body {
            m.pending_body = true;
            continue;
        }
        m.candidates |= 1 << i;
        if truth == Truth::Yes {
            break;
        }
    }
    m
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
            path: Some(Regex::new(&format!("(?i){path}")).unwrap()),
            graphql_operation: None,
            params: vec![],
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

    fn body(ct: &str, b: &[u8]) -> DecodedBody {
        decode::decode_body(Some(ct), None, b, 1 << 20).unwrap()
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
        let v = RequestView::new(&h, &[], None, true);
        assert_eq!(a.assess(&v).truth, Truth::Yes);
        let h = head("POST", "/i/api/graphql/", "application/json");
        let v = RequestView::new(&h, &[], None, true);
        assert!(a.assess(&v).needs_body);
        let b = body("application/json", br#"{"operationName":"CreateTweet"}"#);
        assert_eq!(
            a.assess(&RequestView::new(&h, &[], Some(&b), false)).truth,
            Truth::Yes
        );
        let b = body("application/json", br#"{"operationName":"Other"}"#);
        assert_eq!(
            a.assess(&RequestView::new(&h, &[], Some(&b), false)).truth,
            Truth::No
        );
    }

    fn param_activity(name: &str, sel: &str, re: &str) -> Activity {
        let mut a = activity(name, "POST", "^/api/graphql/?$");
        a.params = vec![(
            sel.into(),
            decode::keys::selector_from_name(sel),
            Regex::new(re).unwrap(),
        )];
        a
    }

    #[test]
    fn parameter_conditions_need_the_body_and_order_decides() {
        let acts = vec![
            param_activity(
                "post",
                "fb_api_req_friendly_name",
                "^ComposerStoryCreateMutation$",
            ),
            activity("other", "POST", "^/api/graphql/?$"),
        ];
        let h = head("POST", "/api/graphql/", "application/x-www-form-urlencoded");
        let m = classify(&acts, &RequestView::new(&h, &[], None, true));
        assert_eq!((m.activity(), m.pending_body), (Some(1), true));
        let b = body(
            "application/x-www-form-urlencoded",
            b"fb_api_req_friendly_name=ComposerStoryCreateMutation&variables=%7B%7D",
        );
        let m = classify(&acts, &RequestView::new(&h, &[], Some(&b), false));
        assert_eq!(m.each().collect::<Vec<_>>(), [0]);
        let m = classify(&acts, &RequestView::new(&h, &[], None, false));
        assert_eq!(m.each().collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn copies_that_disagree_make_every_reading_a_candidate() {
        let acts = vec![
            param_activity("message", "visibility", "^direct$"),
            activity("post", "POST", "^/api/graphql/?$"),
        ];
        let h = head("POST", "/api/graphql", "application/x-www-form-urlencoded");
        for (b, want) in [
            (&b"visibility=direct"[..], vec![0]),
            (b"visibility=public&visibility=direct", vec![0, 1]),
            (b"visibility=direct&visibility=public", vec![0, 1]),
            (b"visibility=public", vec![1]),
        ] {
            let b = body("application/x-www-form-urlencoded", b);
            let m = classify(&acts, &RequestView::new(&h, &[], Some(&b), false));
            assert_eq!(m.each().collect::<Vec<_>>(), want);
        }
        // The query is read as parameters too.
        let h = head("POST", "/api/graphql?visibility=direct", "");
        let m = classify(&acts, &RequestView::new(&h, &[], None, false));
        assert_eq!(m.each().collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn paths_are_read_as_routers_read_them() {
        for (raw, norm) in [
            ("/api/v1/statuses", "/api/v1/statuses"),
            ("/api/v1//statuses", "/api/v1/statuses"),
            ("/api/v1/statuses/", "/api/v1/statuses"),
            ("/api/v1/./x/../statuses", "/api/v1/statuses"),
            ("/api/v1/%73tatuses", "/api/v1/statuses"),
            ("/api/v1/statuses;jsessionid=1", "/api/v1/statuses"),
            ("/api\\v1/statuses", "/api/v1/statuses"),
            ("/", "/"),
            ("//", "/"),
            ("/a/%2Fb", "/a/%2Fb"),
            ("/é/%C3%A9/", "/é/%C3%A9"),
        ] {
            assert_eq!(normalise_path(raw), norm, "{raw}");
        }
        let a = activity("post", "POST", "^/api/v1/statuses$");
        for (p, want) in [
            ("/api/v1/statuses", Truth::Yes),
            ("/api/v1//statuses", Truth::Maybe),
            ("/API/v1/statuses/", Truth::Maybe),
            ("/api/v1/statuses/1", Truth::No),
        ] {
            let h = head("POST", p, "");
            assert_eq!(
                a.assess(&RequestView::new(&h, &[], None, false)).truth,
                want,
                "{p}"
            );
        }
    }

    #[test]
    fn method_aliases_and_overrides() {
        let put = activity("edit", "PUT", "^/s$");
        let aliases = vec![("PATCH".to_string(), vec!["PUT".to_string()])];
        let h = head("PATCH", "/s", "");
        assert_eq!(
            put.assess(&RequestView::new(&h, &aliases, None, false))
                .truth,
            Truth::Yes
        );
        assert_eq!(
            put.assess(&RequestView::new(&h, &[], None, false)).truth,
            Truth::No
        );
        let mut h = head("POST", "/s?_method=put", "");
        assert_eq!(
            put.assess(&RequestView::new(&h, &[], None, false)).truth,
            Truth::Maybe
        );
        h.path = "/s".into();
        h.headers
            .push(("x-http-method-override".into(), "PUT".into()));
        assert_eq!(
            put.assess(&RequestView::new(&h, &[], None, false)).truth,
            Truth::Maybe
        );
    }
}
