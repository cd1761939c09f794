//! The matching view of a text: what the detectors read, and the way back to the text.
//!
//! # What the view is
//! Text pasted from office documents and typed on phones carries characters that change
//! nothing for a reader and everything for a pattern: no-break and other Unicode spaces,
//! zero-width spaces and joiners, soft hyphens, byte-order marks, variation selectors,
//! full-width digits from Japanese input methods, typographic dashes. The view is the text
//! with:
//! - Unicode NFKC applied (full-width and other compatibility forms become their plain
//!   letters and digits; `４１１１` reads `4111`);
//! - default-ignorable code points removed (Unicode's `Default_Ignorable_Code_Point`: U+200B
//!   zero-width space, U+200C/U+200D joiners, U+00AD soft hyphen, U+2060 word joiner,
//!   U+FEFF, U+FE00–U+FE0F variation selectors, bidirectional controls…) and so are control
//!   characters other than tab, line breaks, vertical tab and form feed (NUL, DEL, the C1
//!   controls: a page shows none of them, so `B\0L\0U\0E` reads `BLUE`, as text in UTF-16
//!   read byte by byte does);
//! - every Unicode space read as a space (U+2028, U+2029 and U+0085 as a line break);
//! - every Unicode dash and the minus sign read as `-`.
//!
//! # Offsets
//! The view keeps, for each stretch of its bytes, the bytes of the text they came from
//! ([`OffsetMap`]). A span of the view maps back to the smallest span of the text that holds
//! everything it was made from: a value with an invisible character inside maps to the
//! whole value, invisible character included, and nothing around it; a character that
//! normalisation made from several (a letter and its combining accent) maps to all of
//! them. Mapped spans always start and end on the text's char boundaries.
//!
//! # Cost
//! An all-ASCII text without controls is its own view: no copy, no map (the common case
//! costs one pass that reads eight bytes at a time). Other texts are read once, char by char, with a table look-up per
//! non-ASCII char; when nothing changed the view borrows the text again.
//!
//! # Look-alikes
//! [`lookalike_view`] goes one step further for dictionary matching only: each non-ASCII
//! letter whose Unicode TR39 confusable skeleton is the skeleton of an ASCII letter or digit
//! (Cyrillic `В`, Greek `Ο`, the script `ℓ`) is read as that ASCII character, of the same
//! case where the script has case. ASCII characters are never replaced: look-alikes within
//! ASCII (`0`/`O`, `1`/`l`, `rn`/`m`) collide with ordinary words and numbers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

/// One stretch of the view and the bytes of the text it came from. An exact piece is a
/// byte-for-byte copy (offsets inside map one to one); any other piece maps as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    view: usize,
    orig: usize,
    view_len: usize,
    orig_len: usize,
    exact: bool,
}

/// How spans of a view map back to the text it was made from.
#[derive(Clone, Debug, Default)]
pub struct OffsetMap {
    /// Sorted by `view`, covering every byte of the view.
    pieces: Vec<Piece>,
}

impl OffsetMap {
    fn piece_at(&self, view: usize) -> Option<&Piece> {
        let i = self.pieces.partition_point(|p| p.view + p.view_len <= view);
        self.pieces.get(i)
    }

    /// The span of the text that `start..end` of the view was made from.
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        if start >= end {
            let o = self.start_of(start);
            return (o, o);
        }
        let s = self.start_of(start);
        let e = match self.piece_at(end - 1) {
            Some(p) if p.exact => p.orig + (end - p.view),
            Some(p) => p.orig + p.orig_len,
            None => self.pieces.last().map_or(end, |p| p.orig + p.orig_len),
        };
        (s, e.max(s))
    }

    fn start_of(&self, view: usize) -> usize {
        match self.piece_at(view) {
            Some(p) if p.exact => p.orig + (view - p.view),
            Some(p) => p.orig,
            None => self.pieces.last().map_or(view, |p| p.orig + p.orig_len),
        }
    }

    /// Whether any byte of `start..end` of the view was substituted (not copied).
    pub fn substituted(&self, start: usize, end: usize) -> bool {
        let mut i = self
            .pieces
            .partition_point(|p| p.view + p.view_len <= start);
        while let Some(p) = self.pieces.get(i) {
            if p.view >= end {
                break;
            }
            if !p.exact {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// A text as the detectors read it, with the way back to the text.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub text: Cow<'a, str>,
    /// `None`: the view is the text itself.
    pub map: Option<OffsetMap>,
}

impl View<'_> {
    /// The span of the original text that `start..end` of the view came from.
    pub fn to_original(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.map {
            None => (start, end),
            Some(m) => m.to_original(start, end),
        }
    }

    /// Whether the view differs from the text it was made from.
    pub fn changed(&self) -> bool {
        self.map.is_some()
    }
}

/// Builds a view piece by piece: exact runs are merged, everything else is one piece.
struct Builder {
    out: String,
    pieces: Vec<Piece>,
    /// Start (view, orig) of the exact run being copied.
    run: (usize, usize),
    changed: bool,
}

impl Builder {
    fn new(cap: usize) -> Builder {
        Builder {
            out: String::with_capacity(cap),
            pieces: Vec::new(),
            run: (0, 0),
            changed: false,
        }
    }

    /// Ends the exact run at `orig` (the text offset the view has reached).
    fn close_run(&mut self, orig: usize) {
        let len = self.out.len() - self.run.0;
        debug_assert_eq!(orig - self.run.1, len);
        if len > 0 {
            self.pieces.push(Piece {
                view: self.run.0,
                orig: self.run.1,
                view_len: len,
                orig_len: len,
                exact: true,
            });
        }
    }

    /// Replaces `orig..orig_end` of the text with `with` (possibly nothing).
    fn substitute(&mut self, orig: usize, orig_end: usize, with: &str) {
        self.close_run(orig);
        self.changed = true;
        if !with.is_empty() {
            self.pieces.push(Piece {
                view: self.out.len(),
                orig,
                view_len: with.len(),
                orig_len: orig_end - orig,
                exact: false,
            });
            self.out.push_str(with);
        }
        self.run = (self.out.len(), orig_end);
    }

    fn finish<'a>(mut self, text: &'a str) -> View<'a> {
        if !self.changed {
            return View {
                text: Cow::Borrowed(text),
                map: None,
            };
        }
        self.close_run(text.len());
        View {
            text: Cow::Owned(self.out),
            map: Some(OffsetMap {
                pieces: self.pieces,
            }),
        }
    }
}

/// `Default_Ignorable_Code_Point` (Unicode DerivedCoreProperties.txt, 16.0).
const DEFAULT_IGNORABLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` is a default-ignorable code point (invisible, no effect on a reader).
pub fn is_default_ignorable(c: char) -> bool {
    if c < '\u{AD}' {
        return false;
    }
    let i = DEFAULT_IGNORABLE.partition_point(|&(_, hi)| hi < c);
    DEFAULT_IGNORABLE.get(i).is_some_and(|&(lo, _)| lo <= c)
}

/// A control character a page does not show: C0 controls other than tab, line feed,
/// vertical tab, form feed and carriage return; DEL; C1 controls other than U+0085 (a
/// line break).
fn is_hidden_control(c: char) -> bool {
    matches!(c, '\0'..='\u{8}' | '\u{E}'..='\u{1F}' | '\u{7F}'..='\u{84}' | '\u{86}'..='\u{9F}')
}

/// Whether `b` is an ASCII control character the view removes.
pub(crate) fn is_hidden_control_byte(b: u8) -> bool {
    (b < 0x20 && !(0x09..=0x0D).contains(&b)) || b == 0x7F
}

/// Whether `b` is not a printable ASCII character (one compare for the common case).
fn is_unusual_byte(b: u8) -> bool {
    b.wrapping_sub(0x20) >= 0x5F
}

/// Whether `text` is ASCII without a control the view removes: its own view. Reads eight
/// bytes at a time; only a word with a byte below `0x20` or equal to `0x7F` is looked at
/// byte by byte (tabs and line breaks are such bytes, and stay).
fn is_plain_ascii(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let bytes = text.as_bytes();
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        if x & HIGH != 0 {
            return false;
        }
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let del = x ^ (ONES * 0x7F);
        let is_del = del.wrapping_sub(ONES) & !del & HIGH;
        if (below_space | is_del) != 0 && w.iter().any(|&b| is_hidden_control_byte(b)) {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| b.is_ascii() && !is_hidden_control_byte(b))
}

/// Unicode dashes and the minus sign, read as `-`.
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '\u{2010}'
            ..='\u{2015}'
                | '\u{2043}'
                | '\u{2212}'
                | '\u{2E3A}'
                | '\u{2E3B}'
                | '\u{FE58}'
                | '\u{FE63}'
                | '\u{FF0D}'
    )
}

/// What a non-ASCII char is read as, when it is not read as itself under NFKC.
fn simple_substitute(c: char) -> Option<&'static str> {
    if is_default_ignorable(c) || is_hidden_control(c) {
        Some("")
    } else if matches!(c, '\u{2028}' | '\u{2029}' | '\u{0085}') {
        Some("\n")
    } else if c.is_whitespace() {
        Some(" ")
    } else if is_dash(c) {
        Some("-")
    } else {
        None
    }
}

/// Whether normalisation never combines `c` with what comes before it, so that a
/// normalisation segment may start at `c`: it is a starter and so is the first character
/// it decomposes to (half-width `ﾞ` is a starter that decomposes to a combining mark).
fn starts_segment(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let mut first = None;
    unicode_normalization::char::decompose_compatible(c, |d| {
        first.get_or_insert(d);
    });
    let d = first.unwrap_or(c);
    canonical_combining_class(c) == 0
        && canonical_combining_class(d) == 0
        && is_nfkc_quick(std::iter::once(d)) != IsNormalized::Maybe
}

/// Whether `c` is in NFKC whatever surrounds it, and read as itself.
fn stable(c: char) -> bool {
    canonical_combining_class(c) == 0 && is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes
}

/// The canonical form of a matched value, which the audit trail's keyed hash is taken of,
/// so that one value written differently correlates: its matching view (invisible
/// characters gone, compatibility forms folded, Unicode spaces and dashes plain); a
/// number written with separators as its digits (`4539 1488-0343.6467` and
/// `4539148803436467`); any other value without spaces and hyphens, in lower case
/// (`Project Nightjar`, `project-nightjar`, `PROJECTNIGHTJAR`; an IBAN in groups or not).
/// Dots, underscores and other punctuation stay: they tell addresses and tokens apart.
pub fn canonical_value(value: &str) -> String {
    let view = matching_view(value);
    let text = view.text.as_ref();
    let numeric = text.bytes().any(|b| b.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'/'));
    if numeric {
        return text.chars().filter(char::is_ascii_digit).collect();
    }
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The matching view of `text` (see the module docs).
pub fn matching_view(text: &str) -> View<'_> {
    if is_plain_ascii(text) {
        return View {
            text: Cow::Borrowed(text),
            map: None,
        };
    }
    let bytes = text.as_bytes();
    let mut b = Builder::new(text.len());
    // Text offset where the current normalisation segment started (its starter).
    let mut seg = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        if is_unusual_byte(bytes[i]) && is_hidden_control_byte(bytes[i]) {
            b.substitute(i, i + 1, "");
            seg = i + 1;
            i += 1;
            continue;
        }
        if bytes[i].is_ascii() {
            // Copy the ASCII run; its last char may start a segment with marks after it.
            let end = bytes[i..]
                .iter()
                .position(|&b| is_unusual_byte(b) && (!b.is_ascii() || is_hidden_control_byte(b)))
                .map_or(bytes.len(), |n| i + n);
            b.out.push_str(&text[i..end]);
            seg = end - 1;
            i = end;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        let len = c.len_utf8();
        if let Some(with) = simple_substitute(c) {
            b.substitute(i, i + len, with);
            seg = i + len;
            i += len;
            continue;
        }
        if stable(c) {
            b.out.push(c);
            seg = i;
            i += len;
            continue;
        }
        // Normalise the whole segment: from its starter (already copied: take it back)
        // to the next char that starts a new one.
        let mut from = if starts_segment(c) { i } else { seg.min(i) };
        if i - from > b.out.len() - b.run.0 {
            // The starter was itself substituted: normalise from here.
            from = i;
        }
        b.out.truncate(b.out.len() - (i - from));
        let mut end = i + len;
        for d in text[end..].chars() {
            if starts_segment(d) || is_default_ignorable(d) {
                break;
            }
            end += d.len_utf8();
        }
        let normalised: String = text[from..end]
            .nfkc()
            .filter_map(|d| match simple_substitute(d) {
                Some(s) => s.chars().next(),
                None => Some(d),
            })
            .collect();
        b.substitute(from, end, &normalised);
        seg = end;
        i = end;
    }
    b.finish(text)
}

/// Non-ASCII characters read as an ASCII letter or digit for dictionary matching.
fn lookalikes() -> &'static HashMap<char, u8, foldhash::fast::RandomState> {
    static TABLE: OnceLock<HashMap<char, u8, foldhash::fast::RandomState>> = OnceLock::new();
    TABLE.get_or_init(build_lookalikes)
}

fn skeleton_of(c: char) -> String {
    let mut buf = [0u8; 4];
    unicode_security::skeleton(c.encode_utf8(&mut buf)).collect()
}

fn build_lookalikes() -> HashMap<char, u8, foldhash::fast::RandomState> {
    // Skeleton -> the ASCII letters and digits that have it.
    let mut ascii: HashMap<String, Vec<u8>> = HashMap::new();
    for a in (b'0'..=b'9').chain(b'A'..=b'Z').chain(b'a'..=b'z') {
        ascii.entry(skeleton_of(a as char)).or_default().push(a);
    }
    let mut table = HashMap::default();
    // Ideographs, Hangul syllables, surrogates and private use have no Latin look-alike.
    let ranges = [
        (0x80u32, 0x33FFu32),
        (0xA000, 0xABFF),
        (0xD7B0, 0xD7FF),
        (0xF900, 0x1FFFF),
    ];
    for (lo, hi) in ranges {
        for cp in lo..=hi {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if !c.is_alphanumeric() {
                continue;
            }
            let Some(candidates) = ascii.get(&skeleton_of(c)) else {
                if let Some(base) = accented_base(c) {
                    table.insert(c, base);
                }
                continue;
            };
            let pick = |f: fn(&u8) -> bool| candidates.iter().copied().find(f);
            let chosen = if c.is_uppercase() {
                pick(u8::is_ascii_uppercase)
                    .or_else(|| pick(u8::is_ascii_lowercase))
                    .or_else(|| pick(u8::is_ascii_digit))
            } else {
                pick(u8::is_ascii_lowercase)
                    .or_else(|| pick(u8::is_ascii_uppercase))
                    .or_else(|| pick(u8::is_ascii_digit))
            };
            if let Some(a) = chosen {
                table.insert(c, a);
            }
        }
    }
    table
}

/// The ASCII letter under a letter with diacritics (`Ñ` → `N`, `é` → `e`), from its
/// canonical decomposition: a reader still sees the letter.
fn accented_base(c: char) -> Option<u8> {
    let mut parts = c.nfd();
    let base = parts.next()?;
    (base.is_ascii_alphanumeric() && parts.all(|m| canonical_combining_class(m) != 0))
        .then_some(base as u8)
}

/// The ASCII letter or digit a non-ASCII char looks like, if any.
pub fn lookalike(c: char) -> Option<char> {
    if c.is_ascii() {
        return None;
    }
    lookalikes().get(&c).map(|&a| a as char)
}

/// `text` (a matching view) with every non-ASCII look-alike replaced by its ASCII letter
/// or digit. Borrowed when there is none.
pub fn lookalike_view(text: &str) -> View<'_> {
    if text.is_ascii() {
        return View {
            text: Cow::Borrowed(text),
            map: None,
        };
    }
    let mut b = Builder::new(text.len());
    for (i, c) in text.char_indices() {
        match lookalike(c) {
            Some(a) => {
                let mut buf = [0u8; 4];
                b.substitute(i, i + c.len_utf8(), a.encode_utf8(&mut buf));
            }
            None => b.out.push(c),
        }
    }
    b.finish(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn back(v: &View<'_>, text: &str, needle: &str) -> String {
        let s = v.text.find(needle).expect("needle in view");
        let (a, b) = v.to_original(s, s + needle.len());
        text[a..b].to_string()
    }

    #[test]
    fn ascii_is_its_own_view() {
        let v = matching_view("plain text 4111");
        assert!(matches!(v.text, Cow::Borrowed(_)) && v.map.is_none());
        let v = matching_view("café ünïcode déjà");
        assert!(
            matches!(v.text, Cow::Borrowed(_)),
            "clean non-ASCII borrows"
        );
    }

    #[test]
    fn invisible_characters_inside_map_to_the_whole_value() {
        let t = "card 4111\u{200B} 1111\u{00A0}1111\u{2060}1111 ok";
        let v = matching_view(t);
        assert_eq!(v.text, "card 4111 1111 11111111 ok");
        assert_eq!(
            back(&v, t, "4111 1111 11111111"),
            "4111\u{200B} 1111\u{00A0}1111\u{2060}1111"
        );
        // Invisible characters just outside a value stay outside.
        let t = "\u{200B}4111\u{FEFF} x";
        let v = matching_view(t);
        assert_eq!(back(&v, t, "4111"), "4111");
    }

    #[test]
    fn hidden_controls_are_invisible_and_layout_controls_stay() {
        // Text in UTF-16 read byte by byte, and controls a page does not show.
        let t = "B\0L\0U\0E\0H\0E\0R\0O\0N\0 x\u{7}y\u{7F}z\u{9B}w";
        let v = matching_view(t);
        assert_eq!(v.text, "BLUEHERON xyzw");
        assert_eq!(back(&v, t, "BLUEHERON"), "B\0L\0U\0E\0H\0E\0R\0O\0N");
        // All ASCII with a control: not its own view; in a non-ASCII text too.
        let t = "4539\u{1}1488 0343 6467 café";
        assert_eq!(matching_view(t).text, "45391488 0343 6467 café");
        // Tabs, line breaks, vertical tabs and form feeds are layout: the text is its view.
        for t in [
            "a\tb\nc\rd\u{B}e\u{C}f",
            "plain words, long enough for words of eight.",
        ] {
            let v = matching_view(t);
            assert!(!v.changed() && v.text == t, "{t:?}");
        }
        for b in 0..=255u8 {
            assert_eq!(
                is_hidden_control_byte(b),
                b.is_ascii() && is_hidden_control(b as char),
                "{b:#x}"
            );
        }
        // Every position of a control in the eight-byte words, and after them.
        for len in 1..20 {
            for at in 0..len {
                let mut t = "x".repeat(len);
                t.replace_range(at..at + 1, "\0");
                assert_eq!(matching_view(&t).text, "x".repeat(len - 1), "{t:?}");
                t.replace_range(at..at + 1, "\n");
                assert!(!matching_view(&t).changed(), "{t:?}");
            }
        }
    }

    #[test]
    fn nfkc_full_width_dashes_and_spaces() {
        let t = "ｶｰﾄﾞ ４１１１－１１１１\u{3000}ＢＬＵＥＨＥＲＯＮ x\u{2011}7";
        let v = matching_view(t);
        assert_eq!(v.text, "カード 4111-1111 BLUEHERON x-7");
        assert_eq!(back(&v, t, "4111-1111"), "４１１１－１１１１");
        assert_eq!(back(&v, t, "BLUEHERON"), "ＢＬＵＥＨＥＲＯＮ");
    }

    #[test]
    fn combining_marks_join_their_letter() {
        let t = "cafe\u{301} ok";
        let v = matching_view(t);
        assert_eq!(v.text, "café ok");
        assert_eq!(back(&v, t, "é"), "e\u{301}");
        assert_eq!(back(&v, t, "caf"), "caf");
        // A mark with nothing before it, marks after substituted chars: no panic.
        for t in [
            "\u{301}x",
            "\u{A0}\u{301}",
            "\u{200B}\u{301}\u{301}",
            "ａ\u{301}",
        ] {
            let v = matching_view(t);
            let (a, b) = v.to_original(0, v.text.len());
            assert!(t.is_char_boundary(a) && t.is_char_boundary(b));
        }
    }

    #[test]
    fn lookalikes_are_read_as_ascii_with_their_case() {
        assert_eq!(lookalike('В'), Some('B'));
        assert_eq!(lookalike('е'), Some('e'));
        assert_eq!(lookalike('Ο'), Some('O'));
        assert_eq!(lookalike('І'), Some('I'));
        // A letter with diacritics reads as the letter under them.
        assert_eq!(lookalike('é'), Some('e'));
        assert_eq!(lookalike('Ñ'), Some('N'));
        assert_eq!(lookalike('ß'), None);
        assert_eq!(lookalike('中'), None);
        let t = "ВLUЕНЕRОN";
        let v = lookalike_view(t);
        assert_eq!(v.text, "BLUEHERON");
        assert_eq!(v.to_original(0, v.text.len()), (0, t.len()));
    }
    #[test]
    fn canonical_values_correlate_one_value_written_differently() {
        assert_eq!(canonical_value("4539 1488-0343.6467"), "4539148803436467");
        assert_eq!(
            canonical_value("４５３９１４８８０３４３６４６７"),
            "4539148803436467"
        );
        assert_eq!(canonical_value("078\u{200B}-05-1123"), "078051123");
        assert_eq!(
            canonical_value("Project\u{00A0}Nightjar"),
            "projectnightjar"
        );
        assert_eq!(canonical_value("project-nightjar"), "projectnightjar");
        assert_eq!(
            canonical_value("GB82 WEST 1234 5698 7654 32"),
            "gb82west12345698765432"
        );
        // Punctuation that tells values apart stays.
        assert_ne!(
            canonical_value("a.b@corp.example"),
            canonical_value("ab@corp.example")
        );
        assert_ne!(
            canonical_value("sk_live_abc"),
            canonical_value("sklive_abc")
        );
    }
}
