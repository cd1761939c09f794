//! Decoding of request bodies for inspection: Content-Encoding (gzip, deflate, br, zstd),
//! then the body's structure (JSON, `x-www-form-urlencoded`, `multipart/form-data`, text),
//! and the selection of the fields an activity names ([`fields`]).
//!
//! # Reading a body the way the site may
//! A site's framework does not always read a body as its Content-Type says: Rack reads a
//! POST without a type as a form, some servers sniff JSON, Go undoes a part's transfer
//! encoding. The gateway cannot know which framework a site runs, so it reads **more**:
//! - the *primary* structure is what the declared type says when the body parses as that
//!   (a body that claims JSON or multipart and does not parse is uninspectable); without a
//!   usable type it is the body's actual structure (JSON, then multipart by its first line,
//!   then a form when no type was given, then text);
//! - *alternative* structures are every other reading some framework could make: JSON
//!   under a form or text type, a form under no type or text, `;`-separated form pairs.
//!   They are inspected like the primary one but never rewritten: a redaction that would
//!   have to change them blocks the request instead (see `redact`).
//!
//! Everything keeps byte spans into the decompressed body so that redaction can rewrite
//! only what changed.
//!
//! # Hostile input
//! No panic on any byte sequence; the decompressed size is capped at `max_body` (output is
//! read with a limit, never fully inflated first) and at a compression ratio of
//! [`MAX_RATIO`]; JSON nesting is capped at [`MAX_JSON_DEPTH`]; work is linear in the body
//! size for each reading. A body breaking a limit is *uninspectable*, with the reason.

pub mod charset;
pub mod fields;
pub mod form;
pub mod json;
pub mod keys;
pub mod multipart;
pub mod render;

use std::fmt;
use std::io::{Read, Write};

pub use charset::Charset;
pub use fields::{all_fields, extract_fields, ContentField, Field, FieldLoc, Inputs, Source};
pub use form::{form_decode, form_encode, form_encode_like, parse_form, FormPair};
pub use json::{
    json_string_literal, parse_json, parse_pointer, select, JsonError, JsonErrorKind, JsonKind,
    JsonNode, PtrSeg, MAX_JSON_DEPTH,
};
pub use multipart::{parse_multipart, MediaType, Part};

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

/// The byte two hex digits spell, if they do.
pub(crate) fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    match two {
        [a, b] => Some((digit(*a)? * 16 + digit(*b)?) as u8),
        _ => None,
    }
}

/// Media types of pictures, sound, video and fonts: their bytes are not text.
pub fn is_media_type(essence: &str) -> bool {
    ["image/", "video/", "audio/", "font/"]
        .iter()
        .any(|p| essence.starts_with(p))
}

fn is_json_type(essence: &str) -> bool {
    essence.ends_with("json")
        || essence.ends_with("+json")
        || essence.contains("/json")
        || essence == "application/jsonrequest"
}

/// What a body turned out to be.
#[derive(Clone, Debug)]
pub enum BodyKind {
    Empty,
    Json(JsonNode),
    Form(Vec<FormPair>),
    Multipart(Vec<Part>),
    Text,
    /// Not text (an image, a video, protobuf…).
    Binary,
}

impl BodyKind {
    pub fn label(&self) -> &'static str {
        match self {
            BodyKind::Empty => "empty",
            BodyKind::Json(_) => "JSON",
            BodyKind::Form(_) => "form",
            BodyKind::Multipart(_) => "multipart",
            BodyKind::Text => "text",
            BodyKind::Binary => "binary",
        }
    }
}

/// A body after Content-Encoding and structure decoding.
#[derive(Clone, Debug)]
pub struct DecodedBody {
    /// Encodings as listed in Content-Encoding (applied in that order by the client).
    pub encodings: Vec<Encoding>,
    /// The decompressed bytes.
    pub raw: Vec<u8>,
    /// The primary structure: the one redaction rewrites.
    pub kind: BodyKind,
    /// Other structures the body may be read as (see the module docs): inspected, never
    /// rewritten.
    pub alt: Vec<BodyKind>,
    pub content_type: String,
    /// What the body's charset made of its bytes (see [`charset`]).
    pub charset: Charset,
    /// The decompressed bytes as sent, when `raw` is their transcoding from UTF-16.
    pub sent: Option<Vec<u8>>,
}

impl DecodedBody {
    /// The decompressed body as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.raw).ok()
    }

    /// The first value of a form field or multipart text part of the primary structure.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        match &self.kind {
            BodyKind::Form(pairs) => pairs
                .iter()
                .find(|p| p.key == name)
                .map(|p| p.value.as_str()),
            BodyKind::Multipart(parts) => parts
                .iter()
                .find(|p| p.names.iter().any(|n| n == name))
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

    /// Every structure, the primary one first (index 0), then the alternatives.
    pub fn views(&self) -> impl Iterator<Item = (usize, &BodyKind)> {
        std::iter::once(&self.kind).chain(&self.alt).enumerate()
    }

    /// The whole body read in the charset it declares, when that reading differs from the
    /// UTF-8 one (see [`charset`]): a form's escapes undone, `holes` (byte spans of `raw`,
    /// the noise) blanked first. Inspected, never rewritten.
    pub fn charset_reading(&self, holes: &[(usize, usize)]) -> Option<Field> {
        let Charset::Also(encoding) = self.charset else {
            return None;
        };
        let mut bytes = fields::blanked(&self.raw, holes);
        if encoding.is_ascii_compatible() && matches!(self.kind, BodyKind::Form(_)) {
            bytes = form::form_decode_bytes(&bytes);
        }
        let text = charset::reading(encoding, &bytes)?;
        let name = format!("body (read as {})", encoding.name());
        Some(Field {
            loc: FieldLoc::Other(name.clone()),
            name,
            text,
            rewritable: false,
            whole_document: true,
        })
    }

    /// The readings of the whole body a scan of its fields adds (`permeable scan`): a
    /// binary body's bytes, the body in the charset it declares, the bytes a UTF-16 body
    /// was sent as.
    pub fn whole_readings(&self) -> Vec<Field> {
        let mut out = Vec::new();
        if matches!(self.kind, BodyKind::Binary) {
            out.push(fields::raw_text("body (raw)", &self.raw, &[]));
        }
        out.extend(self.charset_reading(&[]));
        if let Some(sent) = &self.sent {
            out.push(fields::raw_text("body (as sent)", sent, &[]));
        }
        out
    }

    /// Re-applies the body's charset and Content-Encoding to new bytes.
    pub fn reencode(&self, raw: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        let mut data = match self.charset {
            Charset::Utf16(order) => {
                let text = std::str::from_utf8(raw).map_err(std::io::Error::other)?;
                charset::encode_utf16(text, order)
            }
            Charset::Utf32(order) => {
                let text = std::str::from_utf8(raw).map_err(std::io::Error::other)?;
                charset::encode_utf32(text, order)
            }
            _ => raw.to_vec(),
        };
        for enc in self.encodings.iter().rev() {
            data = compress(*enc, &data)?;
        }
        Ok(data)
    }
}

/// An unknown or unsupported Content-Encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEncoding(pub String);

impl fmt::Display for UnknownEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported Content-Encoding {:?}", self.0)
    }
}

impl std::error::Error for UnknownEncoding {}

/// Parses a Content-Encoding header (or several, joined with `,`). Unknown codings are an
/// error.
pub fn parse_encodings(header: Option<&str>) -> Result<Vec<Encoding>, UnknownEncoding> {
    let mut out = Vec::new();
    let Some(h) = header else { return Ok(out) };
    for coding in h.split(',') {
        match coding.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => {}
            "gzip" | "x-gzip" => out.push(Encoding::Gzip),
            "deflate" => out.push(Encoding::Deflate),
            "br" => out.push(Encoding::Brotli),
            "zstd" => out.push(Encoding::Zstd),
            other => return Err(UnknownEncoding(other.to_string())),
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

fn compress(enc: Encoding, data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    match enc {
        Encoding::Gzip => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data)?;
            w.finish()
        }
        Encoding::Deflate => {
            let mut w = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(data)?;
            w.finish()
        }
        Encoding::Brotli => {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data)?;
            }
            Ok(out)
        }
        Encoding::Zstd => zstd::stream::encode_all(data, 3),
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
    /// A body that does not parse as what it claims (JSON, multipart), or text that is not
    /// UTF-8, or a structure that can be read in conflicting ways.
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

impl fmt::Display for Uninspectable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Uninspectable {}

/// Decodes a body per its Content-Encoding and Content-Type, within `max_body`.
/// An `Err` says why the body is uninspectable.
pub fn decode_body(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<DecodedBody, Uninspectable> {
    let types: Vec<&str> = content_type.into_iter().collect();
    decode_body_as(&types, content_encoding, body, max_body)
}

/// [`decode_body`] for a request that may carry several Content-Type fields: the first
/// decides the primary structure; the structures the others declare are read too, as
/// alternatives (a site may read either).
pub fn decode_body_as(
    content_types: &[&str],
    content_encoding: Option<&str>,
    body: &[u8],
    max_body: usize,
) -> Result<DecodedBody, Uninspectable> {
    use UninspectableKind::*;
    if body.len() > max_body {
        return Err(Uninspectable::new(
            TooLarge,
            format!("body larger than inspection.max_body ({max_body} bytes)"),
        ));
    }
    let encodings = parse_encodings(content_encoding)
        .map_err(|e| Uninspectable::new(BadEncoding, e.to_string()))?;
    let mut raw = body.to_vec();
    for enc in encodings.iter().rev() {
        let before = raw.len();
        raw = decompress(*enc, &raw, max_body)?;
        if raw.len() > 64 * 1024 && raw.len() > before.saturating_mul(MAX_RATIO) {
            return Err(Uninspectable::new(
                TooLarge,
                "compression ratio above the inspection limit",
            ));
        }
    }
    let first = content_types.first().copied().unwrap_or("").trim();
    let media = MediaType::parse(first);
    let sniff = media.essence.is_empty() || is_json_type(&media.essence);
    let charset::BodyText {
        bytes: raw,
        charset,
        sent,
    } = charset::read_as(&media, raw, sniff);
    let (mut kind, mut alt) = structure(&media, &raw)?;
    for other in content_types.iter().skip(1) {
        let media = MediaType::parse(other);
        if media == MediaType::parse(first) {
            continue;
        }
        let (k, more) = structure(&media, &raw)?;
        for view in std::iter::once(k).chain(more) {
            if !std::iter::once(&kind)
                .chain(&alt)
                .any(|v| same_reading(v, &view))
            {
                alt.push(view);
            }
        }
    }
    // A form that declares no charset but whose values are not UTF-8: a servlet reads them
    // in ISO-8859-1, the default when none is declared (see `charset`).
    let charset = match (&kind, charset) {
        (BodyKind::Form(_), Charset::Utf8) => charset::undeclared_form(&raw),
        (_, declared) => declared,
    };
    // An untyped body whose UTF-16 or UTF-32 is JSON: that JSON is read beside its bytes.
    if media.essence.is_empty() && matches!(charset, Charset::Utf8 | Charset::Also(_)) {
        if let Some(node) = charset::wide_json(&raw) {
            alt.push(BodyKind::Json(node));
        }
    }
    // A form in UTF-16 whose bytes stay as sent: its UTF-16 pairs are read beside them.
    if let (BodyKind::Form(_), Charset::Also(e)) = (&kind, charset) {
        if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE {
            alt.push(BodyKind::Form(charset::utf16_form(&raw, e)));
        }
    }
    // Parts whose bytes are not UTF-8, read in the charset they or the body declare.
    let body_charset = match charset {
        Charset::Also(e) => Some(e),
        _ => None,
    };
    for view in std::iter::once(&mut kind).chain(alt.iter_mut()) {
        if let BodyKind::Multipart(parts) = view {
            charset::read_parts(parts, &raw, body_charset);
        }
    }
    Ok(DecodedBody {
        encodings,
        raw,
        kind,
        alt,
        content_type: first.to_string(),
        charset,
        sent,
    })
}

/// The primary structure of `raw` under a declared media type, and the alternatives.
fn structure(media: &MediaType, raw: &[u8]) -> Result<(BodyKind, Vec<BodyKind>), Uninspectable> {
    use UninspectableKind::*;
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok((BodyKind::Empty, Vec::new()));
    }
    let essence = media.essence.as_str();
    let text = std::str::from_utf8(raw).ok();
    // The body's own structure, whatever the type says.
    let json = || {
        text.and_then(|t| parse_json(t).ok())
            .filter(JsonNode::is_container)
    };
    let form_alternatives = |alt: &mut Vec<BodyKind>, pairs: &[FormPair]| {
        let semi = form::semicolon_pairs(raw, pairs);
        if !semi.is_empty() {
            alt.push(BodyKind::Form(semi));
        }
    };
    let mut alt = Vec::new();
    if essence.starts_with("multipart/") {
        let mut boundaries: Vec<&str> = media.param_values("boundary").collect();
        let sniffed = multipart::sniff_boundary(raw);
        if boundaries.is_empty() {
            boundaries.extend(sniffed.as_deref());
        }
        let parts = multipart::parse_multipart_any(raw, &boundaries)
            .map_err(|e| Uninspectable::new(Malformed, e.to_string()))?;
        return Ok((BodyKind::Multipart(parts), alt));
    }
    if is_json_type(essence) {
        let t = text.ok_or_else(|| Uninspectable::new(Malformed, "JSON body is not UTF-8"))?;
        let root = parse_json(t).map_err(|e| {
            let kind = match e.kind {
                JsonErrorKind::TooDeep => TooDeep,
                JsonErrorKind::Syntax(_) => Malformed,
            };
            Uninspectable::new(kind, format!("body is not valid JSON: {e}"))
        })?;
        return Ok((BodyKind::Json(root), alt));
    }
    if essence == "application/x-www-form-urlencoded" {
        let pairs = parse_form(raw);
        form_alternatives(&mut alt, &pairs);
        if let Some(root) = json() {
            alt.push(BodyKind::Json(root));
        }
        if let Some(parts) = sniffed_multipart(raw) {
            alt.push(BodyKind::Multipart(parts));
        }
        return Ok((BodyKind::Form(pairs), alt));
    }
    // No usable type: the body's structure decides. Rack reads a body without a type as a
    // form, so that reading is always made too.
    let untyped = essence.is_empty();
    let primary = if let Some(root) = json() {
        BodyKind::Json(root)
    } else if let Some(parts) = sniffed_multipart(raw) {
        BodyKind::Multipart(parts)
    } else if untyped {
        let pairs = parse_form(raw);
        form_alternatives(&mut alt, &pairs);
        BodyKind::Form(pairs)
    } else if text.is_some() {
        BodyKind::Text
    } else if essence.starts_with("text/") {
        return Err(Uninspectable::new(Malformed, "text body is not UTF-8"));
    } else {
        BodyKind::Binary
    };
    let form_read = untyped || (text.is_some() && raw.contains(&b'='));
    if form_read && !matches!(primary, BodyKind::Form(_)) {
        let pairs = parse_form(raw);
        form_alternatives(&mut alt, &pairs);
        alt.push(BodyKind::Form(pairs));
    }
    Ok((primary, alt))
}

/// Whether two readings of one body see the same structure.
fn same_reading(a: &BodyKind, b: &BodyKind) -> bool {
    let spans = |pairs: &[FormPair]| -> Vec<(usize, usize)> {
        pairs.iter().map(|p| (p.value_start, p.value_end)).collect()
    };
    match (a, b) {
        (BodyKind::Form(x), BodyKind::Form(y)) => spans(x) == spans(y),
        (BodyKind::Multipart(x), BodyKind::Multipart(y)) => x
            .iter()
            .map(|p| (p.start, p.end))
            .eq(y.iter().map(|p| (p.start, p.end))),
        _ => a.label() == b.label(),
    }
}

fn sniffed_multipart(raw: &[u8]) -> Option<Vec<Part>> {
    let boundary = multipart::sniff_boundary(raw)?;
    parse_multipart(raw, &boundary).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn kinds(d: &DecodedBody) -> Vec<&'static str> {
        d.views().map(|(_, k)| k.label()).collect()
    }

    #[test]
    fn structure_wins_over_a_missing_or_odd_type() {
        let json = br#"{"status":"x"}"#;
        for ct in [
            None,
            Some("text/x-json"),
            Some("application/json garbage"),
            Some("application/octet-stream"),
        ] {
            let d = decode_body(ct, None, json, 1 << 20).unwrap();
            assert_eq!(kinds(&d)[0], "JSON", "{ct:?}");
        }
        // Rack reads an untyped POST as a form.
        let d = decode_body(None, None, b"status=hello", 1 << 20).unwrap();
        assert_eq!(kinds(&d), ["form"]);
        // A form that is also JSON is read both ways.
        let d = decode_body(
            Some("application/x-www-form-urlencoded"),
            None,
            json,
            1 << 20,
        )
        .unwrap();
        assert_eq!(kinds(&d), ["form", "JSON"]);
        // Text with `=` may be a form to someone.
        let d = decode_body(Some("text/plain"), None, b"status=hi", 1 << 20).unwrap();
        assert_eq!(kinds(&d), ["text", "form"]);
        // Multipart by its first line.
        let mp = b"--zz\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nhi\r\n--zz--\r\n";
        let d = decode_body(Some("application/weird"), None, mp, 1 << 20).unwrap();
        assert_eq!(kinds(&d)[0], "multipart");
        let d = decode_body(Some("multipart/form-data"), None, mp, 1 << 20).unwrap();
        assert_eq!(kinds(&d), ["multipart"]);
    }

    #[test]
    fn what_claims_a_structure_must_have_it() {
        assert_eq!(
            decode_body(Some("application/json"), None, b"status=x", 1 << 20)
                .unwrap_err()
                .kind,
            UninspectableKind::Malformed
        );
        let two = b"--a\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n--b\r\nContent-Disposition: form-data; name=\"y\"\r\n\r\nv\r\n--b--\r\n--a--\r\n";
        let e = decode_body(
            Some("multipart/form-data; boundary=a; boundary=b"),
            None,
            two,
            1 << 20,
        )
        .unwrap_err();
        assert!(e.reason.contains("several boundaries"), "{e}");
    }

    #[test]
    fn several_content_types_are_all_read() {
        let d = decode_body_as(
            &["application/x-www-form-urlencoded", "application/json"],
            None,
            br#"{"status":"x"}"#,
            1 << 20,
        );
        assert_eq!(kinds(&d.unwrap()), ["form", "JSON"]);
    }
}
