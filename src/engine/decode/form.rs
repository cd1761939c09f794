//! `application/x-www-form-urlencoded` bodies and query strings: pairs with the spans of
//! their encoded values, so that a redaction re-encodes one value and leaves every other
//! byte as it came.

/// One `key=value` pair of a form body or a query string, with the span of its encoded value.
#[derive(Clone, Debug)]
pub struct FormPair {
    pub key: String,
    pub value: String,
    pub value_start: usize,
    pub value_end: usize,
}

/// Percent-decodes a form component (`+` is a space); invalid UTF-8 is replaced.
pub fn form_decode(s: &[u8]) -> String {
    String::from_utf8_lossy(&form_decode_bytes(s)).into_owned()
}

/// The bytes a form component spells: `+` is a space, `%XX` the byte it names.
pub fn form_decode_bytes(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match super::hex_byte(&s[i + 1..i + 3]) {
                Some(b) => {
                    out.push(b);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Encodes a form component the way browsers do (`application/x-www-form-urlencoded`).
pub fn form_encode(s: &str) -> String {
    encode_component(s, "+")
}

/// Encodes a value in the style of `original` (its encoded bytes): spaces as `%20` when the
/// original wrote them so, else as `+`.
pub fn form_encode_like(s: &str, original: &[u8]) -> String {
    let space = if memchr::memmem::find(original, b"%20").is_some() && !original.contains(&b'+') {
        "%20"
    } else {
        "+"
    };
    encode_component(s, space)
}

fn encode_component(s: &str, space: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push_str(space),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Splits a form body or query string into pairs, at `&`. A segment without `=` is a key
/// with an empty value.
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

/// The pairs some frameworks also see where a `;` separates parameters (older Rack,
/// Python before 3.10, Java servlet containers): the `;`-separated pieces of every pair that
/// holds one, as pairs of their own. Empty when no value holds a `;` followed by `=`.
pub fn semicolon_pairs(body: &[u8], pairs: &[FormPair]) -> Vec<FormPair> {
    let mut out = Vec::new();
    for p in pairs {
        // The whole segment `key=value` as written: from the key's start to the value's end.
        let seg_end = p.value_end;
        let seg_start = body[..p.value_start.min(body.len())]
            .iter()
            .rposition(|&b| b == b'&')
            .map_or(0, |i| i + 1);
        let seg = &body[seg_start..seg_end];
        if !seg.contains(&b';') {
            continue;
        }
        let mut start = seg_start;
        for piece in seg.split(|&b| b == b';') {
            let end = start + piece.len();
            if let Some(eq) = piece.iter().position(|&b| b == b'=') {
                out.push(FormPair {
                    key: form_decode(&piece[..eq]),
                    value: form_decode(&body[start + eq + 1..end]),
                    value_start: start + eq + 1,
                    value_end: end,
                });
            }
            start = end + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs = parse_form(b"status=hello+w%C3%B6rld%21&x=1&flag");
        assert_eq!(pairs[0].value, "hello wörld!");
        assert_eq!(form_encode(&pairs[0].value), "hello+w%C3%B6rld%21");
        assert_eq!(pairs[2].key, "flag");
        assert_eq!(form_decode(b"%zz%4"), "%zz%4");
        assert_eq!(form_decode(b"%+1"), "% 1");
    }

    #[test]
    fn encoding_style_is_kept() {
        assert_eq!(form_encode_like("a b", b"x%20y"), "a%20b");
        assert_eq!(form_encode_like("a b", b"x+y"), "a+b");
    }

    #[test]
    fn semicolons_as_separators() {
        let body = b"a=1;status=secret&b=2";
        let pairs = parse_form(body);
        let semi = semicolon_pairs(body, &pairs);
        assert_eq!(semi.len(), 2);
        assert_eq!(
            (semi[1].key.as_str(), semi[1].value.as_str()),
            ("status", "secret")
        );
        assert_eq!(&body[semi[1].value_start..semi[1].value_end], b"secret");
    }
}
