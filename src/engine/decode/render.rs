//! A text as a page shows it when the site renders markup: what the reader sees, not what
//! was typed.
//!
//! Sites that take HTML (Medium's API `content`, Tumblr's legacy `body`, rich-text editors)
//! or Markdown (Reddit, forums) show `<b>4539</b>148803436467`, `&#52;539…` and
//! `4539**1488**03436467` as one card number, and `BLUE<i></i>HERON` or `BLUE**HERON**` as
//! one word. The rendered reading is inspected beside the text as sent (a field of its
//! own, never rewritten: a redaction only it needs blocks the request). It is generous:
//! markup that a given site would show literally is removed all the same, since the
//! gateway cannot know which sites render what.
//!
//! - HTML: comments removed; tags removed, those that break a line or a block (`<p>`,
//!   `<br>`, `<li>`, `<td>`…) read as a space; character references decoded (decimal and
//!   hexadecimal, with or without their `;`, and the named ones text uses: `&nbsp;`,
//!   `&shy;`, `&zwj;`, `&amp;`…).
//! - A number written with a fraction or an exponent whose value is whole, as JavaScript
//!   shows it once cast to text (`4.539148803436467e15` is `4539148803436467`).
//! - Markdown: the emphasis, strike-through and code delimiters (`*`, `~`, `` ` ``) beside
//!   a letter or digit removed, and a backslash escaping punctuation removed.

/// `text` as a page that renders its markup shows it; `None` when it holds none.
pub fn rendered(text: &str) -> Option<String> {
    // A number written with a fraction or an exponent, as a site casting it to text shows
    // it (`4.539148803436467e15` is the digits of a card).
    if let Some(shown) = super::json::number_as_shown(text.trim()) {
        return Some(shown);
    }
    if !text
        .bytes()
        .any(|b| matches!(b, b'<' | b'&' | b'*' | b'~' | b'`' | b'\\'))
    {
        return None;
    }
    let html = if text.contains(['<', '&']) {
        std::borrow::Cow::Owned(html_text(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    let out = if html.contains(['\\', '*', '~', '`']) {
        markdown_text(&html)
    } else {
        html.into_owned()
    };
    (out != text).then_some(out)
}

/// Elements that break the flow of text: the text on either side is not one word.
const BREAKING: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "img",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

fn html_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['<', '&']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("<!--") {
            // An unclosed comment hides the rest of the text.
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        if rest.starts_with('<') {
            let tag_start = rest[1..].chars().next();
            if tag_start
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!' || c == '?')
            {
                if let Some(end) = rest.find('>') {
                    let name: String = rest[1..end]
                        .trim_start_matches('/')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if BREAKING.contains(&name.as_str()) {
                        out.push(' ');
                    }
                    rest = &rest[end + 1..];
                    continue;
                }
            }
            out.push('<');
            rest = &rest[1..];
            continue;
        }
        // A character reference.
        match reference(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference at the start of `s` (which starts with `&`) stands for, and
/// the reference's length.
fn reference(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .bytes()
            .take_while(|b| (*b as char).is_digit(radix))
            .count();
        if len == 0 || len > 8 {
            return None;
        }
        let n = u32::from_str_radix(&digits[..len], radix).ok()?;
        // As browsers do: no code point is U+FFFD.
        let c = char::from_u32(n)
            .filter(|c| *c != '\0')
            .unwrap_or('\u{fffd}');
        let semi = usize::from(digits[len..].starts_with(';'));
        return Some((c, 1 + skip + len + semi));
    }
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if !body[name_len..].starts_with(';') {
        return None;
    }
    let c = match &body[..name_len] {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "shy" => '\u{ad}',
        "zwj" => '\u{200d}',
        "zwnj" => '\u{200c}',
        "ensp" => '\u{2002}',
        "emsp" => '\u{2003}',
        "thinsp" => '\u{2009}',
        "hyphen" | "dash" => '\u{2010}',
        "ndash" => '\u{2013}',
        "mdash" => '\u{2014}',
        "minus" => '\u{2212}',
        "period" => '.',
        "commat" => '@',
        "colon" => ':',
        "sol" => '/',
        "lowbar" => '_',
        _ => return None,
    };
    Some((c, 1 + name_len + 1))
}

fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['\\', '*', '~', '`']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let c = rest.as_bytes()[0];
        if c == b'\\' {
            match rest[1..].chars().next() {
                Some(n) if n.is_ascii_punctuation() => {
                    out.push(n);
                    rest = &rest[2..];
                }
                _ => {
                    out.push('\\');
                    rest = &rest[1..];
                }
            }
            continue;
        }
        // The whole run of delimiters, dropped when a letter or digit touches it.
        let run = rest.bytes().take_while(|&b| b == c).count();
        let before = out.chars().next_back().is_some_and(char::is_alphanumeric);
        let after = rest[run..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric);
        if !(before || after) {
            out.push_str(&rest[..run]);
        }
        rest = &rest[run..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_reads_as_the_page_shows_it() {
        for (typed, shown) in [
            ("card <b>4539</b>148803436467", "card 4539148803436467"),
            (
                "card &#52;539 &#x31;488&#32;0343 6467",
                "card 4539 1488 0343 6467",
            ),
            ("card &#52539", "card \u{cd3b}"),
            ("BLUE<i></i>HERON", "BLUEHERON"),
            ("BLUE<!-- x -->HERON", "BLUEHERON"),
            ("BLUE&shy;HERON &amp; co", "BLUE\u{ad}HERON & co"),
            ("<p>4539</p><p>1488</p>", " 4539  1488 "),
            ("4539**1488**03436467", "4539148803436467"),
            ("BLUE~~x~~HERON `KESTREL`", "BLUExHERON KESTREL"),
            (r"BLUE\_HERON", "BLUE_HERON"),
            ("a < b, 3 * 4 = 12 & done", "a < b, 3 * 4 = 12 & done"),
        ] {
            assert_eq!(
                rendered(typed).unwrap_or_else(|| typed.to_string()),
                shown,
                "{typed}"
            );
        }
        assert_eq!(
            rendered(" 4.539148803436467e15").as_deref(),
            Some("4539148803436467")
        );
        assert_eq!(rendered("4539148803436467"), None);
        assert_eq!(rendered("plain words, nothing else"), None);
        assert_eq!(rendered("a < b & c"), None);
        // An unclosed tag or comment.
        assert_eq!(rendered("x <b y"), None);
        assert_eq!(rendered("x <!-- y").as_deref(), Some("x "));
    }
}
