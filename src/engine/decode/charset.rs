//! Bodies in a charset other than UTF-8.
//!
//! A site's framework may read a body in the charset it declares (a Java servlet's
//! `getParameter`, ASP.NET) or that its bytes show (Jackson and .NET read JSON in UTF-16
//! by its byte-order mark or, without one, by where the zero bytes are, as RFC 4627
//! described); another framework reads the same bytes as UTF-8 (Rack ignores the charset).
//! The gateway reads both:
//! - a body in **UTF-16** (by its byte-order mark, its declared charset, or, for JSON and
//!   untyped bodies, the zero bytes of its first four bytes) whose bytes cannot be read as
//!   UTF-8 text (they hold zero bytes or are not UTF-8), declared JSON or text or untyped
//!   and a JSON object or array in UTF-16, is transcoded to UTF-8, read as any
//!   other body and written back in UTF-16: [`Charset::Utf16`] (its bytes as sent are read
//!   too, for a reader that ignores the mark: [`BodyText::sent`]). Text that is not valid
//!   UTF-16 (an odd length, a lone surrogate) is not transcoded;
//! - a body in **UTF-32** (which `encoding_rs` does not know; Jackson reads it), by its
//!   mark, its label or RFC 4627's four bytes, is transcoded and written back in the same
//!   way when its bytes cannot be read as its type ([`Charset::Utf32`]);
//! - any other declared charset (`windows-1252`, `koi8-r`, `shift_jis`, or UTF-16 that
//!   could not be transcoded) leaves the body's bytes as they are and adds a reading of the
//!   whole body in that charset, a form's escapes undone first ([`Charset::Also`]): the
//!   detectors see `BLUEHÉRON` where the bytes as UTF-8 held an invalid byte. What is found
//!   only there cannot be rewritten in place, so a redaction there blocks the request;
//! - a form or a multipart value that declares no charset and is not UTF-8 is read in
//!   ISO-8859-1 too, the servlet default when no charset is given.
//!
//! Labels are WHATWG's (`latin1` and `iso-8859-1` are `windows-1252`, `utf-16` is
//! little-endian unless the bytes say otherwise), through `encoding_rs`.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

use super::form::FormPair;
use super::multipart::{MediaType, Part};

/// How a body's charset shapes its readings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (or ASCII): the bytes are read as they are.
    #[default]
    Utf8,
    /// The body was UTF-16 in this byte order: the decoded body holds it transcoded to
    /// UTF-8, and a rewritten body is written back in UTF-16.
    Utf16(ByteOrder),
    /// The same for UTF-32.
    Utf32(ByteOrder),
    /// The bytes are read as they are, and also as text in this charset.
    Also(&'static Encoding),
}

/// The byte order of UTF-16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn encoding(self) -> &'static Encoding {
        match self {
            ByteOrder::Little => UTF_16LE,
            ByteOrder::Big => UTF_16BE,
        }
    }
}

/// The byte order the zero bytes of UTF-16 text that is mostly ASCII show: `x\0y\0` is
/// little-endian, `\0x\0y` big-endian. Looks at the first 64 bytes.
fn zero_byte_order(raw: &[u8]) -> Option<ByteOrder> {
    let head = &raw[..raw.len().min(64) & !1];
    let (mut even, mut odd) = (0, 0);
    for pair in head.chunks_exact(2) {
        even += usize::from(pair[0] == 0);
        odd += usize::from(pair[1] == 0);
    }
    match (even, odd) {
        (0, 0) => None,
        (e, o) if o > e => Some(ByteOrder::Little),
        (e, o) if e > o => Some(ByteOrder::Big),
        _ => None,
    }
}

/// RFC 4627's detection of JSON's encoding from its first four bytes (two ASCII
/// characters, each with a zero byte beside it).
fn json_byte_order(raw: &[u8]) -> Option<ByteOrder> {
    match raw {
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => Some(ByteOrder::Big),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => Some(ByteOrder::Little),
        _ => None,
    }
}

/// The charset `media` declares (its first `charset` parameter), when it is one
/// `encoding_rs` knows and not UTF-8.
fn declared(media: &MediaType) -> Option<&'static Encoding> {
    let label = media.param_values("charset").next()?;
    Encoding::for_label(label.trim().as_bytes()).filter(|e| *e != UTF_8)
}

/// How a body's bytes are read.
#[derive(Debug)]
pub struct BodyText {
    /// The bytes to read: the body's, or UTF-16 transcoded to UTF-8.
    pub bytes: Vec<u8>,
    pub charset: Charset,
    /// The body's own bytes when `bytes` is their transcoding: a reader that takes no
    /// notice of UTF-16 (a byte-order mark ignored) reads these, so they are read too.
    pub sent: Option<Vec<u8>>,
}

/// How to read `raw`, a decompressed body sent under `media` (see [`BodyText`]). `sniff`:
/// whether the body may be JSON in UTF-16 without a byte-order mark (a JSON or untyped
/// body).
pub fn read_as(media: &MediaType, raw: Vec<u8>, sniff: bool) -> BodyText {
    let as_is = |bytes: Vec<u8>, charset: Charset| BodyText {
        bytes,
        charset,
        sent: None,
    };
    // Transcoded only where the bytes as sent cannot be read as the declared type (JSON
    // holding zero bytes or not UTF-8, text not UTF-8): a form or an untyped body keeps its
    // bytes, which Rack and PHP read as a form whatever the mark says, and its UTF-16 form
    // is read beside them (`utf16_form`), as is, for an untyped body, the JSON its UTF-16
    // or UTF-32 spells (`wide_json`).
    let essence = media.essence.as_str();
    let not_utf8 = std::str::from_utf8(&raw).is_err();
    let not_text = not_utf8 || memchr::memchr(0, &raw).is_some();
    if let Some(order) = utf32_order(media, &raw, sniff) {
        let typed = super::is_json_type(essence) || essence.starts_with("text/");
        if typed && not_text {
            if let Some(text) = decode_utf32(&raw, order) {
                return BodyText {
                    bytes: text.into_bytes(),
                    charset: Charset::Utf32(order),
                    sent: Some(raw),
                };
            }
        }
    }
    let by_bom = Encoding::for_bom(&raw)
        .map(|(e, _)| e)
        .filter(|e| *e != UTF_8);
    let order = |e: &'static Encoding| {
        if e == UTF_16BE {
            Some(ByteOrder::Big)
        } else if e == UTF_16LE {
            Some(ByteOrder::Little)
        } else {
            None
        }
    };
    let utf16 = match by_bom.or_else(|| declared(media)) {
        Some(e) if by_bom.is_some() => order(e),
        // A declared UTF-16 without a byte-order mark: the zero bytes say which order,
        // whatever the label's order.
        Some(e) => match order(e) {
            Some(label) => Some(zero_byte_order(&raw).unwrap_or(label)),
            None => return as_is(raw, Charset::Also(e)),
        },
        None if sniff => json_byte_order(&raw),
        None => None,
    };
    let Some(order) = utf16 else {
        return as_is(raw, Charset::Utf8);
    };
    let as_bytes_unreadable = if super::is_json_type(essence) {
        not_text
    } else {
        essence.starts_with("text/") && not_utf8
    };
    if as_bytes_unreadable {
        let transcoded = order
            .encoding()
            .decode_without_bom_handling_and_without_replacement(&raw);
        if let Some(text) = transcoded {
            return BodyText {
                bytes: text.into_owned().into_bytes(),
                charset: Charset::Utf16(order),
                sent: Some(raw),
            };
        }
    }
    as_is(raw, Charset::Also(order.encoding()))
}

/// The byte order of a body in UTF-32, which `encoding_rs` (WHATWG) does not know but
/// Jackson reads: by its byte-order mark, its `charset` label (`utf-32`, `utf-32le`,
/// `utf-32be`), or for JSON and untyped bodies (`sniff`) RFC 4627's first four bytes (one
/// ASCII character and three zero bytes). `None` unless its length is whole units.
fn utf32_order(media: &MediaType, raw: &[u8], sniff: bool) -> Option<ByteOrder> {
    if raw.is_empty() || !raw.len().is_multiple_of(4) {
        return None;
    }
    let by_zeros = match raw {
        [0, 0, 0, a, ..] if *a != 0 => Some(ByteOrder::Big),
        [a, 0, 0, 0, ..] if *a != 0 => Some(ByteOrder::Little),
        _ => None,
    };
    match raw {
        [0, 0, 0xfe, 0xff, ..] => return Some(ByteOrder::Big),
        [0xff, 0xfe, 0, 0, ..] => return Some(ByteOrder::Little),
        _ => {}
    }
    let label = media
        .param_values("charset")
        .next()
        .map(|l| l.trim().to_ascii_lowercase());
    match label.as_deref() {
        Some("utf-32be") => Some(ByteOrder::Big),
        Some("utf-32le") => Some(ByteOrder::Little),
        // Without a mark, big-endian unless the zero bytes say otherwise (Unicode, D101).
        Some("utf-32" | "ucs-4" | "iso-10646-ucs-4") => Some(by_zeros.unwrap_or(ByteOrder::Big)),
        _ if sniff => by_zeros,
        _ => None,
    }
}

/// UTF-32 text in `order` (a byte-order mark kept as U+FEFF); `None` when a unit is not a
/// Unicode scalar value.
fn decode_utf32(raw: &[u8], order: ByteOrder) -> Option<String> {
    raw.chunks_exact(4)
        .map(|u| {
            let u = [u[0], u[1], u[2], u[3]];
            char::from_u32(match order {
                ByteOrder::Little => u32::from_le_bytes(u),
                ByteOrder::Big => u32::from_be_bytes(u),
            })
        })
        .collect()
}

/// `text` in UTF-32 of `order` (a byte-order mark it holds is written as one).
pub fn encode_utf32(text: &str, order: ByteOrder) -> Vec<u8> {
    text.chars()
        .flat_map(|c| match order {
            ByteOrder::Little => u32::from(c).to_le_bytes(),
            ByteOrder::Big => u32::from(c).to_be_bytes(),
        })
        .collect()
}

/// The pairs of a form body in UTF-16 (`encoding`), their value spans in the body's own
/// bytes: an alternative reading of a form whose bytes stay as sent (inspected, never
/// rewritten). Units that are not UTF-16 read as U+FFFD.
pub fn utf16_form(raw: &[u8], encoding: &'static Encoding) -> Vec<FormPair> {
    let order = if encoding == UTF_16BE {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };
    let (text, at) = mapped(raw, Wide::Utf16(order));
    let mut pairs = super::form::parse_form(text.as_bytes());
    for p in &mut pairs {
        p.value_start = at[p.value_start];
        p.value_end = at[p.value_end];
    }
    pairs
}

/// Text in units wider than a byte.
#[derive(Clone, Copy)]
enum Wide {
    Utf16(ByteOrder),
    Utf32(ByteOrder),
}

/// `raw` read as `wide` text (units that are not Unicode read as U+FFFD), and for each
/// UTF-8 offset of that text (and its end) the offset in `raw` it came from.
fn mapped(raw: &[u8], wide: Wide) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(raw.len());
    let mut at = Vec::with_capacity(raw.len() + 1);
    let mut offset = 0;
    let mut push = |c: char, width: usize| {
        text.push(c);
        at.extend(std::iter::repeat_n(offset, c.len_utf8()));
        offset += width;
    };
    match wide {
        Wide::Utf16(order) => {
            let units = raw.chunks_exact(2).map(|p| match order {
                ByteOrder::Big => u16::from_be_bytes([p[0], p[1]]),
                ByteOrder::Little => u16::from_le_bytes([p[0], p[1]]),
            });
            for c in char::decode_utf16(units) {
                match c {
                    Ok(c) => push(c, 2 * c.len_utf16()),
                    Err(_) => push(char::REPLACEMENT_CHARACTER, 2),
                }
            }
        }
        Wide::Utf32(order) => {
            for u in raw.chunks_exact(4) {
                let u = [u[0], u[1], u[2], u[3]];
                let n = match order {
                    ByteOrder::Big => u32::from_be_bytes(u),
                    ByteOrder::Little => u32::from_le_bytes(u),
                };
                push(char::from_u32(n).unwrap_or(char::REPLACEMENT_CHARACTER), 4);
            }
        }
    }
    at.push(offset);
    (text, at)
}

/// The JSON object or array an untyped body spells in UTF-32 or UTF-16 (by its mark or
/// RFC 4627's zero bytes), its spans mapped into the body's own bytes: what a site that
/// reads the body as JSON whatever its type (Jackson) reads, beside the form Rack reads
/// in the same bytes. Inspected, never rewritten.
pub fn wide_json(raw: &[u8]) -> Option<super::JsonNode> {
    let untyped = MediaType::parse("");
    let wide = match utf32_order(&untyped, raw, true) {
        Some(order) => Wide::Utf32(order),
        None => {
            let order = match Encoding::for_bom(raw) {
                Some((e, _)) if e == UTF_16LE => ByteOrder::Little,
                Some((e, _)) if e == UTF_16BE => ByteOrder::Big,
                Some(_) => return None,
                None => json_byte_order(raw)?,
            };
            Wide::Utf16(order)
        }
    };
    let (text, at) = mapped(raw, wide);
    let mut node = super::parse_json(text.trim_start_matches('\u{feff}'))
        .ok()
        .filter(super::JsonNode::is_container)?;
    // Spans of the text after its mark, then of the bytes.
    let mark = text.len() - text.trim_start_matches('\u{feff}').len();
    node.map_spans(&|offset| at[offset + mark]);
    Some(node)
}

/// `text` in UTF-16 of `order` (a byte-order mark it holds is written as one).
pub fn encode_utf16(text: &str, order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for unit in text.encode_utf16() {
        out.extend_from_slice(&match order {
            ByteOrder::Little => unit.to_le_bytes(),
            ByteOrder::Big => unit.to_be_bytes(),
        });
    }
    out
}

/// `bytes` read as text in `encoding` (invalid sequences become U+FFFD); `None` when that
/// reading is the bytes' UTF-8 one (an ASCII-compatible charset and ASCII bytes).
pub fn reading(encoding: &'static Encoding, bytes: &[u8]) -> Option<String> {
    // ISO-2022-JP switches with escapes in 7-bit text: an ASCII body is not ASCII text.
    if encoding.is_ascii_compatible() && bytes.is_ascii() && memchr::memchr(0x1b, bytes).is_none() {
        return None;
    }
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Some(text.into_owned())
}

/// The charset a multipart part's own Content-Type declares, when it is not UTF-8.
pub fn part_charset(part: &Part) -> Option<&'static Encoding> {
    declared(&MediaType::parse(part.content_type.as_deref()?))
}

/// The charset of a form body that declares none: UTF-8, unless its values are not UTF-8
/// once their escapes are undone (`status=BLUEH%C9RON`); then they are also read in
/// ISO-8859-1 (as WHATWG, `windows-1252`), which a servlet uses when no charset is given.
pub fn undeclared_form(raw: &[u8]) -> Charset {
    if escapes_spell_utf8(raw) {
        Charset::Utf8
    } else {
        Charset::Also(WINDOWS_1252)
    }
}

/// Whether the bytes a form component or query string spells, once its `%XX` escapes are
/// undone, are UTF-8; checked in stack-sized chunks, without a decoded copy.
pub fn escapes_spell_utf8(raw: &[u8]) -> bool {
    if memchr::memchr(b'%', raw).is_none() {
        return std::str::from_utf8(raw).is_ok();
    }
    let mut chunk = [0u8; 1024];
    // Bytes in `chunk`: a sequence cut by the chunk's end is carried to the next.
    let mut len = 0;
    let mut i = 0;
    loop {
        while len < chunk.len() && i < raw.len() {
            let escaped = (raw[i] == b'%' && i + 2 < raw.len())
                .then(|| super::hex_byte(&raw[i + 1..i + 3]))
                .flatten();
            chunk[len] = escaped.unwrap_or(raw[i]);
            i += if escaped.is_some() { 3 } else { 1 };
            len += 1;
        }
        match std::str::from_utf8(&chunk[..len]) {
            Ok(_) => len = 0,
            // A sequence the chunk's end cut short: carry it (at most 3 bytes).
            Err(e) if e.error_len().is_none() && i < raw.len() => {
                let valid = e.valid_up_to();
                chunk.copy_within(valid..len, 0);
                len -= valid;
            }
            Err(_) => return false,
        }
        if i >= raw.len() {
            return len == 0;
        }
    }
}

/// A query string's or a path's text as a servlet reads it when its escapes spell bytes
/// that are not UTF-8 (`q=BLUEH%C9RON`): ISO-8859-1 (as WHATWG, `windows-1252`), the
/// default of a connector that declares no URI encoding. `None` when they are UTF-8.
pub fn undeclared_target_reading(spelled: &[u8]) -> Option<String> {
    if std::str::from_utf8(spelled).is_ok() {
        return None;
    }
    let (text, _) = WINDOWS_1252.decode_without_bom_handling(spelled);
    Some(text.into_owned())
}

/// Multipart parts whose bytes are not UTF-8: their text is read in the charset the part
/// declares, or the body (`body`), or else, for a value (a part without a filename) or a
/// text file (`text/*`, or no type, which RFC 7578 makes `text/plain`), in ISO-8859-1 (a
/// servlet reads a part's value in the request's charset, ISO-8859-1 when none is given;
/// Commons FileUpload in the part's). That text is not the bytes in the body, so it is
/// never rewritten (`transfer_encoded`).
pub fn read_parts(parts: &mut [Part], raw: &[u8], body: Option<&'static Encoding>) {
    for p in parts
        .iter_mut()
        .filter(|p| p.text.is_none() && !p.transfer_encoded)
    {
        if p.is_media() {
            continue;
        }
        let text_file = p
            .content_type
            .as_deref()
            .is_none_or(|ct| MediaType::parse(ct).essence.starts_with("text/"));
        let value = (p.filename.is_none() || text_file).then_some(WINDOWS_1252);
        let Some(encoding) = part_charset(p).or(body).or(value) else {
            continue;
        };
        let Some(bytes) = raw.get(p.start..p.end) else {
            continue;
        };
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        p.text = Some(text.into_owned());
        p.transfer_encoded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        encode_utf16(s, ByteOrder::Little)
    }

    #[test]
    fn utf32_by_its_mark_its_label_or_its_zero_bytes_is_transcoded() {
        let be = |s: &str| encode_utf32(s, ByteOrder::Big);
        let le = |s: &str| encode_utf32(s, ByteOrder::Little);
        let json = media("application/json");
        assert_eq!(
            read(&json, le("\u{feff}{\"a\":\"\u{1f600}\"}"), true),
            (
                "\u{feff}{\"a\":\"\u{1f600}\"}".as_bytes().to_vec(),
                Charset::Utf32(ByteOrder::Little)
            )
        );
        assert_eq!(
            read(&json, be("{\"a\":1}"), true).1,
            Charset::Utf32(ByteOrder::Big)
        );
        assert_eq!(
            read(&media("application/json; charset=UTF-32"), le("[1]"), false).1,
            Charset::Utf32(ByteOrder::Little)
        );
        assert_eq!(
            read(&media("text/plain; charset=utf-32be"), be("hi"), false).1,
            Charset::Utf32(ByteOrder::Big)
        );
        // Untyped: the bytes stay as sent (Rack reads them as a form), and a JSON object or
        // array they spell is read beside them, its spans in those bytes.
        assert_eq!(read(&media(""), be("[1]"), true).1, Charset::Utf8);
        let body = be("{\"a\":\"hi\"}");
        let node = wide_json(&body).expect("UTF-32 JSON");
        let leaf = node.child("a").unwrap();
        assert_eq!((leaf.start, leaf.end), (20, 36));
        assert!(wide_json(&be("a=1")).is_none());
        // A unit beyond Unicode is not UTF-32.
        let mut bad = be("{\"a\":1}");
        bad.extend_from_slice(&[0, 0x11, 0, 0]);
        assert_ne!(read(&json, bad, true).1, Charset::Utf32(ByteOrder::Big));
        // A form keeps its bytes.
        assert_eq!(
            read(
                &media("application/x-www-form-urlencoded"),
                le("a=1"),
                false
            )
            .1,
            Charset::Utf8
        );
    }

    #[test]
    fn escapes_spell_utf8_across_chunks() {
        // A two-byte sequence cut by every chunk boundary, and a lone Latin-1 byte at the end.
        for pad in 0..4 {
            let mut raw = "a".repeat(1023 + pad);
            raw.push_str(&"%C3%A9".repeat(700));
            assert!(escapes_spell_utf8(raw.as_bytes()), "pad {pad}");
            raw.push_str("%E9");
            assert!(!escapes_spell_utf8(raw.as_bytes()), "pad {pad}");
        }
        assert!(escapes_spell_utf8(b"q=caf%C3%A9&x=%zz%4"));
        assert!(!escapes_spell_utf8(b"q=BLUEH%C9RON"));
        assert!(!escapes_spell_utf8(b"q=%E2%82"));
        assert!(!escapes_spell_utf8(b"q=\xff"));
        assert_eq!(
            undeclared_target_reading(b"BLUEH\xc9RON").as_deref(),
            Some("BLUEH\u{c9}RON")
        );
        assert_eq!(undeclared_target_reading("caf\u{e9}".as_bytes()), None);
    }

    fn media(s: &str) -> MediaType {
        MediaType::parse(s)
    }

    /// The bytes to read and the charset; the bytes as sent are kept exactly when they
    /// were transcoded.
    fn read(m: &MediaType, raw: Vec<u8>, sniff: bool) -> (Vec<u8>, Charset) {
        let r = read_as(m, raw.clone(), sniff);
        let transcoded = matches!(r.charset, Charset::Utf16(_) | Charset::Utf32(_));
        assert_eq!(r.sent, transcoded.then_some(raw));
        (r.bytes, r.charset)
    }

    #[test]
    fn utf16_by_its_mark_its_label_or_its_zero_bytes_is_transcoded() {
        let with_mark = utf16le("\u{feff}{\"text\":\"BLUEH\u{415}RON\"}");
        let (text, cs) = read(&media("application/json"), with_mark.clone(), true);
        assert_eq!(cs, Charset::Utf16(ByteOrder::Little));
        assert_eq!(text, "\u{feff}{\"text\":\"BLUEH\u{415}RON\"}".as_bytes());
        assert_eq!(
            encode_utf16(std::str::from_utf8(&text).unwrap(), ByteOrder::Little),
            with_mark
        );

        // A form keeps its bytes (Rack reads those); labelled little-endian, but the zero
        // bytes say big-endian. Its UTF-16 pairs point into those bytes.
        let be = encode_utf16("status=caf\u{e9}&x=1", ByteOrder::Big);
        let form = media("application/x-www-form-urlencoded; charset=UTF-16");
        let (bytes, cs) = read(&form, be.clone(), false);
        assert_eq!((bytes, cs), (be.clone(), Charset::Also(UTF_16BE)));
        let pairs = utf16_form(&be, UTF_16BE);
        assert_eq!(
            (pairs[0].key.as_str(), pairs[0].value.as_str()),
            ("status", "caf\u{e9}")
        );
        assert_eq!((pairs[0].value_start, pairs[0].value_end), (14, 22));
        assert_eq!((pairs[1].value_start, pairs[1].value_end), (28, 30));

        // JSON without a mark or a label: RFC 4627's four bytes; not for other types. An
        // untyped body keeps its bytes and is read in UTF-16 too, and the JSON its UTF-16
        // spells beside them, its spans in the bytes (after a mark too).
        let bare = utf16le("{\"a\":1}");
        assert_eq!(
            read(&media("application/json"), bare.clone(), true).1,
            Charset::Utf16(ByteOrder::Little)
        );
        assert_eq!(
            read(&media(""), bare.clone(), true).1,
            Charset::Also(UTF_16LE)
        );
        let marked = utf16le("\u{feff}{\"a\":\"hi\"}");
        let leaf = wide_json(&marked).expect("UTF-16 JSON");
        let leaf = leaf.child("a").unwrap();
        assert_eq!(&marked[leaf.start..leaf.end], utf16le("\"hi\"").as_slice());
        assert!(wide_json(&utf16le("a=1&b={}")).is_none());
        assert_eq!(read(&media("text/plain"), bare, false).1, Charset::Utf8);
    }

    #[test]
    fn what_utf8_can_read_or_utf16_cannot_stays_as_sent() {
        // A lying label on a UTF-8 body: the bytes are the reading, UTF-16 an extra one.
        let form = media("application/x-www-form-urlencoded; charset=utf-16");
        let (bytes, cs) = read(&form, b"status=hello".to_vec(), false);
        assert_eq!(
            (bytes.as_slice(), cs),
            (&b"status=hello"[..], Charset::Also(UTF_16LE))
        );
        // Odd length, or a lone surrogate: not UTF-16.
        let mut odd = utf16le("\u{feff}hi");
        odd.push(b'!');
        assert_eq!(read(&media(""), odd, true).1, Charset::Also(UTF_16LE));
        let lone = [0xff, 0xfe, 0x00, 0xd8, b'a', 0];
        assert_eq!(
            read(&media(""), lone.to_vec(), true).1,
            Charset::Also(UTF_16LE)
        );
        // UTF-8 is UTF-8, with or without a mark or a label.
        let (_, cs) = read(
            &media("text/plain; charset=utf-8"),
            "\u{feff}é".into(),
            false,
        );
        assert_eq!(cs, Charset::Utf8);
    }

    #[test]
    fn legacy_charsets_add_a_reading_of_what_is_not_ascii() {
        let latin = media("application/x-www-form-urlencoded; charset=ISO-8859-1");
        let (bytes, cs) = read(&latin, b"status=BLUEH\xc9RON".to_vec(), false);
        assert_eq!(bytes, b"status=BLUEH\xc9RON");
        let Charset::Also(enc) = cs else {
            panic!("{cs:?}")
        };
        assert_eq!(enc.name(), "windows-1252");
        assert_eq!(
            reading(enc, &bytes).as_deref(),
            Some("status=BLUEH\u{c9}RON")
        );
        assert_eq!(reading(enc, b"plain ascii"), None);
        let sjis = Encoding::for_label(b"shift_jis").unwrap();
        assert_eq!(
            reading(sjis, b"\x82\x54\x82\x53").as_deref(),
            Some("\u{ff15}\u{ff14}")
        );
        let jis = Encoding::for_label(b"iso-2022-jp").unwrap();
        assert!(reading(jis, b"\x1b$B#4#1\x1b(B").is_some());
        // An unknown label is no charset.
        assert_eq!(
            read(&media("text/plain; charset=x-none"), b"a".to_vec(), false).1,
            Charset::Utf8
        );
    }
}
