//! Property tests of the engine's invariants on generated input (proptest), run by
//! `cargo test`. The fuzz targets under `fuzz/` drive the same code with arbitrary bytes.
//!
//! - Redaction leaves nothing the detectors would find again.
//! - Redacted JSON parses and differs from its input only in the redacted content strings.
//! - Decoding a body and re-encoding it untouched gives back the same bytes; a body with
//!   nothing to act on is forwarded as it came (the decision carries no new body).
//! - The CONNECT parser never panics, and accepts exactly what it can give back.
//! - Invisible characters inside a finding (zero-width spaces and joiners, soft hyphens,
//!   word joiners, BOMs, variation selectors) neither hide it nor leak it: the shipped
//!   detectors find the value with every character it was written with, and its redaction
//!   leaves none of its letters or digits while every other byte stays as it was.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use permeable::engine::decode::{decode_body, BodyKind};
use permeable::engine::policy::{Action, EngineOptions, Policy, RequestHead};
use proptest::prelude::*;

/// Categories the engine fixture rules redact.
const REDACTED: &[&str] = &[
    "pii.credit_card",
    "pii.iban",
    "pii.us_ssn",
    "pii.uk_nino",
    "custom.employee_id",
    "corp.internal_host",
    "corp.internal_url",
];

/// Default-ignorable characters people's text carries.
const INVISIBLE: &[char] = &[
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{00AD}', '\u{2060}', '\u{FEFF}', '\u{FE0F}', '\u{034F}',
    '\0', '\u{7}', '\u{7F}', '\u{9B}',
];

/// A value one of the shipped detectors reports, and its category.
fn finding() -> impl Strategy<Value = (String, &'static str)> {
    let card = (
        proptest::collection::vec(any::<u8>(), 15),
        prop_oneof![Just(" "), Just("-"), Just(".")],
    )
        .prop_map(|(d, sep)| {
            let c = luhn_card(&d);
            (
                format!(
                    "{}{sep}{}{sep}{}{sep}{}",
                    &c[..4],
                    &c[4..8],
                    &c[8..12],
                    &c[12..]
                ),
                "pii.credit_card",
            )
        });
    let ssn = (1u32..900, 1u32..100, 1u32..10000)
        .prop_filter("valid area", |(a, _, _)| *a != 666)
        .prop_filter("not an advertising number", |(a, g, s)| {
            (*a, *g, *s) != (78, 5, 1120)
                && (*a, *g, *s) != (123, 45, 6789)
                && (*a, *g, *s) != (219, 9, 9999)
        })
        .prop_map(|(a, g, s)| (format!("{a:03}-{g:02}-{s:04}"), "pii.us_ssn"));
    let nino = ("[ACEHJLMPRSWXY][ABCEHJLMPRSW]", "[0-9]{6}", "[A-D]")
        .prop_map(|(p, d, s)| (format!("{p}{d}{s}"), "pii.uk_nino"));
    let aws = "[A-Z2-7]{16}"
        .prop_filter("not a placeholder", |k| {
            permeable::engine::detect::entropy(k) > 3.0
        })
        .prop_map(|k| (format!("AKIA{k}"), "secret.aws_access_key"));
    let codename = prop_oneof![
        Just("BLUEHERON"),
        Just("Project Nightjar"),
        Just("KESTREL-7"),
        Just("operation-larkspur"),
        Just("OperationLarkspur"),
    ]
    .prop_map(|c| (c.to_string(), "corp.codename"));
    prop_oneof![card, ssn, nino, aws, codename]
}

/// `value` with invisible characters inserted between some of its characters.
fn with_invisibles(value: &str, picks: &[(usize, usize)]) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        out.push(*c);
        if i + 1 < chars.len() {
            for &(at, which) in picks {
                if at % (chars.len() - 1) == i {
                    out.push(INVISIBLE[which % INVISIBLE.len()]);
                }
            }
        }
    }
    out
}

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine-rules");
    Policy::load(&dir, &EngineOptions::default()).expect("engine fixture rules compile")
});

fn tweet_head(content_type: &str) -> RequestHead {
    RequestHead::from_url(
        "POST",
        "https://x.com/i/api/graphql/AbC123/CreateTweet",
        vec![("content-type".into(), content_type.into())],
        None,
    )
    .unwrap()
}

/// A card number that passes the Luhn check, from 15 generated digits.
fn luhn_card(digits: &[u8]) -> String {
    let mut d: Vec<u8> = digits.iter().map(|x| x % 10).collect();
    d[0] = 4;
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 0 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    d.push(((10 - sum % 10) % 10) as u8);
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

/// Pieces of a post: harmless words, and values the redacting rules act on.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,9}",
        1 => "[ ,.!?'\n\t\"\\\\/]{1,3}",
        1 => "[à-ÿ€😀]{1,3}",
        1 => proptest::collection::vec(any::<u8>(), 15).prop_map(|d| luhn_card(&d)),
        1 => (proptest::collection::vec(any::<u8>(), 15), prop_oneof![Just(" "), Just("-")])
            .prop_map(|(d, sep)| {
                let c = luhn_card(&d);
                format!("{} {sep}{}{sep}{}{sep}{}", &c[..4], &c[4..8], &c[8..12], &c[12..])
                    .replace("  ", " ")
            }),
        1 => "[0-8][0-9]{2}-[1-9][0-9]-[1-9][0-9]{3}",
        1 => Just("GB82 WEST 1234 5698 7654 32".to_string()),
        1 => Just("DE89370400440532013000".to_string()),
        1 => "[A-CEGHJ-PR-TW-Z]{2} [0-9]{2} [0-9]{2} [0-9]{2} [A-D]",
        1 => "EMP-[0-9]{6}",
        1 => "https?://[a-z]{1,8}\\.corp\\.example/[a-z0-9/]{0,10}",
    ]
}

fn post_text() -> impl Strategy<Value = String> {
    // Pieces are kept apart by a word: a digit run glued to a card number makes one longer
    // run, which the fixture card pattern reads as one failed candidate (the shipped rules
    // do find it).
    proptest::collection::vec(piece(), 0..12).prop_map(|p| p.join(" x "))
}

fn redacted_categories(body: &[u8]) -> Vec<String> {
    POLICY
        .scan("application/json", body)
        .expect("redacted JSON decodes")
        .into_iter()
        .filter(|f| REDACTED.contains(&f.category.as_str()))
        .map(|f| format!("{} at {}..{}", f.category, f.start, f.end))
        .collect()
}

/// Walks two JSON values: same shape, same scalars; returns the paths of strings that differ.
fn differing_strings(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            assert_eq!(kx, ky, "object keys changed at {path}");
            for (k, v) in x {
                differing_strings(v, &y[k], &format!("{path}/{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "array length changed at {path}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differing_strings(v, w, &format!("{path}/{i}"), out);
            }
        }
        (Value::String(x), Value::String(y)) => {
            if x != y {
                out.push(path.to_string());
            }
        }
        _ => assert_eq!(a, b, "value changed at {path}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the detectors find and the rules redact is gone from the forwarded body.
    #[test]
    fn redaction_leaves_nothing_to_find(text in post_text(), other in post_text(), pretty in any::<bool>()) {
        let value = serde_json::json!({
            "variables": {"tweet_text": text, "note": other, "n": 42, "flag": true, "media": []},
            "queryId": "AbC123"
        });
        let body = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
        let head = tweet_head("application/json");
        let class = POLICY.classify(&head);
        let decision = POLICY.decide(&head, &class, Some(body.as_bytes()));
        prop_assert!(matches!(decision.action, Action::Allow | Action::Log | Action::Redact), "{:?}", decision.action);
        let forwarded = decision.body.clone().unwrap_or_else(|| body.clone().into_bytes());
        // Only the content field is inspected: look there.
        let out: serde_json::Value = serde_json::from_slice(&forwarded).expect("redacted JSON parses");
        let field = serde_json::json!({"t": out["variables"]["tweet_text"]}).to_string();
        let left = redacted_categories(field.as_bytes());
        prop_assert!(left.is_empty(), "still found after redaction: {left:?} in {field}");
    }

    /// Redacted JSON parses and differs from the input only in the content strings.
    #[test]
    fn redacted_json_differs_only_in_redacted_strings(text in post_text(), other in post_text(), n in any::<i64>(), pretty in any::<bool>()) {
        let value = serde_json::json!({
            "variables": {"tweet_text": text, "note": other, "n": n, "list": [other.clone(), 1.5, null]},
            "queryId": "AbC123"
        });
        let body = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
        let head = tweet_head("application/json; charset=utf-8");
        let class = POLICY.classify(&head);
        let decision = POLICY.decide(&head, &class, Some(body.as_bytes()));
        if let Some(new) = decision.body.as_ref() {
            prop_assert_eq!(decision.action, Action::Redact);
            let out: serde_json::Value = serde_json::from_slice(new).expect("redacted JSON parses");
            let mut changed = Vec::new();
            differing_strings(&value, &out, "", &mut changed);
            prop_assert_eq!(changed, vec!["/variables/tweet_text".to_string()]);
        } else {
            prop_assert!(decision.action != Action::Redact || decision.findings.is_empty());
        }
    }

    /// A body with nothing to act on is forwarded as it came, whatever its type.
    #[test]
    fn untouched_bodies_are_forwarded_as_they_came(words in proptest::collection::vec("[a-z]{1,8}", 0..20), kind in 0..4usize) {
        let text = words.join(" ");
        let (ct, body) = match kind {
            0 => ("application/json", serde_json::json!({"variables": {"tweet_text": text}}).to_string()),
            1 => ("application/x-www-form-urlencoded", format!("a=1&tweet_text={}&b=", text.replace(' ', "+"))),
            2 => ("multipart/form-data; boundary=XyZ", format!("--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n{text}\r\n--XyZ--\r\n")),
            _ => ("text/plain", text.clone()),
        };
        let head = tweet_head(ct);
        let class = POLICY.classify(&head);
        let decision = POLICY.decide(&head, &class, Some(body.as_bytes()));
        prop_assert!(decision.body.is_none(), "an untouched body was rewritten");
    }

    /// Decoding then re-encoding without changes is the identity (on the decompressed
    /// bytes when a Content-Encoding applies).
    #[test]
    fn decode_then_reencode_is_identity(text in post_text(), kind in 0..4usize, coding in 0..5usize) {
        let (ct, body) = match kind {
            0 => ("application/json", serde_json::json!({"variables": {"tweet_text": text}}).to_string().into_bytes()),
            1 => ("application/x-www-form-urlencoded", format!("a=1&t={}", permeable::engine::decode::form_encode(&text)).into_bytes()),
            2 => ("multipart/form-data; boundary=B", format!("--B\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\n{text}\r\n--B--\r\n").into_bytes()),
            _ => ("text/plain; charset=utf-8", text.clone().into_bytes()),
        };
        let encoding = [None, Some("gzip"), Some("deflate"), Some("br"), Some("zstd")][coding];
        let mut plain = decode_body(Some(ct), None, &body, 1 << 20).expect("decodes");
        prop_assert_eq!(&plain.raw, &body);
        prop_assert!(!matches!(plain.kind, BodyKind::Binary));
        // The body as a client would send it, compressed by the engine's own encoder.
        plain.encodings = permeable::engine::decode::parse_encodings(encoding).unwrap();
        let wire = plain.reencode(&body).expect("encodes");
        let decoded = decode_body(Some(ct), encoding, &wire, 1 << 20).expect("decodes");
        prop_assert_eq!(&decoded.raw, &body, "decoding gives back the body");
        let again = permeable::engine::redact::rewrite_body(&decoded, &[]).expect("rewrites");
        if encoding.is_none() {
            prop_assert_eq!(&again, &body, "re-encoding without changes is the identity");
        }
        let round = decode_body(Some(ct), encoding, &again, 1 << 20).expect("decodes again");
        prop_assert_eq!(&round.raw, &body, "re-encoding without changes is the identity");
    }

    /// A finding written with invisible characters inside is found whole and redacted
    /// whole; everything around it is byte for byte what it was.
    #[test]
    fn invisible_characters_neither_hide_nor_leak_a_finding(
        (value, category) in finding(),
        picks in proptest::collection::vec((any::<usize>(), any::<usize>()), 1..4),
        before in "[a-z]{1,8}( [a-z]{1,8}){0,3}",
        after in "[a-z]{1,8}( [a-z]{1,8}){0,3}",
    ) {
        use permeable::engine::redact::{redact_text, Redaction, Span};
        let written = with_invisibles(&value, &picks);
        let text = format!("{before} {written} {after}");
        let (start, end) = (before.len() + 1, before.len() + 1 + written.len());
        let findings = SHIPPED.scan_text(&text);
        let hit = findings.iter().find(|f| f.category == category);
        prop_assert!(hit.is_some(), "{category} not found in {text:?}: {findings:?}");
        let hit = hit.unwrap();
        prop_assert_eq!((hit.start, hit.end), (start, end), "the span is the written value");
        let replace = Redaction::Replace("[REDACTED]".into());
        let spans: Vec<Span<'_>> = findings
            .iter()
            .map(|f| Span {
                start: f.start,
                end: f.end,
                category: &f.category,
                detector: &f.detector,
                detector_order: 0,
                redaction: &replace,
            })
            .collect();
        let (out, _) = redact_text(&text, &spans, b"k");
        prop_assert_eq!(&out, &format!("{before} [REDACTED] {after}"));
        let redacted = &out[before.len() + 1..out.len() - after.len() - 1];
        prop_assert!(!value.chars().filter(|c| c.is_alphanumeric()).any(|c| redacted.contains(c) && !"REDACTED".contains(c)));
    }

    /// Whether a form's or a query's escapes spell UTF-8, checked in chunks without a copy,
    /// agrees with decoding a copy and checking that, wherever a sequence is cut.
    #[test]
    fn escapes_spell_utf8_agrees_with_a_decoded_copy(
        pieces in proptest::collection::vec(prop_oneof![
            "[a-z+&=%]{0,3}",
            "\\PC{1,2}",
            any::<u8>().prop_map(|b| format!("%{b:02X}")),
            Just("%C3%A9".to_string()),
            Just("%E2%82%AC".to_string()),
        ], 0..700),
    ) {
        use permeable::engine::decode::{charset::escapes_spell_utf8, form::form_decode_bytes};
        let raw = pieces.concat();
        prop_assert_eq!(
            escapes_spell_utf8(raw.as_bytes()),
            std::str::from_utf8(&form_decode_bytes(raw.as_bytes())).is_ok()
        );
    }

    /// The CONNECT parser takes any bytes without panicking; what it accepts it gives back.
    #[test]
    fn connect_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = permeable::proxy::front::parse_connect(&bytes);
    }

    #[test]
    fn connect_targets_round_trip(host in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]{1,10}){0,3}", port in 1u16..) {
        let head = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
        let (h, p) = permeable::proxy::front::parse_connect(head.as_bytes()).expect("valid target");
        prop_assert_eq!(h, host);
        prop_assert_eq!(p, port);
    }
}

/// Every category named in [`REDACTED`] exists (a renamed category would make the
/// properties above vacuous).
#[test]
fn redacted_categories_are_known() {
    let known: BTreeSet<&str> = permeable::engine::detect::CATEGORIES
        .iter()
        .copied()
        .collect();
    for c in REDACTED {
        assert!(known.contains(c) || c.starts_with("custom."), "{c}");
    }
}

/// The shipped rule pack, with the safety net on.
static SHIPPED: LazyLock<Policy> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    Policy::load(&dir, &EngineOptions::default()).expect("shipped rules compile")
});

/// A value the shipped rules act on, and how: a card number (redacted) or an AWS key
/// (blocked).
#[derive(Clone, Debug)]
enum Sensitive {
    Card(String),
    Aws(String),
}

impl Sensitive {
    fn text(&self) -> &str {
        match self {
            Sensitive::Card(c) | Sensitive::Aws(c) => c,
        }
    }
}

fn sensitive() -> impl Strategy<Value = Sensitive> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 15).prop_map(|d| Sensitive::Card(luhn_card(&d))),
        "[A-Z2-7]{16}".prop_map(|tail| Sensitive::Aws(format!("AKIA{tail}"))),
    ]
}

/// How a request carries its parameters.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    /// X CreateTweet: `tweet_text` repeated inside `variables`, or `variables` repeated.
    Json,
    /// Mastodon statuses, form-encoded.
    Form,
    /// Mastodon statuses, multipart.
    Multipart,
    /// v1.1 update_status, the text in the query string.
    Query,
}

/// A request whose content field appears `copies.len()` times (the sensitive value in the
/// copy at `at`), among harmless fields in a generated order.
fn duplicated_request(
    carrier: Carrier,
    copies: &[String],
    filler: &[(String, String)],
    nested: bool,
) -> (RequestHead, Vec<u8>) {
    let head = |method: &str, url: &str, ct: &str| {
        let headers = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type".to_string(), ct.to_string())]
        };
        RequestHead::from_url(method, url, headers, None).unwrap()
    };
    let esc = |s: &str| serde_json::to_string(s).unwrap();
    match carrier {
        Carrier::Json => {
            let mut members: Vec<String> = filler
                .iter()
                .map(|(k, v)| format!("{}:{}", esc(k), esc(v)))
                .collect();
            let body = if nested {
                // `variables` itself repeated, one copy of the text in each.
                let mut objects: Vec<String> = copies
                    .iter()
                    .map(|c| format!("\"variables\":{{\"tweet_text\":{}}}", esc(c)))
                    .collect();
                objects.append(&mut members);
                format!("{{{}}}", objects.join(","))
            } else {
                let texts: Vec<String> = copies
                    .iter()
                    .map(|c| format!("\"tweet_text\":{}", esc(c)))
                    .collect();
                members.push(format!("\"variables\":{{{}}}", texts.join(",")));
                members.rotate_left(filler.len() / 2);
                format!("{{{}}}", members.join(","))
            };
            (
                head(
                    "POST",
                    "https://x.com/i/api/graphql/AbC123/CreateTweet",
                    "application/json",
                ),
                body.into_bytes(),
            )
        }
        Carrier::Form | Carrier::Query => {
            let enc = permeable::engine::decode::form_encode;
            let mut pairs: Vec<String> = filler
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect();
            for (i, c) in copies.iter().enumerate() {
                let at = (i * 7 + filler.len()) % (pairs.len() + 1);
                pairs.insert(at, format!("status={}", enc(c)));
            }
            let joined = pairs.join("&");
            if matches!(carrier, Carrier::Form) {
                (
                    head(
                        "POST",
                        "https://mastodon.social/api/v1/statuses",
                        "application/x-www-form-urlencoded",
                    ),
                    joined.into_bytes(),
                )
            } else {
                let url = format!("https://api.twitter.com/1.1/statuses/update.json?{joined}");
                (head("POST", &url, ""), Vec::new())
            }
        }
        Carrier::Multipart => {
            let mut parts: Vec<(String, String)> = filler.to_vec();
            for (i, c) in copies.iter().enumerate() {
                let at = (i * 5 + 1) % (parts.len() + 1);
                parts.insert(at, ("status".into(), c.clone()));
            }
            let mut body = String::new();
            for (k, v) in parts {
                body.push_str(&format!(
                    "--B0\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                ));
            }
            body.push_str("--B0--\r\n");
            (
                head(
                    "POST",
                    "https://mastodon.social/api/v1/statuses",
                    "multipart/form-data; boundary=B0",
                ),
                body.into_bytes(),
            )
        }
    }
}

/// Every value a parser could read for the content field of a forwarded request: first
/// copy, last copy or all of them, across the body and the query.
fn readable_copies(carrier: Carrier, target: &str, body: &[u8]) -> Vec<String> {
    use permeable::engine::decode::{parse_form, parse_json, parse_multipart, select, PtrSeg};
    match carrier {
        Carrier::Json => {
            let Ok(root) = parse_json(std::str::from_utf8(body).unwrap_or("")) else {
                return vec![String::from_utf8_lossy(body).into_owned()];
            };
            let sel = [
                PtrSeg::Key("variables".into()),
                PtrSeg::Key("tweet_text".into()),
            ];
            select(&root, &sel)
                .into_iter()
                .filter_map(|(_, _, n)| n.as_str().map(str::to_string))
                .collect()
        }
        Carrier::Form => parse_form(body)
            .into_iter()
            .filter(|p| p.key == "status")
            .map(|p| p.value)
            .collect(),
        Carrier::Query => {
            let q = target.split_once('?').map_or("", |(_, q)| q);
            parse_form(q.as_bytes())
                .into_iter()
                .filter(|p| p.key == "status")
                .map(|p| p.value)
                .collect()
        }
        Carrier::Multipart => parse_multipart(body, "B0")
            .map(|parts| {
                parts
                    .into_iter()
                    .filter(|p| p.names.iter().any(|n| n == "status"))
                    .filter_map(|p| p.text)
                    .collect()
            })
            .unwrap_or_else(|_| vec![String::from_utf8_lossy(body).into_owned()]),
    }
}

fn letters_and_digits(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Repeated keys, fields and parts in any order: whichever copy a parser keeps
    /// (first-wins, last-wins, all values), a value the rules block or redact never
    /// reaches the site in clear.
    #[test]
    fn no_reading_of_a_repeated_field_delivers_a_value_in_clear(
        carrier in prop_oneof![Just(Carrier::Json), Just(Carrier::Form), Just(Carrier::Multipart), Just(Carrier::Query)],
        value in sensitive(),
        harmless in proptest::collection::vec("[a-z]{1,8}( [a-z]{1,8}){0,3}", 1..4),
        at in any::<prop::sample::Index>(),
        filler in proptest::collection::vec(("[a-z_]{3,10}", "[a-z0-9 ]{0,12}"), 0..6),
        nested in any::<bool>(),
        around in ("[a-z ]{0,6}", "[a-z ]{0,6}"),
    ) {
        let filler: Vec<(String, String)> = filler
            .into_iter()
            .filter(|(k, _)| !k.contains("status") && !k.contains("tweet_text") && !k.contains("variables") && k != "_method")
            .collect();
        // Only values the detectors find on their own: the property is about readings.
        let alone = SHIPPED.scan_text(value.text());
        prop_assume!(alone.iter().any(|f| f.start == 0 && f.end == value.text().len()));
        let mut copies = harmless.clone();
        let secret_copy = format!("{} {} {}", around.0, value.text(), around.1);
        copies.insert(at.index(copies.len() + 1), secret_copy);
        let (head, body) = duplicated_request(carrier, &copies, &filler, nested);
        let class = SHIPPED.classify(&head);
        let d = SHIPPED.decide(&head, &class, if body.is_empty() { None } else { Some(&body) });
        match (&value, d.action) {
            (_, Action::Block) => {}
            (Sensitive::Card(_), Action::Redact) => {
                let forwarded = d.body.clone().unwrap_or(body.clone());
                let target = d.target.clone().unwrap_or(head.path.clone());
                let secret = letters_and_digits(value.text());
                for copy in readable_copies(carrier, &target, &forwarded) {
                    prop_assert!(
                        !letters_and_digits(&copy).contains(&secret),
                        "{carrier:?}: {copy:?} forwarded in clear ({:?})", d.trace
                    );
                }
            }
            (v, a) => prop_assert!(false, "{carrier:?} {v:?}: {a} ({:#?})", d.trace),
        }
    }
}
