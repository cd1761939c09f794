//! A JSON parser that keeps the byte span of every value, so that redaction can rewrite one
//! string literal and leave every other byte of the body as it came.
//!
//! Objects keep *every* member in document order, duplicates included: parsers disagree on
//! which copy of a repeated key wins (`JSON.parse` and Jackson keep the last, others the
//! first), so selection ([`select`]) visits them all.
//!
//! Guarantees on hostile input: no panic on any input; nesting is capped at
//! [`MAX_JSON_DEPTH`]; work is linear in the input.

use std::borrow::Cow;
use std::fmt;

use super::keys::key_matches;

/// Deepest JSON nesting accepted.
pub const MAX_JSON_DEPTH: usize = 128;

/// A decoded JSON value with the byte span of its source text (strings include quotes).
#[derive(Clone, Debug)]
pub struct JsonNode {
    pub start: usize,
    pub end: usize,
    pub kind: JsonKind,
}

#[derive(Clone, Debug)]
pub enum JsonKind {
    /// Members in document order; a repeated key appears as often as it was written.
    Object(Vec<(String, JsonNode)>),
    Array(Vec<JsonNode>),
    Str(String),
    Num,
    Bool(bool),
    Null,
}

/// Why a text is not JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// Anything else: bad syntax, bad escape, trailing text.
    Syntax(&'static str),
}

/// A JSON syntax error and the byte offset where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    pub offset: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            JsonErrorKind::TooDeep => write!(
                f,
                "JSON nested too deeply (over {MAX_JSON_DEPTH} levels) at byte {}",
                self.offset
            ),
            JsonErrorKind::Syntax(what) => write!(f, "{what} at byte {}", self.offset),
        }
    }
}

impl std::error::Error for JsonError {}

impl JsonNode {
    /// The first member `key` of an object (exact name), or element `key` of an array.
    pub fn child(&self, key: &str) -> Option<&JsonNode> {
        match &self.kind {
            JsonKind::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            JsonKind::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            JsonKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar's text as a condition compares it: strings unquoted, others as written.
    pub fn scalar_text<'a>(&'a self, src: &'a str) -> Option<&'a str> {
        match &self.kind {
            JsonKind::Str(s) => Some(s),
            JsonKind::Num | JsonKind::Bool(_) | JsonKind::Null => src.get(self.start..self.end),
            _ => None,
        }
    }

    /// Whether the value is an object or an array (a document with structure).
    /// Every span of this node and the nodes under it passed through `map` (offsets in
    /// a transcoding to offsets in the bytes it was made from).
    pub fn map_spans(&mut self, map: &impl Fn(usize) -> usize) {
        self.start = map(self.start);
        self.end = map(self.end);
        match &mut self.kind {
            JsonKind::Object(members) => members.iter_mut().for_each(|(_, v)| v.map_spans(map)),
            JsonKind::Array(items) => items.iter_mut().for_each(|v| v.map_spans(map)),
            _ => {}
        }
    }

    pub fn is_container(&self) -> bool {
        matches!(self.kind, JsonKind::Object(_) | JsonKind::Array(_))
    }
}

/// One segment of a selector path: a name (JSON member, form or multipart parameter, with
/// the spellings a framework takes for it, see [`key_matches`]), or `*` for every element
/// or member.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PtrSeg {
    Key(String),
    Any,
}

/// Why a JSON pointer is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointerError(pub String);

impl fmt::Display for PointerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON pointer must start with '/': {:?}", self.0)
    }
}

impl std::error::Error for PointerError {}

/// Parses `/a/b/*/c` (RFC 6901 escapes `~0`, `~1`). The empty string is the root.
pub fn parse_pointer(p: &str) -> Result<Vec<PtrSeg>, PointerError> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| PointerError(p.to_string()))?;
    Ok(rest
        .split('/')
        .map(|s| {
            if s == "*" {
                PtrSeg::Any
            } else {
                PtrSeg::Key(s.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect())
}

pub(crate) fn escape_pointer_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// A node found by [`select`]: its concrete pointer (for names and traces), the member
/// names and indices on the way, and the node.
pub type Selected<'a> = (String, Vec<String>, &'a JsonNode);

/// Every node a selector reaches: `*` visits every element and member, a name every member
/// written with that name in any spelling [`key_matches`] accepts (repeated keys included).
pub fn select<'a>(root: &'a JsonNode, segs: &[PtrSeg]) -> Vec<Selected<'a>> {
    let mut out = Vec::new();
    let (mut name, mut path) = (String::with_capacity(64), Vec::with_capacity(8));
    select_into(root, segs, &mut name, &mut path, &mut out);
    out
}

/// The path stack as the owned path of a node reached.
fn owned(path: &[Cow<'_, str>]) -> Vec<String> {
    path.iter().map(|k| k.to_string()).collect()
}

/// Steps the pointer and path stacks into member or element `key`; returns the pointer's
/// length before, for [`step_out`].
fn step_in<'a>(name: &mut String, path: &mut Vec<Cow<'a, str>>, key: Cow<'a, str>) -> usize {
    let len = name.len();
    name.push('/');
    if key.contains(['~', '/']) {
        name.push_str(&escape_pointer_key(&key));
    } else {
        name.push_str(&key);
    }
    path.push(key);
    len
}

fn step_out(name: &mut String, path: &mut Vec<Cow<'_, str>>, len: usize) {
    path.pop();
    name.truncate(len);
}

/// [`select`] with the pointer and path as stacks: only a node reached copies them.
fn select_into<'a>(
    node: &'a JsonNode,
    segs: &[PtrSeg],
    name: &mut String,
    path: &mut Vec<Cow<'a, str>>,
    out: &mut Vec<Selected<'a>>,
) {
    let Some((first, rest)) = segs.split_first() else {
        out.push((name.clone(), owned(path), node));
        return;
    };
    let mut visit = |key: Cow<'a, str>,
                     child: &'a JsonNode,
                     name: &mut String,
                     path: &mut Vec<Cow<'a, str>>| {
        let len = step_in(name, path, key);
        select_into(child, rest, name, path, out);
        step_out(name, path, len);
    };
    match (&node.kind, first) {
        (JsonKind::Object(members), _) => {
            for (k, v) in members {
                if matches!(first, PtrSeg::Any)
                    || matches!(first, PtrSeg::Key(want) if key_matches(want, k))
                {
                    visit(Cow::Borrowed(k), v, name, path);
                }
            }
        }
        (JsonKind::Array(items), PtrSeg::Any) => {
            for (i, v) in items.iter().enumerate() {
                visit(Cow::Owned(i.to_string()), v, name, path);
            }
        }
        (JsonKind::Array(items), PtrSeg::Key(k)) => {
            if let Some(v) = k.parse::<usize>().ok().and_then(|i| items.get(i)) {
                visit(Cow::Owned(k.clone()), v, name, path);
            }
        }
        _ => {}
    }
}

/// A JSON number as JavaScript shows it (`String(n)`, what a Node.js site stores when it
/// casts the value to text): a literal with a fraction or an exponent whose value is a
/// whole number below 10^21 reads as its digits (`4.539148803436467e15` is
/// `4539148803436467`; Python shows it as those digits and `.0`). `None` when the literal
/// already reads as it is shown, or its value is not whole.
pub fn number_as_shown(literal: &str) -> Option<String> {
    let number = literal
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !number || !literal.contains(['.', 'e', 'E']) {
        return None;
    }
    let x: f64 = literal.parse().ok()?;
    if !x.is_finite() || x.fract() != 0.0 || x.abs() >= 1e21 {
        return None;
    }
    // Exact: a whole f64 below 10^21 fits an i128.
    Some((x as i128).to_string())
}

/// The string leaves under `node` (the node itself when it is a string), and with
/// `numbers` the number leaves too, each with its concrete pointer, path and span.
pub fn scalar_leaves<'a>(
    node: &'a JsonNode,
    name_prefix: &str,
    path: Vec<String>,
    numbers: bool,
    out: &mut Vec<(String, Vec<String>, &'a JsonNode)>,
) {
    let mut name = String::with_capacity(name_prefix.len() + 64);
    name.push_str(name_prefix);
    let mut stack: Vec<Cow<'a, str>> = Vec::with_capacity(path.len() + 8);
    stack.extend(path.into_iter().map(Cow::Owned));
    leaves_into(node, &mut name, &mut stack, numbers, out);
}

/// [`scalar_leaves`] with the pointer and path as stacks: only a leaf makes copies of them,
/// and members that hold no leaf (`true`, `null`) cost nothing.
fn leaves_into<'a>(
    node: &'a JsonNode,
    name: &mut String,
    path: &mut Vec<Cow<'a, str>>,
    numbers: bool,
    out: &mut Vec<(String, Vec<String>, &'a JsonNode)>,
) {
    let leafless = |v: &JsonNode| match v.kind {
        JsonKind::Bool(_) | JsonKind::Null => true,
        JsonKind::Num => !numbers,
        _ => false,
    };
    match &node.kind {
        JsonKind::Str(_) => out.push((name.clone(), owned(path), node)),
        JsonKind::Num if numbers => out.push((name.clone(), owned(path), node)),
        JsonKind::Object(members) => {
            for (k, v) in members {
                if leafless(v) {
                    continue;
                }
                let len = step_in(name, path, Cow::Borrowed(k));
                leaves_into(v, name, path, numbers, out);
                step_out(name, path, len);
            }
        }
        JsonKind::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                if leafless(v) {
                    continue;
                }
                let len = step_in(name, path, Cow::Owned(i.to_string()));
                leaves_into(v, name, path, numbers, out);
                step_out(name, path, len);
            }
        }
        _ => {}
    }
}

/// Every member name of every object under `node`.
pub fn member_names<'a>(node: &'a JsonNode, out: &mut Vec<&'a str>) {
    match &node.kind {
        JsonKind::Object(members) => {
            for (k, v) in members {
                out.push(k);
                member_names(v, out);
            }
        }
        JsonKind::Array(items) => {
            for v in items {
                member_names(v, out);
            }
        }
        _ => {}
    }
}

/// Parses JSON, keeping spans. The whole input must be one value (whitespace around), after
/// an optional byte-order mark, which RFC 8259 lets a parser ignore and Jackson and .NET do.
pub fn parse_json(src: &str) -> Result<JsonNode, JsonError> {
    let mut p = JsonParser {
        b: src.as_bytes(),
        src,
        i: if src.starts_with('\u{FEFF}') { 3 } else { 0 },
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return p.err("trailing characters");
    }
    Ok(v)
}

struct JsonParser<'a> {
    b: &'a [u8],
    src: &'a str,
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn err<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError {
            kind: JsonErrorKind::Syntax(what),
            offset: self.i,
        })
    }

    fn value(&mut self, depth: usize) -> Result<JsonNode, JsonError> {
        if depth > MAX_JSON_DEPTH {
            return Err(JsonError {
                kind: JsonErrorKind::TooDeep,
                offset: self.i,
            });
        }
        let start = self.i;
        let kind = match self.b.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return self.err("expected a string key");
                        }
                        let key = self.string()?;
                        self.ws();
                        if self.b.get(self.i) != Some(&b':') {
                            return self.err("expected ':'");
                        }
                        self.i += 1;
                        self.ws();
                        let v = self.value(depth + 1)?;
                        members.push((key, v));
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or '}'"),
                        }
                    }
                }
                JsonKind::Object(members)
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        match self.b.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or ']'"),
                        }
                    }
                }
                JsonKind::Array(items)
            }
            Some(b'"') => JsonKind::Str(self.string()?),
            Some(b't') => self.literal("true", JsonKind::Bool(true))?,
            Some(b'f') => self.literal("false", JsonKind::Bool(false))?,
            Some(b'n') => self.literal("null", JsonKind::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                JsonKind::Num
            }
            _ => return self.err("expected a JSON value"),
        };
        Ok(JsonNode {
            start,
            end: self.i,
            kind,
        })
    }

    fn literal(&mut self, word: &str, kind: JsonKind) -> Result<JsonKind, JsonError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(kind)
        } else {
            self.err("invalid literal")
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.b.get(p.i), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i > s
        };
        if !digits(self) {
            return self.err("invalid number");
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return self.err("invalid number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return self.err("invalid number");
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self
            .src
            .get(self.i..self.i + 4)
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|s| u32::from_str_radix(s, 16).ok());
        match h {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.err("invalid \\u escape"),
        }
    }

    /// Reads a string starting at the opening quote; returns its unescaped value.
    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let run_start = self.i;
            let rest = self.b.get(self.i..).unwrap_or_default();
            let quote = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            // A control character before it ends the run there (and the string, as an error).
            let run = rest[..quote]
                .iter()
                .position(|&c| c < 0x20)
                .unwrap_or(quote);
            self.i += run;
            // The source is valid UTF-8 and the run stops at ASCII bytes: a char boundary.
            out.push_str(self.src.get(run_start..self.i).unwrap_or(""));
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let e = self.b.get(self.i).copied();
                    self.i += 1;
                    match e {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i) == Some(&b'\\')
                                    && self.b.get(self.i + 1) == Some(&b'u')
                                {
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return self.err("invalid surrogate pair");
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                } else {
                                    0xFFFD
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                0xFFFD
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        _ => return self.err("invalid escape"),
                    }
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }
}

/// Writes `s` as a JSON string literal (quotes included), escaping only what JSON requires.
pub fn json_string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_unescaping() {
        let src = r#"{"a": "x\"y\u00e9\ud83d\ude00", "b": [1, true, null, "z"]}"#;
        let root = parse_json(src).unwrap();
        let a = root.child("a").unwrap();
        assert_eq!(a.as_str(), Some("x\"yé😀"));
        assert_eq!(&src[a.start..a.end], r#""x\"y\u00e9\ud83d\ude00""#);
        let b = select(&root, &parse_pointer("/b/3").unwrap());
        assert_eq!(b[0].2.as_str(), Some("z"));
    }

    #[test]
    fn garbage_and_deep_nesting_are_errors() {
        assert!(parse_json("{\"a\":}").is_err());
        assert!(parse_json("\"abc").is_err());
        assert!(parse_json("[1,]").is_err());
        assert!(parse_json("\"\\u+123\"").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(parse_json(&deep).unwrap_err().kind, JsonErrorKind::TooDeep);
    }

    #[test]
    fn wildcards_select_every_member() {
        let root = parse_json(r#"{"poll":{"options":["a","b"]}}"#).unwrap();
        let sel = select(&root, &parse_pointer("/poll/options/*").unwrap());
        let names: Vec<_> = sel.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["/poll/options/0", "/poll/options/1"]);
    }

    #[test]
    fn repeated_keys_are_all_selected() {
        let src = r#"{"status":"one","x":{"status":"no"},"status":"two","st\u0061tus":"three"}"#;
        let root = parse_json(src).unwrap();
        let sel = select(&root, &parse_pointer("/status").unwrap());
        let values: Vec<_> = sel.iter().map(|(_, _, n)| n.as_str().unwrap()).collect();
        assert_eq!(values, ["one", "two", "three"]);
    }

    #[test]
    fn numbers_read_as_javascript_shows_them() {
        for (literal, shown) in [
            ("4.539148803436467e15", Some("4539148803436467")),
            ("45391488034364670E-1", Some("4539148803436467")),
            ("4539148803436467.0", Some("4539148803436467")),
            ("-1.5e3", Some("-1500")),
            ("4539148803436467", None),
            ("1.5", None),
            ("1e21", None),
            ("1e400", None),
        ] {
            assert_eq!(number_as_shown(literal).as_deref(), shown, "{literal}");
        }
    }
}
