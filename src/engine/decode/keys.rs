//! Parameter names as frameworks read them.
//!
//! A selector names a parameter (`status`, `/variables/tweet_text`, `poll[options][]`); a
//! request may spell that name in ways some framework still takes for it:
//! - **case**: Go's `encoding/json` matches struct fields without regard to case (and folds
//!   `ſ` to `s` and the Kelvin sign to `k`), Jackson can be configured to;
//! - **`.` and spaces**: PHP turns them into `_` in request variable names (and drops
//!   leading spaces), so `fb.api req_friendly_name` reaches a PHP site as
//!   `fb_api_req_friendly_name`;
//! - **brackets and dots**: Rack, PHP and `qs` read `a[b][]` as the nested path `a`, `b`,
//!   element; `qs` with `allowDots` reads `a.b` as `a`, `b`.
//!
//! The gateway cannot know which framework a site runs, so a name matches when *any* of
//! these readings makes it equal: it inspects more, never less.

use super::json::PtrSeg;

/// Folds one character the way the readings above compare names.
fn fold(c: char) -> char {
    match c {
        'ſ' => 's',
        '\u{212A}' => 'k',
        '.' | ' ' => '_',
        c => c.to_ascii_lowercase(),
    }
}

/// Whether a parameter written `key` is the one a selector calls `want`.
pub fn key_matches(want: &str, key: &str) -> bool {
    if want == key {
        return true;
    }
    let key = key.trim_start_matches(' ');
    // Folding maps one character to one: ASCII names of other lengths never match.
    if want.len() != key.len() && want.is_ascii() && key.is_ascii() {
        return false;
    }
    let mut a = want.chars().map(fold);
    let mut b = key.chars().map(fold);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// The segments of a parameter name read with brackets: `a[b][]` → `a`, `b`, `` (an
/// element). Text after the last `]` that is not a bracket is ignored, as PHP does.
pub fn bracket_segments(name: &str) -> Vec<&str> {
    let Some(open) = name.find('[') else {
        return vec![name];
    };
    let mut out = vec![&name[..open]];
    let mut rest = &name[open..];
    while let Some(r) = rest.strip_prefix('[') {
        match r.find(']') {
            Some(close) => {
                out.push(&r[..close]);
                rest = &r[close + 1..];
            }
            None => {
                // `a[b` : PHP keeps the whole name; so do we (as one more segment).
                out.push(r);
                break;
            }
        }
    }
    out
}

/// The ways a parameter name may be segmented: as written, with brackets, and with dots.
pub fn name_readings(name: &str) -> Vec<Vec<&str>> {
    let mut out = vec![vec![name]];
    if name.contains('[') {
        out.push(bracket_segments(name));
    }
    if name.contains('.') {
        out.push(name.split('.').collect());
    }
    out
}

/// How a parameter's name segments meet a selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    /// The parameter is the selected value, or lies inside it.
    Whole,
    /// The parameter names the first `n` segments of the selector; the rest may be inside
    /// its value (JSON in a form field).
    Prefix(usize),
}

/// Whether segments `name` (one reading of a parameter name) meet `selector`.
pub fn segments_match(selector: &[PtrSeg], name: &[&str]) -> Option<NameMatch> {
    let common = selector.len().min(name.len());
    for (s, n) in selector.iter().zip(name) {
        match s {
            PtrSeg::Any => {}
            PtrSeg::Key(k) => {
                if !key_matches(k, n) {
                    return None;
                }
            }
        }
    }
    if name.len() >= selector.len() {
        return Some(NameMatch::Whole);
    }
    // `/poll/options/*` meets a scalar `poll[options]`: the whole value is inspected.
    if selector.len() == name.len() + 1 && selector[common] == PtrSeg::Any {
        return Some(NameMatch::Whole);
    }
    Some(NameMatch::Prefix(common))
}

/// A selector written as a parameter name (`poll[options][]`, `status`) as segments: `[]`
/// and `[*]` are every element.
pub fn selector_from_name(name: &str) -> Vec<PtrSeg> {
    bracket_segments(name)
        .into_iter()
        .map(|s| {
            if s.is_empty() || s == "*" {
                PtrSeg::Any
            } else {
                PtrSeg::Key(s.to_string())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_frameworks_take_for_a_name() {
        for key in [
            "status", "Status", "STATUS", "ſtatus", "  status", "fb.api", "fb api",
        ] {
            let want = if key.starts_with("fb") {
                "fb_api"
            } else {
                "status"
            };
            assert!(key_matches(want, key), "{key}");
        }
        for key in ["statuses", "stat", "st atus", "tweet"] {
            assert!(!key_matches("status", key), "{key}");
        }
    }

    #[test]
    fn bracket_names() {
        assert_eq!(bracket_segments("a[b][]"), ["a", "b", ""]);
        assert_eq!(bracket_segments("a"), ["a"]);
        assert_eq!(bracket_segments("a[0][value]x"), ["a", "0", "value"]);
        assert_eq!(
            selector_from_name("fields_attributes[*][value]"),
            vec![
                PtrSeg::Key("fields_attributes".into()),
                PtrSeg::Any,
                PtrSeg::Key("value".into())
            ]
        );
    }

    #[test]
    fn names_meet_selectors() {
        let sel = selector_from_name("poll[options][]");
        assert_eq!(
            segments_match(&sel, &["poll", "options", ""]),
            Some(NameMatch::Whole)
        );
        assert_eq!(
            segments_match(&sel, &["poll", "options", "3"]),
            Some(NameMatch::Whole)
        );
        assert_eq!(
            segments_match(&sel, &["poll", "options"]),
            Some(NameMatch::Whole)
        );
        assert_eq!(segments_match(&sel, &["poll"]), Some(NameMatch::Prefix(1)));
        assert_eq!(segments_match(&sel, &["pool"]), None);
        let status = selector_from_name("status");
        assert_eq!(
            segments_match(&status, &["status", ""]),
            Some(NameMatch::Whole)
        );
    }
}
