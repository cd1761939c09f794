//! Selecting the fields of a request that carry the user's words.
//!
//! A selector names a *parameter*: `json: /status`, `form: status`, `multipart: status` and
//! `query: status` all compile to the same path, because frameworks give an application
//! one set of parameters whatever encoding carried them (Rails merges the query string, a
//! form, multipart parts and a JSON body into `params`; PHP's `$_REQUEST` merges the query
//! and the form). So a selector is looked for everywhere the request carries parameters:
//! - in every structure of the body ([`DecodedBody::views`]): JSON members (every copy of a
//!   repeated key, every element under `*`), form pairs, multipart parts (by every name
//!   their headers give);
//! - in the query string;
//! - inside a parameter's value when the selector goes deeper than its name and the value
//!   is JSON (`variables` of a form holding `{"input":{"message":{"text":…}}}`);
//! - under every reading of a parameter's name ([`super::keys`]): brackets, dots, case.
//!
//! Every copy found is a field of its own, so each is inspected and, when rewritable,
//! redacted: whichever copy a site keeps, it holds nothing the rules act on.

use super::json::{self, scalar_leaves, JsonKind, JsonNode, PtrSeg};
use super::keys::{name_readings, segments_match, NameMatch};
use super::{BodyKind, DecodedBody, FormPair};

/// Where an activity's user text is (compiled from `content:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentField {
    /// A parameter path, whatever encoding carries it.
    Param(Vec<PtrSeg>),
    /// The whole decoded body as text.
    Body,
}

/// Where a parameter came from: the query string, or a structure of the body (0 is the
/// primary one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Query,
    Body(usize),
}

/// Where a field is, so that redaction can write it back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldLoc {
    /// A JSON string literal `start..end` of body structure `view`; `path` is its
    /// concrete pointer.
    Json {
        view: usize,
        start: usize,
        end: usize,
        path: Vec<String>,
    },
    /// The whole value of parameter `index` of `source`: a form or query pair, or a
    /// multipart part.
    Param { source: Source, index: usize },
    /// A JSON value `inner_start..inner_end` (a string literal, or a number) inside the
    /// JSON that the string literal `start..end` of body structure `view` holds
    /// (`{"variables": "{\"text\": …}"}`, as GraphQL servers accept).
    JsonInString {
        view: usize,
        start: usize,
        end: usize,
        inner_start: usize,
        inner_end: usize,
        path: Vec<String>,
    },
    /// A JSON string literal `start..end` inside the decoded value of a parameter.
    ParamJson {
        source: Source,
        index: usize,
        start: usize,
        end: usize,
        path: Vec<String>,
    },
    /// The whole body.
    Body,
    /// Text that is not a value: a name (of a JSON member, a parameter, a file) or the
    /// raw bytes of a body that has no structure to read. Inspected, never rewritten.
    Other(String),
}

/// A piece of text found in a request.
#[derive(Clone, Debug)]
pub struct Field {
    /// `/variables/tweet_text`, `status`, `?status`, `variables/input/message/text`, `body`…
    pub name: String,
    pub text: String,
    pub loc: FieldLoc,
    /// Whether redaction can rewrite it (it is in the primary structure, as sent).
    pub rewritable: bool,
    /// Found through a selector that takes a whole JSON document (`form: variables`), not
    /// one named value: it says nothing about what the request is.
    pub whole_document: bool,
}

/// What a request carries that fields are looked for in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inputs<'a> {
    pub body: Option<&'a DecodedBody>,
    /// The query string's pairs, when the query is inspected.
    pub query: &'a [FormPair],
}

impl<'a> Inputs<'a> {
    pub fn body(body: &'a DecodedBody) -> Inputs<'a> {
        Inputs {
            body: Some(body),
            query: &[],
        }
    }
}

/// The fields named by `content`, in order; a field found by two selectors is listed once.
pub fn extract_fields(inputs: &Inputs<'_>, content: &[ContentField]) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    let mut seen: std::collections::HashSet<FieldLoc> = Default::default();
    for spec in content {
        let mut found = Vec::new();
        match spec {
            ContentField::Param(segs) => select_param(inputs, segs, &mut found),
            ContentField::Body => {
                if let Some(b) = inputs.body.filter(|b| {
                    matches!(
                        b.kind,
                        BodyKind::Text | BodyKind::Json(_) | BodyKind::Form(_)
                    )
                }) {
                    if let Some(t) = b.text() {
                        found.push(Field {
                            name: "body".into(),
                            text: t.to_string(),
                            loc: FieldLoc::Body,
                            rewritable: true,
                            whole_document: true,
                        });
                    }
                }
            }
        }
        for f in found {
            if content.len() == 1 || seen.insert(f.loc.clone()) {
                fields.push(f);
            }
        }
    }
    fields
}

fn select_param(inputs: &Inputs<'_>, segs: &[PtrSeg], out: &mut Vec<Field>) {
    if let Some(body) = inputs.body {
        for (view, kind) in body.views() {
            let source = Source::Body(view);
            let primary = view == 0;
            match kind {
                BodyKind::Json(root) => {
                    for (name, path, node) in json::select(root, segs) {
                        json_leaves(node, &name, path, body.text(), out, |start, end, path| {
                            (
                                FieldLoc::Json {
                                    view,
                                    start,
                                    end,
                                    path,
                                },
                                primary,
                            )
                        });
                    }
                    json_in_strings(root, segs, view, primary, out);
                }
                BodyKind::Form(pairs) => {
                    for (i, p) in pairs.iter().enumerate() {
                        param_fields(source, i, &p.key, &p.key, &p.value, segs, primary, out);
                    }
                }
                BodyKind::Multipart(parts) => {
                    for (i, p) in parts.iter().enumerate() {
                        let Some(text) = p.text.as_ref().filter(|_| !p.is_file()) else {
                            continue;
                        };
                        let rewritable = primary && !p.transfer_encoded;
                        for name in &p.names {
                            if param_fields(source, i, name, name, text, segs, rewritable, out) {
                                break;
                            }
                        }
                    }
                }
                BodyKind::Empty | BodyKind::Text | BodyKind::Binary => {}
            }
        }
    }
    for (i, p) in inputs.query.iter().enumerate() {
        let shown = format!("?{}", p.key);
        param_fields(Source::Query, i, &p.key, &shown, &p.value, segs, true, out);
    }
}

/// Fields a selector finds by going through a JSON string that holds JSON: for every
/// proper prefix of the selector that reaches a string whose value parses as an object or
/// an array, the rest of the selector inside it.
fn json_in_strings(
    root: &JsonNode,
    segs: &[PtrSeg],
    view: usize,
    primary: bool,
    out: &mut Vec<Field>,
) {
    for n in 1..segs.len() {
        for (name, _, node) in json::select(root, &segs[..n]) {
            let Some(text) = node.as_str() else { continue };
            let Some(inner) = json::parse_json(text).ok().filter(JsonNode::is_container) else {
                continue;
            };
            let (start, end) = (node.start, node.end);
            for (inner_name, inner_path, found) in json::select(&inner, &segs[n..]) {
                json_leaves(
                    found,
                    &format!("{name}{inner_name}"),
                    inner_path,
                    Some(text),
                    out,
                    |inner_start, inner_end, path| {
                        (
                            FieldLoc::JsonInString {
                                view,
                                start,
                                end,
                                inner_start,
                                inner_end,
                                path,
                            },
                            primary,
                        )
                    },
                );
            }
        }
    }
}

/// The string leaves under a selected JSON node, located by `loc`. With the JSON's source
/// text, number leaves are fields too: a framework that casts `{"note": 4539148803436467}`
/// into a text column shows the digits (a redaction writes the value back as a string).
fn json_leaves(
    node: &JsonNode,
    name: &str,
    path: Vec<String>,
    numbers_in: Option<&str>,
    out: &mut Vec<Field>,
    loc: impl Fn(usize, usize, Vec<String>) -> (FieldLoc, bool),
) {
    let whole_document = node.is_container();
    let mut leaves = Vec::new();
    scalar_leaves(node, name, path, numbers_in.is_some(), &mut leaves);
    for (name, path, leaf) in leaves {
        let text = match (&leaf.kind, numbers_in) {
            (JsonKind::Num, Some(src)) => src.get(leaf.start..leaf.end).unwrap_or(""),
            _ => leaf.as_str().unwrap_or(""),
        };
        let (loc, rewritable) = loc(leaf.start, leaf.end, path);
        out.push(Field {
            name,
            text: text.to_string(),
            loc,
            rewritable,
            whole_document,
        });
    }
}

/// Where a JSON value inside parameter `index` of `source` is.
fn param_json_loc(
    source: Source,
    index: usize,
    rewritable: bool,
) -> impl Fn(usize, usize, Vec<String>) -> (FieldLoc, bool) {
    move |start, end, path| {
        (
            FieldLoc::ParamJson {
                source,
                index,
                start,
                end,
                path,
            },
            rewritable,
        )
    }
}

/// The fields a selector finds in one parameter (under any reading of its name). Returns
/// whether it found any.
#[allow(clippy::too_many_arguments)]
fn param_fields(
    source: Source,
    index: usize,
    key: &str,
    shown: &str,
    value: &str,
    segs: &[PtrSeg],
    rewritable: bool,
    out: &mut Vec<Field>,
) -> bool {
    for reading in name_readings(key) {
        match segments_match(segs, &reading) {
            None => {}
            Some(NameMatch::Whole) => {
                param_all(source, index, key, value, rewritable, out);
                return true;
            }
            Some(NameMatch::Prefix(n)) => {
                let Ok(root) = json::parse_json(value) else {
                    continue;
                };
                let before = out.len();
                for (name, path, node) in json::select(&root, &segs[n..]) {
                    json_leaves(
                        node,
                        &format!("{shown}{name}"),
                        path,
                        Some(value),
                        out,
                        param_json_loc(source, index, rewritable),
                    );
                }
                if out.len() > before {
                    return true;
                }
            }
        }
    }
    false
}

/// Every text of a request: string values of every structure of the body (JSON leaves,
/// form pairs, multipart parts, JSON held in a parameter), the whole text of a text body,
/// the query's pairs, and, in one more field, every name (of JSON members, parameters,
/// parts, files). What the safety net scans, and what `permeable scan` shows.
/// The field [`all_fields`] gathers every parameter and member name into, one per line.
pub const NAMES_FIELD: &str = "(names)";
/// The field holding the request's percent-decoded path, which the safety net scans.
pub const PATH_FIELD: &str = "(path)";

pub fn all_fields(inputs: &Inputs<'_>) -> Vec<Field> {
    let mut out = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    if let Some(body) = inputs.body {
        for (view, kind) in body.views() {
            let primary = view == 0;
            let source = Source::Body(view);
            match kind {
                BodyKind::Json(root) => {
                    json_leaves(root, "", Vec::new(), None, &mut out, |start, end, path| {
                        (
                            FieldLoc::Json {
                                view,
                                start,
                                end,
                                path,
                            },
                            primary,
                        )
                    });
                    json::member_names(root, &mut names);
                }
                BodyKind::Form(pairs) => {
                    for (i, p) in pairs.iter().enumerate() {
                        names.push(&p.key);
                        param_all(source, i, &p.key, &p.value, primary, &mut out);
                    }
                }
                BodyKind::Multipart(parts) => {
                    for (i, p) in parts.iter().enumerate() {
                        if let Some(text) = p.text.as_ref().filter(|_| !p.is_media()) {
                            let rewritable = primary && !p.transfer_encoded;
                            param_all(source, i, p.name(), text, rewritable, &mut out);
                        }
                        names.extend(p.names.iter().chain(&p.filename).map(String::as_str));
                    }
                }
                BodyKind::Text if primary => {
                    if let Some(t) = body.text() {
                        out.push(Field {
                            name: "body".into(),
                            text: t.to_string(),
                            loc: FieldLoc::Body,
                            rewritable: true,
                            whole_document: true,
                        });
                    }
                }
                BodyKind::Empty | BodyKind::Text | BodyKind::Binary => {}
            }
        }
    }
    for (i, p) in inputs.query.iter().enumerate() {
        names.push(&p.key);
        param_all(Source::Query, i, &p.key, &p.value, true, &mut out);
    }
    // Names inside JSON held in parameters.
    let nested: Vec<String> = out
        .iter()
        .filter(|f| matches!(f.loc, FieldLoc::ParamJson { .. }))
        .flat_map(|f| f.name.rsplit('/').next().map(str::to_string))
        .collect();
    names.extend(nested.iter().map(String::as_str));
    // In the order met: the same request shape gives the same text, whose scan is
    // remembered. Many names (arrays of objects) are kept once each.
    if names.len() > 64 {
        let mut seen: foldhash::HashSet<&str> =
            foldhash::HashSet::with_capacity_and_hasher(names.len(), Default::default());
        names.retain(|n| seen.insert(n));
    }
    if !names.is_empty() {
        out.push(Field {
            name: NAMES_FIELD.into(),
            text: names.join("\n"),
            loc: FieldLoc::Other(NAMES_FIELD.into()),
            rewritable: false,
            whole_document: true,
        });
    }
    out
}

/// A parameter's value; a value holding JSON is read as JSON (its string leaves are the
/// fields, so that a redaction rewrites them inside it).
fn param_all(
    source: Source,
    index: usize,
    key: &str,
    value: &str,
    rewritable: bool,
    out: &mut Vec<Field>,
) {
    let shown = match source {
        Source::Query => format!("?{key}"),
        Source::Body(_) => key.to_string(),
    };
    match json::parse_json(value).ok().filter(JsonNode::is_container) {
        Some(root) => {
            json_leaves(
                &root,
                &shown,
                Vec::new(),
                None,
                out,
                param_json_loc(source, index, rewritable),
            );
        }
        None => out.push(Field {
            name: shown,
            text: value.to_string(),
            loc: FieldLoc::Param { source, index },
            rewritable,
            whole_document: false,
        }),
    }
}

/// Raw bytes as text, offsets those of the bytes: what is UTF-8 is read as such (a site
/// decoding the bytes leniently reads the letters around a word: `@ҌoBLUEHERON` is a
/// mention), controls included; each byte that is not UTF-8 and the ranges in `holes` is a
/// space. The detectors read the text twice: on its matching view, where the controls a
/// page does not show are gone (`BLUEHERO\0N`), and with every non-ASCII character and
/// such control as a space, so strings inside protobuf and other binary formats, plain
/// ASCII between tag and length bytes, are found either way.
pub fn raw_text(name: &str, raw: &[u8], holes: &[(usize, usize)]) -> Field {
    let bytes = blanked(raw, holes);
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(std::iter::repeat_n(' ', chunk.invalid().len()));
    }
    Field {
        name: name.into(),
        text,
        loc: FieldLoc::Other(name.into()),
        rewritable: false,
        whole_document: true,
    }
}

impl Field {
    /// Another reading of some part of the request (a value in another charset, the path):
    /// a field of its own, named `name`, that cannot be rewritten.
    pub fn reading(name: String, text: String, whole_document: bool) -> Field {
        Field {
            loc: FieldLoc::Other(name.clone()),
            name,
            text,
            rewritable: false,
            whole_document,
        }
    }
}

/// A copy of `raw` with the byte spans `holes` (the site's noise, pictures) as spaces.
pub fn blanked(raw: &[u8], holes: &[(usize, usize)]) -> Vec<u8> {
    let mut bytes = raw.to_vec();
    for &(start, end) in holes {
        if let Some(hole) = bytes.get_mut(start..end.min(raw.len())) {
            hole.fill(b' ');
        }
    }
    bytes
}

/// The bytes a field's value occupies in the body or the query string: a JSON string
/// literal, a parameter's encoded value, or the whole value a JSON string inside a
/// parameter sits in.
pub fn raw_span(inputs: &Inputs<'_>, loc: &FieldLoc) -> Option<(Source, usize, usize)> {
    let param = |source: Source, index: usize| -> Option<(Source, usize, usize)> {
        match source {
            Source::Query => {
                let p = inputs.query.get(index)?;
                Some((source, p.value_start, p.value_end))
            }
            Source::Body(view) => match inputs.body?.views().nth(view)?.1 {
                BodyKind::Form(pairs) => {
                    let p = pairs.get(index)?;
                    Some((source, p.value_start, p.value_end))
                }
                BodyKind::Multipart(parts) => {
                    let p = parts.get(index)?;
                    Some((source, p.start, p.end))
                }
                _ => None,
            },
        }
    };
    match loc {
        FieldLoc::Json {
            view, start, end, ..
        }
        | FieldLoc::JsonInString {
            view, start, end, ..
        } => Some((Source::Body(*view), *start, *end)),
        FieldLoc::Param { source, index } | FieldLoc::ParamJson { source, index, .. } => {
            param(*source, *index)
        }
        FieldLoc::Body | FieldLoc::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::decode::{decode_body, parse_form, parse_pointer};

    #[test]
    fn raw_text_keeps_offsets_and_what_is_utf8() {
        let raw = b"a\xffb\x01@\xd2\x8coBLUEHERON\n\xe2\x80";
        let f = raw_text("body (raw)", raw, &[(1, 2)]);
        assert_eq!(f.text, "a b\u{1}@\u{48c}oBLUEHERON\n  ");
        assert_eq!(f.text.len(), raw.len());
        let holed = raw_text("body (raw)", raw, &[(5, 7)]);
        assert_eq!(holed.text, "a b\u{1}@  oBLUEHERON\n  ");
    }

    fn texts(fields: &[Field]) -> Vec<&str> {
        fields.iter().map(|f| f.text.as_str()).collect()
    }

    fn param(p: &str) -> ContentField {
        ContentField::Param(parse_pointer(p).unwrap())
    }

    #[test]
    fn every_copy_of_a_repeated_name_is_a_field() {
        let d = decode_body(
            Some("application/x-www-form-urlencoded"),
            None,
            b"status=one&x=1&status=two",
            1 << 20,
        )
        .unwrap();
        let f = extract_fields(&Inputs::body(&d), &[param("/status")]);
        assert_eq!(texts(&f), ["one", "two"]);
        let d = decode_body(
            Some("application/json"),
            None,
            br#"{"status":"one","Status":"two"}"#,
            1 << 20,
        )
        .unwrap();
        let f = extract_fields(&Inputs::body(&d), &[param("/status")]);
        assert_eq!(texts(&f), ["one", "two"]);
    }

    #[test]
    fn the_query_carries_parameters_too() {
        let q = parse_form(b"status=from+the+query&x=1");
        let d = decode_body(None, None, b"", 1 << 20).unwrap();
        let inputs = Inputs {
            body: Some(&d),
            query: &q,
        };
        let f = extract_fields(&inputs, &[param("/status")]);
        assert_eq!(texts(&f), ["from the query"]);
        assert_eq!(f[0].name, "?status");
        assert_eq!(
            f[0].loc,
            FieldLoc::Param {
                source: Source::Query,
                index: 0
            }
        );
    }

    #[test]
    fn json_in_a_parameter_and_bracket_names() {
        let body = b"fb_api_req_friendly_name=X&variables=%7B%22input%22%3A%7B%22message%22%3A%7B%22text%22%3A%22hi%22%7D%7D%7D&poll%5Boptions%5D%5B%5D=a&poll[options][]=b";
        let d = decode_body(Some("application/x-www-form-urlencoded"), None, body, 4096).unwrap();
        let f = extract_fields(
            &Inputs::body(&d),
            &[
                param("/variables/input/message/text"),
                param("/poll/options/*"),
            ],
        );
        assert_eq!(texts(&f), ["hi", "a", "b"]);
        assert_eq!(f[0].name, "variables/input/message/text");
    }

    #[test]
    fn multipart_parts_by_any_name_and_json_members_of_form_selectors() {
        let body = b"--b\r\nContent-Disposition: form-data; x; name=\"status\"\r\nContent-Type: application/octet-stream\r\n\r\nsecret\r\n--b--\r\n";
        let d = decode_body(Some("multipart/form-data; boundary=b"), None, body, 4096).unwrap();
        assert_eq!(
            texts(&extract_fields(&Inputs::body(&d), &[param("/status")])),
            ["secret"]
        );
        let d = decode_body(None, None, br#"{"status":"json"}"#, 4096).unwrap();
        assert_eq!(
            texts(&extract_fields(&Inputs::body(&d), &[param("/status")])),
            ["json"]
        );
    }

    #[test]
    fn all_fields_reads_names_values_and_nested_json() {
        let d = decode_body(
            None,
            None,
            br#"{"a":{"an_unusual_name":"v","list":["x",1]}}"#,
            4096,
        )
        .unwrap();
        let f = all_fields(&Inputs::body(&d));
        let t = texts(&f);
        assert!(t.contains(&"v") && t.contains(&"x"), "{t:?}");
        assert!(
            t.iter().any(|t| t.lines().any(|l| l == "an_unusual_name")),
            "{t:?}"
        );
    }
}
