//! `multipart/form-data` bodies and the media-type parameters that frame them.
//!
//! Frameworks differ in how they read a part's headers, so this reader takes every reading
//! that one of them might make: every `name` (and RFC 2231 `name*`) parameter of every
//! `Content-Disposition` line names the part, parameters without `=` are skipped instead of
//! ending the header, quoted strings may hold `;`, and a part's content is text when it is
//! valid UTF-8 whatever its declared type (Go reads a part without a filename as a value
//! whatever its type says). Contents in `base64` or `quoted-printable` transfer encoding
//! (which Go's reader decodes) are decoded for inspection and never rewritten.

use std::fmt;

/// A media type's essence (`type/subtype`, lowercase) and its parameters in order,
/// repeated names included. The essence ends at `;` or `,`, as Rack reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(value: &str) -> MediaType {
        let value = value.trim();
        let end = value.find([';', ',']).unwrap_or(value.len());
        let essence = value[..end].trim().to_ascii_lowercase();
        let rest = value.get(end..).unwrap_or("");
        MediaType {
            essence,
            params: parse_params(rest),
        }
    }

    /// Every value of parameter `name` (any case).
    pub fn param_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parameters of a header value: `; a=1; b="x;y"; c*=UTF-8''%C3%A9; d`. Pieces without `=`
/// are skipped. A name ending in `*` is an RFC 2231 extended value: it is decoded and
/// reported under the name without the `*`.
pub fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for piece in split_unquoted(s, b';') {
        let Some((k, v)) = piece.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let v = v.trim();
        if k.is_empty() {
            continue;
        }
        let v = unquote(v);
        match k.strip_suffix('*') {
            Some(name) => out.push((name.to_ascii_lowercase(), decode_extended(&v))),
            None => out.push((k.to_ascii_lowercase(), v)),
        }
    }
    out
}

/// Splits at `sep` outside double quotes (a backslash escapes inside them).
fn split_unquoted(s: &str, sep: u8) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut quoted, mut i) = (0, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&s[start.min(s.len())..]);
    out
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `charset'language'percent-encoded` (RFC 2231/5987); UTF-8 and ASCII are decoded, other
/// charsets are read as UTF-8 with replacement.
fn decode_extended(v: &str) -> String {
    let encoded = v.splitn(3, '\'').nth(2).unwrap_or(v);
    let mut bytes = Vec::with_capacity(encoded.len());
    let b = encoded.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(x) = super::hex_byte(&b[i + 1..i + 3]) {
                bytes.push(x);
                i += 3;
                continue;
            }
        }
        bytes.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One part of a multipart body.
#[derive(Clone, Debug)]
pub struct Part {
    /// Every name the part's headers give it, in order (usually one).
    pub names: Vec<String>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// Span of the part's content in the body.
    pub start: usize,
    pub end: usize,
    /// The content as text: valid UTF-8, after any transfer encoding is undone.
    pub text: Option<String>,
    /// The content was transfer-encoded: its text is not the bytes in the body.
    pub transfer_encoded: bool,
}

impl Part {
    /// The first name (what most frameworks use).
    pub fn name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// Whether the part is a file upload of a type that is not text (`filename` given, and a
    /// declared type other than `text/*`, JSON, XML or a form): content selectors leave it
    /// to the site as a file; the safety net still reads it when it is text.
    pub fn is_file(&self) -> bool {
        let texty = |ct: &str| {
            let e = MediaType::parse(ct).essence;
            e.starts_with("text/") || e.contains("json") || e.contains("xml") || e.contains("form")
        };
        self.filename.is_some() && !self.content_type.as_deref().is_none_or(texty)
    }

    /// Whether the part declares a media type of pictures, sound, video or fonts.
    pub fn is_media(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|ct| super::is_media_type(&MediaType::parse(ct).essence))
    }
}

/// Why a multipart body cannot be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultipartError {
    NoBoundary,
    BoundaryNotFound,
    Unclosed,
    PartWithoutHeaders,
    /// Several `boundary` parameters that each frame the body differently.
    AmbiguousBoundary,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipartError::NoBoundary => "multipart body without boundary",
            MultipartError::BoundaryNotFound => "multipart boundary not found",
            MultipartError::Unclosed => "multipart body without its closing boundary",
            MultipartError::PartWithoutHeaders => "multipart part without headers",
            MultipartError::AmbiguousBoundary => {
                "multipart body with several boundaries that frame it differently"
            }
        })
    }
}

impl std::error::Error for MultipartError {}

/// The boundary a body written as multipart starts with (`--boundary` on its first line),
/// for bodies whose type does not say.
pub fn sniff_boundary(body: &[u8]) -> Option<String> {
    let line_end = memchr::memchr(b'\n', body)?;
    let line = body[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&body[..line_end]);
    let b = line.strip_prefix(b"--")?;
    if b.is_empty() || b.len() > 200 || b.iter().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let b = std::str::from_utf8(b).ok()?;
    memchr::memmem::find(body, b"ontent-")?;
    Some(b.to_string())
}

/// Parses a multipart body with whichever of `boundaries` frames it; several distinct
/// boundaries that all frame it are ambiguous.
pub fn parse_multipart_any(body: &[u8], boundaries: &[&str]) -> Result<Vec<Part>, MultipartError> {
    let mut distinct: Vec<&str> = Vec::new();
    for b in boundaries {
        if !distinct.contains(b) {
            distinct.push(b);
        }
    }
    let Some(first) = distinct.first() else {
        return Err(MultipartError::NoBoundary);
    };
    if distinct.len() == 1 {
        return parse_multipart(body, first);
    }
    let mut framed = distinct
        .iter()
        .filter_map(|b| parse_multipart(body, b).ok());
    match (framed.next(), framed.next()) {
        (Some(parts), None) => Ok(parts),
        (Some(_), Some(_)) => Err(MultipartError::AmbiguousBoundary),
        (None, _) => parse_multipart(body, first),
    }
}

/// Splits a multipart body by its boundary.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    if boundary.is_empty() {
        return Err(MultipartError::NoBoundary);
    }
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let finder = memchr::memmem::Finder::new(d);
    // A delimiter counts at the start of the body or of a line.
    let positions: Vec<usize> = finder
        .find_iter(body)
        .filter(|&p| p == 0 || body[p - 1] == b'\n')
        .collect();
    let Some(&last_pos) = positions.last() else {
        return Err(MultipartError::BoundaryNotFound);
    };
    // Whatever follows the last delimiter is only the epilogue when that delimiter closes
    // the body (`--boundary--`); otherwise a part is cut off, unread.
    let last = last_pos + d.len();
    if !body[last..].starts_with(b"--") {
        return Err(MultipartError::Unclosed);
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
                None if part.starts_with(b"\r\n") => (0, 2),
                None => return Err(MultipartError::PartWithoutHeaders),
            },
        };
        let head = String::from_utf8_lossy(&part[..head_len]);
        let mut names = Vec::new();
        let mut filename = None;
        let mut content_type = None;
        let mut transfer = None;
        for (k, v) in header_lines(&head) {
            if k.eq_ignore_ascii_case("content-disposition") {
                let params = parse_params(v.split_once(';').map_or("", |(_, p)| p));
                for (pk, pv) in params {
                    match pk.as_str() {
                        "name" if !names.contains(&pv) => names.push(pv),
                        "filename" if filename.is_none() => filename = Some(pv),
                        _ => {}
                    }
                }
            } else if k.eq_ignore_ascii_case("content-type") && content_type.is_none() {
                content_type = Some(v.trim().to_string());
            } else if k.eq_ignore_ascii_case("content-transfer-encoding") {
                transfer = Some(v.trim().to_ascii_lowercase());
            }
        }
        let start = seg_start + head_len + sep;
        let content = &body[start.min(seg_end)..seg_end];
        let (text, transfer_encoded) = match transfer.as_deref() {
            Some("base64") => (decode_base64_lines(content), true),
            Some("quoted-printable") => (Some(decode_quoted_printable(content)), true),
            _ => (None, false),
        };
        let text = match (text, transfer_encoded) {
            (Some(bytes), true) => String::from_utf8(bytes).ok(),
            _ => std::str::from_utf8(content).ok().map(str::to_string),
        };
        parts.push(Part {
            names,
            filename,
            content_type,
            start: start.min(seg_end),
            end: seg_end,
            text,
            transfer_encoded,
        });
    }
    Ok(parts)
}

/// Header lines of a part as (name, value), folded continuation lines joined.
fn header_lines(head: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim(), v.trim().to_string()));
        }
    }
    out
}

fn decode_base64_lines(content: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let compact: Vec<u8> = content
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .ok()
}

fn decode_quoted_printable(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        if content[i] == b'=' {
            let rest = &content[i + 1..];
            if rest.starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            if rest.starts_with(b"\n") {
                i += 2;
                continue;
            }
            if rest.len() >= 2 {
                if let Some(x) = super::hex_byte(&rest[..2]) {
                    out.push(x);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(content[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_file_parts() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nhi there\r\n--XX\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX--\r\n";
        let parts = parse_multipart(body, "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].text.as_deref(), Some("hi there"));
        assert_eq!(&body[parts[0].start..parts[0].end], b"hi there");
        assert!(parts[1].text.is_none());
        assert!(parts[1].is_media());
    }

    #[test]
    fn odd_disposition_parameters_still_name_the_part() {
        for disposition in [
            "form-data; x; name=\"status\"",
            "form-data; name=status",
            "form-data; name*=UTF-8''status",
            "form-data; other=\"a;b\"; name=\"status\"",
            "attachment; NAME=\"status\"",
        ] {
            let body = format!(
                "--b\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\nsecret\r\n--b--\r\n"
            );
            let parts = parse_multipart(body.as_bytes(), "b").unwrap();
            assert_eq!(parts[0].names, ["status"], "{disposition}");
            assert_eq!(parts[0].text.as_deref(), Some("secret"), "{disposition}");
        }
        let body = "--b\r\nContent-Disposition: form-data; name=\"a\"; name=\"status\"\r\n\r\nx\r\n--b--\r\n";
        let parts = parse_multipart(body.as_bytes(), "b").unwrap();
        assert_eq!(parts[0].names, ["a", "status"]);
    }

    #[test]
    fn transfer_encodings_are_undone_for_inspection() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"status\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nAKIA=49OSFODNN7EXAMPLE\r\n--b\r\nContent-Disposition: form-data; name=\"t\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n";
        let parts = parse_multipart(body.as_bytes(), "b").unwrap();
        assert_eq!(parts[0].text.as_deref(), Some("AKIAIOSFODNN7EXAMPLE"));
        assert!(parts[0].transfer_encoded);
        assert_eq!(parts[1].text.as_deref(), Some("hello"));
    }

    #[test]
    fn boundaries() {
        let body = b"--one\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--one--\r\n";
        assert!(parse_multipart_any(body, &["one", "two"]).is_ok());
        assert_eq!(sniff_boundary(body).as_deref(), Some("one"));
        let media = MediaType::parse("multipart/form-data; boundary=one; boundary=\"two\"");
        assert_eq!(media.essence, "multipart/form-data");
        assert_eq!(
            media.param_values("boundary").collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(
            MediaType::parse("application/x-www-form-urlencoded, text/plain").essence,
            "application/x-www-form-urlencoded"
        );
    }
}
