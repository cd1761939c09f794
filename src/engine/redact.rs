//! Redaction: rewriting the findings of a body in place while keeping its structure.
//!
//! # Operators
//! - `mask { keep_last: N, char: C }`: every letter and digit but the last N is replaced by
//!   C; separators (spaces, dashes, dots…) stay, so `4111 1111 1111 1111` becomes
//!   `**** **** **** 1111`.
//! - `replace: TEMPLATE`: the value becomes the template, with `{category}` and
//!   `{detector}` filled in (`[REDACTED:{category}]`).
//! - `hash { length, template }`: a keyed HMAC-SHA256 of the value (hex, 16 digits by
//!   default), in the template (default `[{category}:{hash}]`), so the same value can be
//!   correlated across posts without being disclosed.
//!
//! # Overlapping findings
//! Findings of a field are sorted by start; findings that overlap (share at least one byte)
//! are merged into one region covering all of them. A merged region is redacted once, with
//! the operator of its *longest* finding (ties: the earliest start, then the detector that
//! comes first in the rule files). This is deterministic and never leaves part of a
//! sensitive value in clear text.
//!
//! # Structure preservation
//! Only the bytes of changed values are rewritten; everything else is copied byte for byte:
//! - JSON: the string literal of a redacted field is replaced by a new literal (escaped as
//!   JSON requires); keys, order, whitespace and other values are untouched. When the
//!   object holding a redacted `text` has a sibling `facets` array of byte ranges
//!   (`index.byteStart`/`byteEnd`, as Bluesky posts do), the ranges are recomputed so they
//!   still point at the same words; a range inside a redaction is clamped to it.
//! - forms and query strings: only changed values are re-encoded (including JSON nested in
//!   a value), spaces written as they came (`+` or `%20`);
//! - multipart: only the content of changed parts is replaced; boundaries and part headers
//!   stay;
//! - the result is re-compressed with the body's Content-Encoding;
//! - every copy of a repeated field is its own field and is rewritten on its own.
//!
//! Only the primary reading of a body is rewritten (see `decode`); a finding that only
//! another reading sees cannot be rewritten, and the engine blocks such a request instead.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::engine::decode::{
    form_encode_like, json_string_literal, parse_json, BodyKind, DecodedBody, FieldLoc, FormPair,
    JsonKind, JsonNode, Source,
};

/// How a finding is rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redaction {
    Mask { keep_last: usize, ch: char },
    Replace(String),
    Hash { length: usize, template: String },
}

impl Redaction {
    /// The redaction used when a detector names none.
    pub fn default_for(_category: &str) -> Redaction {
        Redaction::Replace("[REDACTED:{category}]".into())
    }

    /// Rank used to break ties deterministically: none needed beyond the documented order.
    fn apply(&self, value: &str, category: &str, detector: &str, key: &[u8]) -> String {
        match self {
            Redaction::Mask { keep_last, ch } => {
                let total = value.chars().filter(|c| c.is_alphanumeric()).count();
                let keep_from = total.saturating_sub(*keep_last);
                let mut seen = 0;
                value
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() {
                            seen += 1;
                            if seen > keep_from {
                                c
                            } else {
                                *ch
                            }
                        } else {
                            c
                        }
                    })
                    .collect()
            }
            Redaction::Replace(t) => t
                .replace("{category}", category)
                .replace("{detector}", detector),
            Redaction::Hash { length, template } => {
                let h = keyed_hash(key, value);
                let h = &h[..(*length).clamp(4, h.len())];
                template
                    .replace("{hash}", h)
                    .replace("{category}", category)
                    .replace("{detector}", detector)
            }
        }
    }
}

/// Keyed HMAC-SHA256 of `value`, lowercase hex.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A finding to redact in a field's text.
#[derive(Clone, Debug)]
pub struct Span<'a> {
    pub start: usize,
    pub end: usize,
    pub category: &'a str,
    pub detector: &'a str,
    /// Order of the detector in the rule files (tie-breaker).
    pub detector_order: usize,
    pub redaction: &'a Redaction,
}

/// One replaced range of a text: `old_start..old_end` became `new_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edit {
    pub old_start: usize,
    pub old_end: usize,
    pub new_len: usize,
}

/// Redacts `spans` in `text` (merging overlaps as documented above). Returns the new text
/// and the edits made, in order.
pub fn redact_text(text: &str, spans: &[Span<'_>], key: &[u8]) -> (String, Vec<Edit>) {
    let mut spans: Vec<&Span<'_>> = spans
        .iter()
        .filter(|s| {
            s.start < s.end
                && s.end <= text.len()
                && text.is_char_boundary(s.start)
                && text.is_char_boundary(s.end)
        })
        .collect();
    spans.sort_by_key(|s| (s.start, s.end));
    // Merge overlapping spans into regions, remembering the longest member.
    let mut regions: Vec<(usize, usize, &Span<'_>)> = Vec::new();
    for s in spans {
        if let Some(last) = regions.last_mut() {
            if s.start < last.1 {
                last.1 = last.1.max(s.end);
                let best = last.2;
                let better = (
                    s.end - s.start,
                    std::cmp::Reverse(s.start),
                    std::cmp::Reverse(s.detector_order),
                ) > (
                    best.end - best.start,
                    std::cmp::Reverse(best.start),
                    std::cmp::Reverse(best.detector_order),
                );
                if better {
                    last.2 = s;
                }
                continue;
            }
        }
        regions.push((s.start, s.end, s));
    }
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::with_capacity(regions.len());
    let mut at = 0;
    for (start, end, s) in regions {
        out.push_str(&text[at..start]);
        let replacement = s
            .redaction
            .apply(&text[start..end], s.category, s.detector, key);
        edits.push(Edit {
            old_start: start,
            old_end: end,
            new_len: replacement.len(),
        });
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    (out, edits)
}

/// Maps a byte offset of the old text to the new text after `edits`. An offset inside a
/// redacted range maps to the start (`is_end == false`) or end (`is_end == true`) of its
/// replacement.
pub fn map_offset(offset: usize, edits: &[Edit], is_end: bool) -> usize {
    let mut delta: isize = 0;
    for e in edits {
        if offset <= e.old_start {
            break;
        }
        if offset < e.old_end {
            let new_start = (e.old_start as isize + delta) as usize;
            return if is_end {
                new_start + e.new_len
            } else {
                new_start
            };
        }
        delta += e.new_len as isize - (e.old_end - e.old_start) as isize;
    }
    (offset as isize + delta).max(0) as usize
}

/// A change to a field: its location and its new text, with the edits made to it.
#[derive(Clone, Debug)]
pub struct FieldChange {
    pub loc: FieldLoc,
    pub new_text: String,
    pub edits: Vec<Edit>,
}

/// Why a body or query could not be rewritten: the request is blocked instead.
#[derive(Debug)]
pub enum RewriteError {
    /// Two changes touch the same bytes.
    Overlap,
    /// A change names a field the body does not have (a bug, never a partial rewrite).
    NoSuchField,
    /// Re-compressing the body with its Content-Encoding failed.
    Reencode(std::io::Error),
}

impl std::fmt::Display for RewriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RewriteError::Overlap => f.write_str("overlapping rewrites of the request"),
            RewriteError::NoSuchField => f.write_str("a redacted field is not in the request"),
            RewriteError::Reencode(e) => write!(f, "re-encoding the body failed: {e}"),
        }
    }
}

impl std::error::Error for RewriteError {}

/// Byte replacement in a buffer.
struct Splice {
    start: usize,
    end: usize,
    bytes: Vec<u8>,
}

fn apply_splices(src: &[u8], mut splices: Vec<Splice>) -> Result<Vec<u8>, RewriteError> {
    splices.sort_by_key(|s| (s.start, s.end));
    let mut out = Vec::with_capacity(src.len());
    let mut at = 0;
    for s in splices {
        if s.start < at || s.end > src.len() || s.start > s.end {
            return Err(RewriteError::Overlap);
        }
        out.extend_from_slice(&src[at..s.start]);
        out.extend_from_slice(&s.bytes);
        at = s.end;
    }
    out.extend_from_slice(&src[at..]);
    Ok(out)
}

/// Splices for the `facets` byte ranges next to a redacted `text` at `path` (the string
/// literal starting at `at`).
fn facet_splices(
    root: &JsonNode,
    src: &str,
    path: &[String],
    at: usize,
    edits: &[Edit],
) -> Vec<Splice> {
    let mut out = Vec::new();
    let Some((last, parent_path)) = path.split_last() else {
        return out;
    };
    if last != "text" {
        return out;
    }
    // Walk to the object holding the text: of repeated keys, the copy that contains it.
    let mut parent = root;
    for k in parent_path {
        let next = match &parent.kind {
            JsonKind::Object(members) => members
                .iter()
                .find(|(name, v)| name == k && v.start <= at && at < v.end)
                .map(|(_, v)| v),
            JsonKind::Array(_) => parent.child(k),
            _ => None,
        };
        match next {
            Some(n) => parent = n,
            None => return out,
        }
    }
    let JsonKind::Object(members) = &parent.kind else {
        return out;
    };
    for (_, facets) in members.iter().filter(|(k, _)| k == "facets") {
        let JsonKind::Array(items) = &facets.kind else {
            continue;
        };
        for facet in items {
            let Some(index) = facet.child("index") else {
                continue;
            };
            for (name, is_end) in [("byteStart", false), ("byteEnd", true)] {
                let Some(n) = index.child(name) else { continue };
                if !matches!(n.kind, JsonKind::Num) {
                    continue;
                }
                let Some(old) = src
                    .get(n.start..n.end)
                    .and_then(|t| t.parse::<usize>().ok())
                else {
                    continue;
                };
                let new = map_offset(old, edits, is_end);
                if new != old {
                    out.push(Splice {
                        start: n.start,
                        end: n.end,
                        bytes: new.to_string().into_bytes(),
                    });
                }
            }
        }
    }
    out
}

/// Whether a change is to the query string (see [`rewrite_query`]) rather than the body.
pub fn is_query_change(change: &FieldChange) -> bool {
    matches!(
        change.loc,
        FieldLoc::Param {
            source: Source::Query,
            ..
        } | FieldLoc::ParamJson {
            source: Source::Query,
            ..
        }
    )
}

/// The new encoded value of a parameter whose value `value` (encoded as `encoded`) holds
/// JSON with string literals to replace.
fn rewrite_json_value(
    value: &str,
    encoded: &[u8],
    changes: &[&FieldChange],
    form_encoded: bool,
) -> Result<Vec<u8>, RewriteError> {
    let root = parse_json(value).map_err(|_| RewriteError::NoSuchField)?;
    let mut inner = Vec::new();
    for c in changes {
        let (start, end, path) = match &c.loc {
            FieldLoc::ParamJson {
                start, end, path, ..
            } => (*start, *end, path),
            FieldLoc::JsonInString {
                inner_start,
                inner_end,
                path,
                ..
            } => (*inner_start, *inner_end, path),
            _ => return Err(RewriteError::NoSuchField),
        };
        inner.push(Splice {
            start,
            end,
            bytes: json_string_literal(&c.new_text).into_bytes(),
        });
        inner.extend(facet_splices(&root, value, path, start, &c.edits));
    }
    let new_value = apply_splices(value.as_bytes(), inner)?;
    Ok(if form_encoded {
        let text = String::from_utf8_lossy(&new_value);
        form_encode_like(&text, encoded).into_bytes()
    } else {
        new_value
    })
}

/// Splices for the changes to parameters (form pairs, multipart parts, query pairs) of
/// one list: whole values replaced, or JSON inside a value rewritten.
fn param_splices(
    changes: &[&FieldChange],
    src: &[u8],
    value_of: impl Fn(usize) -> Option<(usize, usize, String)>,
    form_encoded: bool,
) -> Result<Vec<Splice>, RewriteError> {
    let mut splices = Vec::new();
    let mut nested: Vec<(usize, Vec<&FieldChange>)> = Vec::new();
    for c in changes {
        match &c.loc {
            FieldLoc::Param { index, .. } => {
                let (start, end, _) = value_of(*index).ok_or(RewriteError::NoSuchField)?;
                let bytes = if form_encoded {
                    form_encode_like(&c.new_text, &src[start..end]).into_bytes()
                } else {
                    c.new_text.clone().into_bytes()
                };
                splices.push(Splice { start, end, bytes });
            }
            FieldLoc::ParamJson { index, .. } => {
                match nested.iter_mut().find(|(i, _)| i == index) {
                    Some((_, list)) => list.push(c),
                    None => nested.push((*index, vec![c])),
                }
            }
            _ => return Err(RewriteError::NoSuchField),
        }
    }
    for (index, list) in nested {
        let (start, end, value) = value_of(index).ok_or(RewriteError::NoSuchField)?;
        let bytes = rewrite_json_value(&value, &src[start..end], &list, form_encoded)?;
        splices.push(Splice { start, end, bytes });
    }
    Ok(splices)
}

/// Rewrites a decoded body with the given field changes (all in its primary structure)
/// and re-applies its encoding.
pub fn rewrite_body(body: &DecodedBody, changes: &[FieldChange]) -> Result<Vec<u8>, RewriteError> {
    let raw = &body.raw;
    let mut splices = Vec::new();
    let mut params: Vec<&FieldChange> = Vec::new();
    let mut in_strings: Vec<((usize, usize), Vec<&FieldChange>)> = Vec::new();
    for c in changes {
        match &c.loc {
            FieldLoc::JsonInString {
                view: 0,
                start,
                end,
                ..
            } => match in_strings.iter_mut().find(|(k, _)| *k == (*start, *end)) {
                Some((_, list)) => list.push(c),
                None => in_strings.push(((*start, *end), vec![c])),
            },
            FieldLoc::Json {
                view: 0,
                start,
                end,
                path,
            } => {
                splices.push(Splice {
                    start: *start,
                    end: *end,
                    bytes: json_string_literal(&c.new_text).into_bytes(),
                });
                if let (Some(root), Some(src)) = (body.json(), body.text()) {
                    splices.extend(facet_splices(root, src, path, *start, &c.edits));
                }
            }
            FieldLoc::Param {
                source: Source::Body(0),
                ..
            }
            | FieldLoc::ParamJson {
                source: Source::Body(0),
                ..
            } => params.push(c),
            FieldLoc::Body => splices.push(Splice {
                start: 0,
                end: raw.len(),
                bytes: c.new_text.clone().into_bytes(),
            }),
            _ => return Err(RewriteError::NoSuchField),
        }
    }
    for ((start, end), list) in in_strings {
        let literal = body
            .text()
            .and_then(|t| t.get(start..end))
            .ok_or(RewriteError::NoSuchField)?;
        let value = parse_json(literal).map_err(|_| RewriteError::NoSuchField)?;
        let value = value.as_str().ok_or(RewriteError::NoSuchField)?;
        let inner = rewrite_json_value(value, value.as_bytes(), &list, false)?;
        let inner = String::from_utf8(inner).map_err(|_| RewriteError::NoSuchField)?;
        splices.push(Splice {
            start,
            end,
            bytes: json_string_literal(&inner).into_bytes(),
        });
    }
    if !params.is_empty() {
        match &body.kind {
            BodyKind::Form(pairs) => splices.extend(param_splices(
                &params,
                raw,
                |i| {
                    pairs
                        .get(i)
                        .map(|p| (p.value_start, p.value_end, p.value.clone()))
                },
                true,
            )?),
            BodyKind::Multipart(parts) => splices.extend(param_splices(
                &params,
                raw,
                |i| {
                    let p = parts.get(i).filter(|p| !p.transfer_encoded)?;
                    Some((p.start, p.end, p.text.clone()?))
                },
                false,
            )?),
            _ => return Err(RewriteError::NoSuchField),
        }
    }
    let new_raw = apply_splices(raw, splices)?;
    body.reencode(&new_raw).map_err(RewriteError::Reencode)
}

/// Rewrites a query string (`query`, without `?`, whose pairs are `pairs`) with changes to
/// its parameters: only the changed values are re-encoded, in the style they came in.
pub fn rewrite_query(
    query: &str,
    pairs: &[FormPair],
    changes: &[FieldChange],
) -> Result<String, RewriteError> {
    let changes: Vec<&FieldChange> = changes.iter().filter(|c| is_query_change(c)).collect();
    let splices = param_splices(
        &changes,
        query.as_bytes(),
        |i| {
            pairs
                .get(i)
                .map(|p| (p.value_start, p.value_end, p.value.clone()))
        },
        true,
    )?;
    let out = apply_splices(query.as_bytes(), splices)?;
    // Only ASCII was written: form encoding escapes everything else.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decode::{decode_body, extract_fields, parse_pointer, ContentField, Inputs};

    fn span<'a>(
        start: usize,
        end: usize,
        cat: &'a str,
        r: &'a Redaction,
        order: usize,
    ) -> Span<'a> {
        Span {
            start,
            end,
            category: cat,
            detector: cat,
            detector_order: order,
            redaction: r,
        }
    }

    #[test]
    fn mask_keeps_separators_and_last_digits() {
        let r = Redaction::Mask {
            keep_last: 4,
            ch: '*',
        };
        let (t, e) = redact_text(
            "card 4111 1111 1111 1111.",
            &[span(5, 24, "pii.credit_card", &r, 0)],
            b"k",
        );
        assert_eq!(t, "card **** **** **** 1111.");
        assert_eq!(
            e,
            vec![Edit {
                old_start: 5,
                old_end: 24,
                new_len: 19
            }]
        );
    }

    #[test]
    fn overlaps_merge_with_the_longest_findings_operator() {
        let url = Redaction::Replace("[REDACTED:{category}]".into());
        let host = Redaction::Mask {
            keep_last: 0,
            ch: '#',
        };
        let text = "see http://wiki.corp.example/x now";
        let spans = [
            span(4, 30, "corp.internal_url", &url, 1),
            span(11, 28, "corp.internal_host", &host, 0),
        ];
        let (t, _) = redact_text(text, &spans, b"k");
        assert_eq!(t, "see [REDACTED:corp.internal_url] now");
    }

    #[test]
    fn hash_is_keyed_and_stable() {
        let r = Redaction::Hash {
            length: 16,
            template: "[{category}:{hash}]".into(),
        };
        let (a, _) = redact_text("x 123", &[span(2, 5, "c", &r, 0)], b"k1");
        let (b, _) = redact_text("x 123", &[span(2, 5, "c", &r, 0)], b"k1");
        let (c, _) = redact_text("x 123", &[span(2, 5, "c", &r, 0)], b"k2");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("x [c:") && a.len() == "x [c:]".len() + 16);
    }

    #[test]
    fn json_rewrite_keeps_everything_else_byte_identical() {
        let src = br#"{ "a" : 1, "text":"pay 4111 1111 1111 1111 \u00e9", "z":[true ,null] }"#;
        let body = decode_body(Some("application/json"), None, src, 1 << 20).unwrap();
        let fields = extract_fields(
            &Inputs::body(&body),
            &[ContentField::Param(parse_pointer("/text").unwrap())],
        );
        let r = Redaction::Mask {
            keep_last: 4,
            ch: '*',
        };
        let (new_text, edits) = redact_text(&fields[0].text, &[span(4, 23, "c", &r, 0)], b"k");
        let out = rewrite_body(
            &body,
            &[FieldChange {
                loc: fields[0].loc.clone(),
                new_text,
                edits,
            }],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{ "a" : 1, "text":"pay **** **** **** 1111 é", "z":[true ,null] }"#
        );
    }

    #[test]
    fn bluesky_facets_follow_the_text() {
        let text = "card 4111111111111111 see https://x.example";
        let src = format!(
            r#"{{"collection":"app.bsky.feed.post","record":{{"text":"{text}","facets":[{{"index":{{"byteStart":26,"byteEnd":43}},"features":[]}}]}}}}"#
        );
        let body = decode_body(Some("application/json"), None, src.as_bytes(), 1 << 20).unwrap();
        let fields = extract_fields(
            &Inputs::body(&body),
            &[ContentField::Param(parse_pointer("/record/text").unwrap())],
        );
        let r = Redaction::Replace("[REDACTED]".into());
        let (new_text, edits) = redact_text(&fields[0].text, &[span(5, 21, "c", &r, 0)], b"k");
        let out = rewrite_body(
            &body,
            &[FieldChange {
                loc: fields[0].loc.clone(),
                new_text: new_text.clone(),
                edits,
            }],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let start = v["record"]["facets"][0]["index"]["byteStart"]
            .as_u64()
            .unwrap() as usize;
        let end = v["record"]["facets"][0]["index"]["byteEnd"]
            .as_u64()
            .unwrap() as usize;
        assert_eq!(&new_text[start..end], "https://x.example");
    }

    #[test]
    fn form_and_nested_json_rewrite_only_changed_fields() {
        let src = b"a=%7E1&status=my+ssn+123-45-6780&variables=%7B%22t%22%3A%22ssn+123-45-6780%22%7D&z=%2a";
        let body = decode_body(
            Some("application/x-www-form-urlencoded"),
            None,
            src,
            1 << 20,
        )
        .unwrap();
        let fields = extract_fields(
            &Inputs::body(&body),
            &[
                ContentField::Param(parse_pointer("/status").unwrap()),
                ContentField::Param(parse_pointer("/variables/t").unwrap()),
            ],
        );
        let r = Redaction::Replace("X".into());
        let changes: Vec<FieldChange> = fields
            .iter()
            .map(|f| {
                let s = f.text.find("123").unwrap();
                let (new_text, edits) = redact_text(&f.text, &[span(s, s + 11, "c", &r, 0)], b"k");
                FieldChange {
                    loc: f.loc.clone(),
                    new_text,
                    edits,
                }
            })
            .collect();
        let out = rewrite_body(&body, &changes).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a=%7E1&status=my+ssn+X&variables=%7B%22t%22%3A%22ssn+X%22%7D&z=%2a"
        );
    }

    #[test]
    fn gzip_bodies_stay_gzip() {
        use std::io::Write;
        let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        w.write_all(b"hello 123").unwrap();
        let gz = w.finish().unwrap();
        let body = decode_body(Some("text/plain"), Some("gzip"), &gz, 1 << 20).unwrap();
        let out = rewrite_body(
            &body,
            &[FieldChange {
                loc: FieldLoc::Body,
                new_text: "hello XXX".into(),
                edits: vec![],
            }],
        )
        .unwrap();
        let back = decode_body(Some("text/plain"), Some("gzip"), &out, 1 << 20).unwrap();
        assert_eq!(back.raw, b"hello XXX");
    }
}
