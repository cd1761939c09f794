//! Decoding of request bodies for inspection: Content-Encoding (gzip, deflate, br, zstd),
//! then Content-Type (JSON, `x-www-form-urlencoded` with JSON nested in fields,
//! `multipart/form-data` text parts, `text/*`), and extraction of the content fields an
//! activity names.
//!
//! Everything keeps byte spans into the decompressed body so that redaction can rewrite
//! only what changed (see `redact`).
//!
//! Guarantees on hostile input: no panic on any byte sequence; the decompressed size is
//! capped at `max_body` (output is read with a limit, never fully inflated first) and at a
//! compression ratio of [`MAX_RATIO`]; JSON nesting is capped at [`MAX_JSON_DEPTH`]; work
//! is linear in the body size. A body breaking a limit is *uninspectable*, with the reason.

use std::io::{Read, Write};

/// How the JSON parser says a document is nested deeper than [`MAX_JSON_DEPTH`].
const JSON_TOO_DEEP: &str = "JSON nested too deeply";

/// Deepest JSON nesting accepted.
pub const MAX_JSON_DEPTH: usize = 128;
/// Largest accepted ratio of decompressed to compressed size (for bodies over 64 KiB).
pub const MAX_RATIO: usize = 200;

/// A Content-Encoding the engine can undo and redo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// A decoded JSON value with the byte span of its source text (strings include quotes).
#[derive(Clone, Debug)]
pub struct JsonNode {
    pub start: usize,
    pub end: usize,
    pub kind: JsonKind,
}

#[derive(Clone, Debug)]
pub enum JsonKind {
    Object(Vec<(String, JsonNode)>),
    Array(Vec<JsonNode>),
    Str(String),
    Num,
    Bool(bool),
    Null,
}

impl JsonNode {
    /// Member `key` of an object, or element `key` of an array.
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

    /// Follows a concrete pointer (no wildcards).
    pub fn pointer(&self, segs: &[PtrSeg]) -> Option<&JsonNode> {
        let mut node = self;
        for seg in segs {
            node = match seg {
                PtrSeg::Key(k) => node.child(k)?,
                PtrSeg::Any => return None,
            };
        }
        Some(node)
    }
}

/// One segment of a JSON pointer; `*` matches every element or member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PtrSeg {
    Key(String),
    Any,
}

/// Parses `/a/b/*/c` (RFC 6901 escapes `~0`, `~1`). The empty string is the root.
pub fn parse_pointer(p: &str) -> Result<Vec<PtrSeg>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer must start with '/': {p:?}"))?;
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

fn escape_pointer_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Every node matching a pointer with wildcards, with its concrete pointer.
pub fn select<'a>(root: &'a JsonNode, segs: &[PtrSeg]) -> Vec<(String, Vec<String>, &'a JsonNode)> {
    let mut out = Vec::new();
    select_into(root, segs, String::new(), Vec::new(), &mut out);
    out
}

fn select_into<'a>(
    node: &'a JsonNode,
    segs: &[PtrSeg],
    name: String,
    path: Vec<String>,
    out: &mut Vec<(String, Vec<String>, &'a JsonNode)>,
) {
    let Some((first, rest)) = segs.split_first() else {
        out.push((name, path, node));
        return;
    };
    let mut visit = |key: String, child: &'a JsonNode| {
        let mut p = path.clone();
        p.push(key.clone());
        select_into(
            child,
            rest,
            format!("{name}/{}", escape_pointer_key(&key)),
            p,
            out,
        );
    };
    match (first, &node.kind) {
        (PtrSeg::Any, JsonKind::Object(members)) => {
            for (k, v) in members {
                visit(k.clone(), v);
            }
        }
        (PtrSeg::Any, JsonKind::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                visit(i.to_string(), v);
            }
        }
        (PtrSeg::Key(k), _) => {
            if let Some(child) = node.child(k) {
                visit(k.clone(), child);
            }
        }
        _ => {}
    }
}

/// Parses JSON, keeping spans. The whole input must be one value (whitespace around).
pub fn parse_json(src: &str) -> Result<JsonNode, String> {
    let mut p = JsonParser {
        b: src.as_bytes(),
        src,
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(format!("trailing characters at byte {}", p.i));
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

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<JsonNode, String> {
        if depth > MAX_JSON_DEPTH {
            return self.err(JSON_TOO_DEEP);
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

    fn literal(&mut self, word: &str, kind: JsonKind) -> Result<JsonKind, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(kind)
        } else {
            self.err("invalid literal")
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.i;
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
        debug_assert!(self.i > start);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .src
            .get(self.i..self.i + 4)
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
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
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

/// One `key=value` pair of a form body, with the spans of its encoded key and value.
#[derive(Clone, Debug)]
pub struct FormPair {
    pub key: String,
    pub value: String,
    pub value_start: usize,
    pub value_end: usize,
}

/// Percent-decodes a form component (`+` is a space); invalid UTF-8 is replaced.
pub fn form_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let hex = std::str::from_utf8(&s[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a form component the way browsers do (`application/x-www-form-urlencoded`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits a form body into pairs.
pub fn parse_form(body: &[u8]) -> Vec<FormPair> {
    let mut pairs = Vec::new();
    let mut start = 0;
    for part in body.split(|&b| b == b'&') {
        let end = start + part.len();
        if !part.is_empty() {
            let (k, vs) = match part.iter().position(|&b| b == b'=') {
                Some(eq) => (&part[..eq], start + eq + 1),
                None => (part, end),
            };
            pairs.push(FormPair {
                key: form_decode(k),
                value: form_decode(&body[vs..end]),
                value_start: vs,
                value_end: end,
            });
        }
        start = end + 1;
    }
    pairs
}

/// One part of a multipart body.
#[derive(Clone, Debug)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// Span of the part's content in the body.
    pub start: usize,
    pub end: usize,
    /// The content, when it is text.
    pub text: Option<String>,
}

fn header_param(value: &str, name: &str) -> Option<String> {
    for piece in value.split(';').skip(1) {
        let (k, v) = piece.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            return Some(v.to_string());
        }
    }
    None
}

fn is_text_type(ct: &str) -> bool {
    let ct = ct.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("x-www-form-urlencoded")
        || ct.contains("xml")
}

/// Splits a multipart body by its boundary.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let finder = memchr::memmem::Finder::new(d);
    let positions: Vec<usize> = finder.find_iter(body).collect();
    if positions.is_empty() {
        return Err("multipart boundary not found".into());
    }
    // Whatever follows the last delimiter is only the epilogue when that delimiter closes
    // the body (`--boundary--`); otherwise a part is cut off, unread.
    let last = positions[positions.len() - 1] + d.len();
    if !body[last..].starts_with(b"--") {
        return Err("multipart body without its closing boundary".into());
    }
    let mut parts = Vec::new();
    for w in positions.windows(2) {
        let (a, b) = (w[0] + d.len(), w[1]);
        let seg = &body[a..b];
        // A part starts with CRLF after the delimiter and ends with CRLF before the next.
        let seg_start = a + if seg.starts_with(b"\r\n") {
            2
        } else if seg.starts_with(b"\n") {
            1
        } else {
            0
        };
        let seg_end = if body[..b].ends_with(b"\r\n") {
            b - 2
        } else if body[..b].ends_with(b"\n") {
            b - 1
        } else {
            b
        };
        if seg_end < seg_start {
            continue;
        }
        let part = &body[seg_start..seg_end];
        let (head_len, sep) = match memchr::memmem::find(part, b"\r\n\r\n") {
            Some(i) => (i, 4),
            None => match memchr::memmem::find(part, b"\n\n") {
                Some(i) => (i, 2),
                None => return Err("multipart part without headers".into()),
            },
        };
        let head = String::from_utf8_lossy(&part[..head_len]);
        let mut name = String::new();
        let mut filename = None;
        let mut content_type = None;
        for line in head.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                name = header_param(v, "name").unwrap_or_default();
                filename = header_param(v, "filename");
            } else if k.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(v.trim().to_string());
            }
        }
        let start = seg_start + head_len + sep;
        let content = &body[start..seg_end];
        let texty = match (&filename, &content_type) {
            (None, None) => true,
            (_, Some(ct)) => is_text_type(ct),
            (Some(_), None) => false,
        };
        let text = if texty {
            std::str::from_utf8(content).ok().map(str::to_string)
        } else {
            None
        };
        parts.push(Part {
            name,
            filename,
            content_type,
            start,
            end: seg_end,
            text,
        });
    }
    Ok(parts)
}

/// What a body turned out to be.
#[derive(Clone, Debug)]
pub enum BodyKind {
    Empty,
    Json(JsonNode),
    Form(Vec<FormPair>),
    Multipart(Vec<Part>),
    Text,
    /// Not text (an image, a video…): not inspected.
    Binary,
}

/// A body after Content-Encoding and Content-Type decoding.
#[derive(Clone, Debug)]
pub struct DecodedBody {
    /// Encodings as listed in Content-Encoding (applied in that order by the client).
    pub encodings: Vec<Encoding>,
    /// The decompressed bytes.
    pub raw: Vec<u8>,
    pub kind: BodyKind,
    pub content_type: String,
}

impl DecodedBody {
    /// The decompressed body as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.raw).ok()
    }

    /// A form field's decoded value.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        match &self.kind {
            BodyKind::Form(pairs) => pairs
                .iter()
                .find(|p| p.key == name)
                .map(|p| p.value.as_str()),
            BodyKind::Multipart(parts) => parts
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.text.as_deref()),
            _ => None,
        }
    }

    pub fn json(&self) -> Option<&JsonNode> {
        match &self.kind {
            BodyKind::Json(n) => Some(n),
            _ => None,
        }
    }

    /// Re-applies the body's Content-Encoding to new bytes.
    pub fn reencode(&self, raw: &[u8]) -> Result<Vec<u8>, String> {
        let mut data = raw.to_vec();
        for enc in self.encodings.iter().rev() {
            data = compress(*enc, &data)?;
        }
        Ok(data)
    }
}

/// Parses a Content-Encoding header. Unknown codings are an error.
pub fn parse_encodings(header: Option<&str>) -> Result<Vec<Encoding>, String> {
    let mut out = Vec::new();
    let Some(h) = header else { return Ok(out) };
    for coding in h.split(',') {
        match coding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" => out.push(Encoding::Gzip),
            "deflate" => out.push(Encoding::Deflate),
            "br" => out.push(Encoding::Brotli),
            "zstd" => out.push(Encoding::Zstd),
            other => return Err(format!("unsupported Content-Encoding {other:?}")),
        }
    }
    Ok(out)
}

fn read_limited(mut r: impl Read, limit: usize) -> Result<Vec<u8>, Uninspectable> {
    let mut out = Vec::new();
    (&mut r)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Uninspectable::new(
                UninspectableKind::BadEncoding,
                format!("bad compressed body: {e}"),
            )
        })?;
    if out.len() > limit {
        return Err(Uninspectable::new(
            UninspectableKind::TooLarge,
            "decompressed body larger than inspection.max_body",
        ));
    }
    Ok(out)
}

fn decompress(enc: Encoding, data: &[u8], limit: usize) -> Result<Vec<u8>, Uninspectable> {
    match enc {
        Encoding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(data), limit),
        Encoding::Deflate => read_limited(flate2::read::ZlibDecoder::new(data), limit)
            .or_else(|_| read_limited(flate2::read::DeflateDecoder::new(data), limit)),
        Encoding::Brotli => read_limited(brotli::Decompressor::new(data, 4096), limit),
        Encoding::Zstd => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|e| {
                Uninspectable::new(
                    UninspectableKind::BadEncoding,
                    format!("bad zstd body: {e}"),
                )
            })?;
            read_limited(d, limit)
        }
    }
}

fn compress(enc: Encoding, data: &[u8]) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("re-compressing the body failed: {e}");
    match enc {
        Encoding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)
        }
        Encoding::Deflate => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data).map_err(io)?;
            w.finish().map_err(io)
        }
        Encoding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).map_err(io)?;
            }
            Ok(out)
        }
        Encoding::Zstd => zstd::stream::encode_all(data, 3).map_err(io),
    }
}

/// What kind of reason makes a body uninspectable: a bounded set (the `reason` label of
/// `permeable_uninspectable_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UninspectableKind {
    /// Over `inspection.max_body`, before or after decompression, or a decompression
    /// ratio above [`MAX_RATIO`] (a bomb).
    TooLarge,
    /// A Content-Encoding that is unknown or does not decode.
    BadEncoding,
    /// JSON nested deeper than [`MAX_JSON_DEPTH`].
    TooDeep,
    /// JSON, form, multipart or text that does not parse, or is not UTF-8.
    Malformed,
    /// Binary content (protobuf, an unknown type) where the employee's words may be.
    Binary,
}

impl UninspectableKind {
    pub const fn label(self) -> &'static str {
        match self {
            UninspectableKind::TooLarge => "too_large",
            UninspectableKind::BadEncoding => "bad_encoding",
            UninspectableKind::TooDeep => "too_deep",
            UninspectableKind::Malformed => "malformed",
            UninspectableKind::Binary => "binary",
        }
    }

    pub const ALL: [UninspectableKind; 5] = [
        UninspectableKind::TooLarge,
        UninspectableKind::BadEncoding,
        UninspectableKind::TooDeep,
        UninspectableKind::Malformed,
        UninspectableKind::Binary,
    ];
}

/// Why a body cannot be inspected: its kind and the reason in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uninspectable {
    pub kind: UninspectableKind,
    pub reason: String,
}

impl Uninspectable {
    pub fn new(kind: UninspectableKind, reason: impl Into<String>) -> Uninspectable {
        Uninspectable {
            kind,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Uninspectable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Decodes a body per its Content-Encoding and Content-Type, within `max_body`.
/// An `Err` says why the body is uninspectable.
pub fn decode_body(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<DecodedBody, Uninspectable> {
    use UninspectableKind::*;
    let fail = |kind, reason: String| Uninspectable::new(kind, reason);
    if body.len() > max_body {
        return Err(fail(
            TooLarge,
            format!("body larger than inspection.max_body ({max_body} bytes)"),
        ));
    }
    let encodings = parse_encodings(content_encoding).map_err(|e| fail(BadEncoding, e))?;
    let mut raw = body.to_vec();
    for enc in encodings.iter().rev() {
        let before = raw.len();
        raw = decompress(*enc, &raw, max_body)?;
        if raw.len() > 64 * 1024 && raw.len() > before.saturating_mul(MAX_RATIO) {
            return Err(fail(
                TooLarge,
                "compression ratio above the inspection limit".into(),
            ));
        }
    }
    let ct = content_type.unwrap_or("").trim().to_string();
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = if raw.iter().all(|b| b.is_ascii_whitespace()) {
        BodyKind::Empty
    } else if mime == "application/json" || mime.ends_with("+json") || mime == "text/json" {
        let text = std::str::from_utf8(&raw)
            .map_err(|_| fail(Malformed, "JSON body is not UTF-8".into()))?;
        BodyKind::Json(parse_json(text).map_err(|e| {
            let kind = if e.starts_with(JSON_TOO_DEEP) {
                TooDeep
            } else {
                Malformed
            };
            fail(kind, format!("body is not valid JSON: {e}"))
        })?)
    } else if mime == "application/x-www-form-urlencoded" {
        BodyKind::Form(parse_form(&raw))
    } else if mime == "multipart/form-data" {
        let boundary = header_param(&ct, "boundary")
            .ok_or_else(|| fail(Malformed, "multipart body without boundary".into()))?;
        BodyKind::Multipart(parse_multipart(&raw, &boundary).map_err(|e| fail(Malformed, e))?)
    } else if mime.starts_with("text/") {
        std::str::from_utf8(&raw).map_err(|_| fail(Malformed, "text body is not UTF-8".into()))?;
        BodyKind::Text
    } else if mime.is_empty() || mime == "application/octet-stream" {
        // No usable type: sniff. Clients of the catalogue always label what they post.
        match std::str::from_utf8(&raw) {
            Ok(t) => match parse_json(t) {
                Ok(n) if matches!(n.kind, JsonKind::Object(_) | JsonKind::Array(_)) => {
                    BodyKind::Json(n)
                }
                _ => BodyKind::Text,
            },
            Err(_) => BodyKind::Binary,
        }
    } else if is_text_type(&mime) {
        match std::str::from_utf8(&raw) {
            Ok(_) => BodyKind::Text,
            Err(_) => BodyKind::Binary,
        }
    } else {
        BodyKind::Binary
    };
    Ok(DecodedBody {
        encodings,
        raw,
        kind,
        content_type: ct,
    })
}

/// Where a content field is, so that redaction can write it back.
#[derive(Clone, Debug)]
pub enum FieldLoc {
    /// A JSON string literal `start..end` of the body; `path` is its concrete pointer.
    Json {
        start: usize,
        end: usize,
        path: Vec<String>,
    },
    /// The value of form pair `pair`.
    Form { pair: usize },
    /// A JSON string literal `start..end` inside the decoded value of form pair `pair`.
    FormJson {
        pair: usize,
        start: usize,
        end: usize,
        path: Vec<String>,
    },
    /// The content of multipart part `part`.
    Multipart { part: usize },
    /// The whole body.
    Body,
}

/// A piece of user text found in a body.
#[derive(Clone, Debug)]
pub struct Field {
    /// `/variables/tweet_text`, `status`, `variables/input/message/text`, `body`…
    pub name: String,
    pub text: String,
    pub loc: FieldLoc,
}

/// Where an activity's user text is (compiled from `content:`).
#[derive(Clone, Debug)]
pub enum ContentField {
    Json(Vec<PtrSeg>),
    Form(String),
    FormJson {
        field: String,
        pointer: Vec<PtrSeg>,
    },
    /// A part name, `*` for every text part.
    Multipart(String),
    Body,
}

fn json_strings(
    root: &JsonNode,
    segs: &[PtrSeg],
    prefix: &str,
    out: &mut Vec<(String, Vec<String>, usize, usize, String)>,
) {
    for (name, path, node) in select(root, segs) {
        collect_strings(node, &format!("{prefix}{name}"), path, out);
    }
}

/// The string leaves under `node` (the node itself when it is a string).
fn collect_strings(
    node: &JsonNode,
    name: &str,
    path: Vec<String>,
    out: &mut Vec<(String, Vec<String>, usize, usize, String)>,
) {
    match &node.kind {
        JsonKind::Str(s) => out.push((name.to_string(), path, node.start, node.end, s.clone())),
        JsonKind::Object(members) => {
            for (k, v) in members {
                let mut p = path.clone();
                p.push(k.clone());
                collect_strings(v, &format!("{name}/{}", escape_pointer_key(k)), p, out);
            }
        }
        JsonKind::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                collect_strings(v, &format!("{name}/{i}"), p, out);
            }
        }
        _ => {}
    }
}

/// The fields named by `content`, in order, without duplicates.
pub fn extract_fields(body: &DecodedBody, content: &[ContentField]) -> Vec<Field> {
    let mut fields: Vec<Field> = Vec::new();
    for spec in content {
        match (spec, &body.kind) {
            (ContentField::Json(segs), BodyKind::Json(root)) => {
                let mut found = Vec::new();
                json_strings(root, segs, "", &mut found);
                for (name, path, start, end, text) in found {
                    fields.push(Field {
                        name,
                        text,
                        loc: FieldLoc::Json { start, end, path },
                    });
                }
            }
            (ContentField::Form(name), BodyKind::Form(pairs)) => {
                for (i, p) in pairs.iter().enumerate() {
                    if &p.key == name {
                        fields.push(Field {
                            name: p.key.clone(),
                            text: p.value.clone(),
                            loc: FieldLoc::Form { pair: i },
                        });
                    }
                }
            }
            (ContentField::Form(name), BodyKind::Multipart(parts))
            | (ContentField::Multipart(name), BodyKind::Multipart(parts)) => {
                for (i, p) in parts.iter().enumerate() {
                    if (name == "*" || &p.name == name) && p.text.is_some() {
                        let text = p.text.clone().unwrap_or_default();
                        fields.push(Field {
                            name: p.name.clone(),
                            text,
                            loc: FieldLoc::Multipart { part: i },
                        });
                    }
                }
            }
            (ContentField::FormJson { field, pointer }, BodyKind::Form(pairs)) => {
                for (i, p) in pairs.iter().enumerate() {
                    if &p.key != field {
                        continue;
                    }
                    let Ok(root) = parse_json(&p.value) else {
                        continue;
                    };
                    let mut found = Vec::new();
                    json_strings(&root, pointer, field, &mut found);
                    for (name, path, start, end, text) in found {
                        fields.push(Field {
                            name,
                            text,
                            loc: FieldLoc::FormJson {
                                pair: i,
                                start,
                                end,
                                path,
                            },
                        });
                    }
                }
            }
            (ContentField::Body, BodyKind::Text | BodyKind::Json(_) | BodyKind::Form(_)) => {
                if let Some(t) = body.text() {
                    fields.push(Field {
                        name: "body".into(),
                        text: t.to_string(),
                        loc: FieldLoc::Body,
                    });
                }
            }
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    fields.retain(|f| seen.insert(f.name.clone()));
    fields
}

/// Every text field of a body, for `permeable scan`: JSON string leaves (and JSON nested in
/// them is not unpacked), form fields (and JSON nested in them), multipart text parts, or
/// the whole text.
pub fn all_fields(body: &DecodedBody) -> Vec<Field> {
    match &body.kind {
        BodyKind::Json(_) => extract_fields(body, &[ContentField::Json(vec![])]),
        BodyKind::Form(pairs) => {
            let mut out = Vec::new();
            for (i, p) in pairs.iter().enumerate() {
                match parse_json(&p.value) {
                    Ok(root) if matches!(root.kind, JsonKind::Object(_) | JsonKind::Array(_)) => {
                        let mut found = Vec::new();
                        collect_strings(&root, &p.key, Vec::new(), &mut found);
                        for (name, path, start, end, text) in found {
                            out.push(Field {
                                name,
                                text,
                                loc: FieldLoc::FormJson {
                                    pair: i,
                                    start,
                                    end,
                                    path,
                                },
                            });
                        }
                    }
                    _ => out.push(Field {
                        name: p.key.clone(),
                        text: p.value.clone(),
                        loc: FieldLoc::Form { pair: i },
                    }),
                }
            }
            out
        }
        BodyKind::Multipart(_) => extract_fields(body, &[ContentField::Multipart("*".into())]),
        BodyKind::Text => extract_fields(body, &[ContentField::Body]),
        BodyKind::Empty | BodyKind::Binary => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_and_unescaping() {
        let src = r#"{"a": "x\"y\u00e9\ud83d\ude00", "b": [1, true, null, "z"]}"#;
        let root = parse_json(src).unwrap();
        let a = root.child("a").unwrap();
        assert_eq!(a.as_str(), Some("x\"yé😀"));
        assert_eq!(&src[a.start..a.end], r#""x\"y\u00e9\ud83d\ude00""#);
        let b = root.pointer(&parse_pointer("/b/3").unwrap()).unwrap();
        assert_eq!(b.as_str(), Some("z"));
    }

    #[test]
    fn json_rejects_garbage_and_deep_nesting() {
        assert!(parse_json("{\"a\":}").is_err());
        assert!(parse_json("\"abc").is_err());
        assert!(parse_json("[1,]").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_json(&deep).unwrap_err().contains("deeply"));
    }

    #[test]
    fn wildcard_pointers_select_every_member() {
        let root = parse_json(r#"{"poll":{"options":["a","b"]}}"#).unwrap();
        let sel = select(&root, &parse_pointer("/poll/options/*").unwrap());
        let names: Vec<_> = sel.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["/poll/options/0", "/poll/options/1"]);
    }

    #[test]
    fn form_round_trip() {
        let pairs = parse_form(b"status=hello+w%C3%B6rld%21&x=1&flag");
        assert_eq!(pairs[0].value, "hello wörld!");
        assert_eq!(form_encode(&pairs[0].value), "hello+w%C3%B6rld%21");
        assert_eq!(pairs[2].key, "flag");
        assert_eq!(form_decode(b"%zz%4"), "%zz%4");
    }

    #[test]
    fn multipart_text_and_file_parts() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nhi there\r\n--XX\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX--\r\n";
        let parts = parse_multipart(body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text.as_deref(), Some("hi there"));
        assert_eq!(&body[parts[0].start..parts[0].end], b"hi there");
        assert!(parts[1].text.is_none());
    }

    #[test]
    fn compressed_bodies_decode_and_bombs_are_refused() {
        for enc in [
            Encoding::Gzip,
            Encoding::Deflate,
            Encoding::Brotli,
            Encoding::Zstd,
        ] {
            let data = compress(enc, br#"{"a":"b"}"#).unwrap();
            let name = match enc {
                Encoding::Gzip => "gzip",
                Encoding::Deflate => "deflate",
                Encoding::Brotli => "br",
                Encoding::Zstd => "zstd",
            };
            let d = decode_body(Some("application/json"), Some(name), &data, 1024).unwrap();
            assert_eq!(d.raw, br#"{"a":"b"}"#);
        }
        let bomb = compress(Encoding::Gzip, &vec![b'a'; 4 * 1024 * 1024]).unwrap();
        assert!(decode_body(Some("text/plain"), Some("gzip"), &bomb, 1024 * 1024).is_err());
        assert!(decode_body(Some("text/plain"), Some("gzip"), b"not gzip", 1024).is_err());
        assert!(decode_body(Some("text/plain"), Some("compress"), b"x", 1024).is_err());
    }

    #[test]
    fn json_in_form_field_is_extracted() {
        let body = b"fb_api_req_friendly_name=X&variables=%7B%22input%22%3A%7B%22message%22%3A%7B%22text%22%3A%22hi%22%7D%7D%7D";
        let d = decode_body(Some("application/x-www-form-urlencoded"), None, body, 4096).unwrap();
        let f = extract_fields(
            &d,
            &[ContentField::FormJson {
                field: "variables".into(),
                pointer: parse_pointer("/input/message/text").unwrap(),
            }],
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].text, "hi");
        assert_eq!(f[0].name, "variables/input/message/text");
    }
}
