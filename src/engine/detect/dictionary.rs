//! Dictionaries: terms (codenames, markings) matched as people write them.
//!
//! # Terms and words
//! A term is split into words at spaces, hyphens, underscores and dots, where a lower-case
//! letter is followed by a capital (`BlueHeron` is two words) and between letters and
//! digits (`KESTREL7` is two words). `BLUEHERON` is one word; `Operation Larkspur` two.
//!
//! # Variant kinds (each on by default, each can be switched off per detector)
//! - `case`: any case. A change from a lower-case letter to a capital *inside* a word of the
//!   term reads as a word break (`BlueHeron` is "Blue Heron"), so it counts only where the
//!   term has one. Off: the letters' case as written in the term.
//! - `separators`: between the term's words, a space, hyphen, underscore, dot or nothing,
//!   in a run of up to three (white space alone: up to 16) (`Operation Larkspur`, `operation-larkspur`,
//!   `OPERATION_LARKSPUR`, `OperationLarkspur`, `Operation - Larkspur`), never inside a word
//!   (`blue heron` is not `BLUEHERON`) and never a dot with a space (a sentence ends there).
//!   A word that is a number joins its word before it with a space only when the term
//!   itself has a space there (`kestrel 7 times` is prose; `KESTREL_7` and `KESTREL7` are
//!   `KESTREL-7`). Off: the term's own separators (any run of white space for a space).
//! - `tags`: inside a hashtag or mention, the term may be glued to other words where the
//!   case changes, at a digit or at an underscore (`#TeamBlueheron`, `#OperationLarkspurDay`,
//!   `@blueheron_team`). All-lower-case glued words are not split (`#blueheronsighting`).
//! - `suffixes`: glued on after the term: an underscore and anything (`BLUEHERON_v2`,
//!   `blueheron_api`), a version (`BLUEHERONv2`, `KESTREL-7v3.1`) and, after a term that ends
//!   with a letter, a number (`BLUEHERON2`); an underscore may also join a word before it
//!   (`deploy_blueheron`). A possessive (`Nightjar's`) is a whole word already. Plural and
//!   other letters are not suffixes: `BLUEHERONS`, `Nightjars` are ordinary words' plurals.
//! - `confusables`: letters of other scripts that look like Latin ones (Unicode TR39
//!   confusable skeletons, see `view`): `ВLUЕНЕRОN` with Cyrillic letters. A match that
//!   needs look-alikes must also contain a Latin letter as written: a word entirely in
//!   another script that happens to look Latin (Russian `НОРЕ`) is a word of that language
//!   (TR39's whole-script confusables).
//!
//! Always: the match is a whole word at its ends (the characters beyond it are not letters,
//! digits or `_`; letters of scripts written without spaces — CJK, kana, Hangul, Thai… —
//! do not join words), unless `tags` or `suffixes` allow it.
//!
//! # How matching works
//! One regex of the terms' first words (any case, or as written for terms whose case is
//! not free) finds where a term may start; first words are written contiguously in every
//! variant. Beyond 256 first words an ASCII-case-insensitive Aho–Corasick automaton does
//! (the regex's literal prefilter is what keeps texts without a first word cheap; the
//! automaton has none when it folds case). From
//! each such start a trie of the terms, without separators and lower-cased, is walked over
//! the text, stepping over separator runs; every term the walk reaches is then checked
//! against the rules above. The walk is bounded by the longest term, so scanning stays
//! linear in the text.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Deserialize;

use super::view::{lookalike_view, matching_view, OffsetMap};

/// Which written variants of a dictionary's terms count (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variants {
    #[serde(default = "yes")]
    pub case: bool,
    #[serde(default = "yes")]
    pub separators: bool,
    #[serde(default = "yes")]
    pub tags: bool,
    #[serde(default = "yes")]
    pub suffixes: bool,
    #[serde(default = "yes")]
    pub confusables: bool,
}

fn yes() -> bool {
    true
}

impl Default for Variants {
    fn default() -> Variants {
        Variants {
            case: true,
            separators: true,
            tags: true,
            suffixes: true,
            confusables: true,
        }
    }
}

/// The term's own separator before one of its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sep {
    None,
    Space,
    Dash,
    Underscore,
    Dot,
}

#[derive(Clone, Debug)]
struct Term {
    detector: usize,
    /// The term's letters and digits as written (normalised), without separators.
    chars: Vec<char>,
    /// Indices into `chars` where a word starts (the first word's 0 excluded), with the
    /// term's own separator there and whether that word is a number.
    words: Vec<(usize, Sep, bool)>,
    variants: Variants,
}

/// Variant kinds a match needed (for `explain`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used {
    pub case: bool,
    pub separators: bool,
    pub tags: bool,
    pub suffixes: bool,
    pub confusables: bool,
}

impl Used {
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        for (on, name) in [
            (self.case, "case"),
            (self.separators, "separators"),
            (self.tags, "tags"),
            (self.suffixes, "suffixes"),
            (self.confusables, "confusables"),
        ] {
            if on {
                v.push(name);
            }
        }
        if v.is_empty() {
            "as written".into()
        } else {
            format!("variant: {}", v.join(", "))
        }
    }
}

/// One dictionary match, in the coordinates of the text given to [`Dictionaries::scan`].
#[derive(Clone, Copy, Debug)]
pub struct DictMatch {
    pub detector: usize,
    pub start: usize,
    pub end: usize,
    pub used: Used,
}

/// A trie of the terms' folded letters, by bytes.
#[derive(Debug, Default)]
struct Trie {
    next: HashMap<(u32, u8), u32, foldhash::fast::RandomState>,
    terms: HashMap<u32, Vec<u32>, foldhash::fast::RandomState>,
    nodes: u32,
}

impl Trie {
    fn insert(&mut self, folded: &str, term: u32) {
        let mut node = 0u32;
        for b in folded.bytes() {
            let fresh = self.nodes + 1;
            node = *self.next.entry((node, b)).or_insert_with(|| {
                self.nodes = fresh;
                fresh
            });
        }
        self.terms.entry(node).or_default().push(term);
    }

    fn step(&self, node: u32, c: char) -> Option<u32> {
        let mut buf = [0u8; 4];
        let mut n = node;
        for b in c.encode_utf8(&mut buf).bytes() {
            n = *self.next.get(&(n, b))?;
        }
        Some(n)
    }
}

/// Where a term may start: the terms' first words.
#[derive(Debug)]
enum FirstWords {
    /// A few hundred words: one regex (its literal prefilters skip most of a text;
    /// Aho–Corasick's cannot when it folds case).
    Regex(regex::Regex),
    /// More: one ASCII-case-insensitive Aho–Corasick automaton.
    Automaton(AhoCorasick),
}

/// First words up to which a regex finds them (beyond, an automaton).
const REGEX_FIRST_WORDS: usize = 256;

/// Every dictionary of a rule set, compiled together.
#[derive(Debug)]
pub struct Dictionaries {
    terms: Vec<Term>,
    first_words: FirstWords,
    trie: Trie,
    confusables: bool,
}

/// How `c` is compared when case does not matter.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn separator_kind(c: char) -> Option<Sep> {
    match c {
        ' ' | '\t' | '\n' | '\r' => Some(Sep::Space),
        '-' => Some(Sep::Dash),
        '_' => Some(Sep::Underscore),
        '.' => Some(Sep::Dot),
        _ => None,
    }
}

/// Letters of scripts written without spaces between words: they do not join a term to
/// a longer word.
fn unspaced_script(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF       // Thai, Lao
        | 0x1000..=0x109F     // Myanmar
        | 0x1100..=0x11FF     // Hangul Jamo
        | 0x1780..=0x17FF     // Khmer
        | 0x3040..=0x30FF     // Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility Jamo
        | 0x31F0..=0x31FF
        | 0x3400..=0x4DBF     // CJK
        | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF
        | 0xFF66..=0xFF9F     // half-width Katakana
        | 0x20000..=0x3FFFF)
}

/// Whether `c` continues a word (so a term next to it is not a whole word).
fn is_word_char(c: char) -> bool {
    c == '_' || (c.is_alphanumeric() && !unspaced_script(c))
}

/// The script of a letter, for the scripts whose words are spelled with spaces between
/// them; `None` for digits, marks and anything else.
fn script(c: char) -> Option<u8> {
    if !c.is_alphabetic() {
        return None;
    }
    Some(match c as u32 {
        0x0041..=0x024F | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xFF21..=0xFF5A => {
            0
        } // Latin
        0x0370..=0x03FF | 0x1F00..=0x1FFF => 1, // Greek
        0x0400..=0x052F | 0x1C80..=0x1C8F | 0x2DE0..=0x2DFF | 0xA640..=0xA69F => 2, // Cyrillic
        0x0530..=0x058F => 3,                   // Armenian
        0x0590..=0x05FF => 4,                   // Hebrew
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF => 5, // Arabic
        0x0900..=0x0DFF => 6,                   // Indic scripts
        0x10A0..=0x10FF => 7,                   // Georgian
        _ => 8,
    })
}

/// Whether a letter next to a term's edge letter starts another word although nothing
/// separates them: it is of another script (`BLUEHERONж`: a reader sees the term and a
/// letter that cannot belong to it).
fn script_changes(edge: char, next: char) -> bool {
    matches!((script(edge), script(next)), (Some(a), Some(b)) if a != b)
}

/// Splits a term into its letters and word starts. `None` for a term without letters.
fn split_term(raw: &str, detector: usize, variants: Variants) -> Option<Term> {
    let normalised = matching_view(raw.trim());
    let text = lookalike_view(&normalised.text);
    let mut chars: Vec<char> = Vec::new();
    let mut words = Vec::new();
    let mut pending: Option<Sep> = None;
    for c in text.text.chars() {
        if let Some(kind) = separator_kind(c) {
            if !chars.is_empty() && pending.is_none() {
                pending = Some(kind);
            }
            continue;
        }
        if let Some(&prev) = chars.last() {
            let hump = prev.is_lowercase() && c.is_uppercase();
            let digit_edge = prev.is_alphanumeric()
                && c.is_alphanumeric()
                && prev.is_numeric() != c.is_numeric();
            if pending.is_some() || hump || digit_edge {
                words.push((chars.len(), pending.unwrap_or(Sep::None), false));
            }
        }
        pending = None;
        chars.push(c);
    }
    if chars.is_empty() {
        return None;
    }
    // Mark the words that are numbers.
    let mut bounds: Vec<usize> = words.iter().map(|w| w.0).collect();
    bounds.push(chars.len());
    for (i, w) in words.iter_mut().enumerate() {
        w.2 = chars[w.0..bounds[i + 1]].iter().all(|c| c.is_ascii_digit());
    }
    Some(Term {
        detector,
        chars,
        words,
        variants,
    })
}

/// A run of separators at `i`: up to three (white space alone: up to 16, as in aligned
/// text), no dot with white space, one line break at most. Its end, or `i` when there is
/// none.
fn separator_run(text: &str, i: usize) -> usize {
    let mut end = i;
    let (mut dot, mut space, mut other, mut newlines, mut n) = (false, false, false, 0, 0);
    for c in text[i..].chars() {
        let Some(kind) = separator_kind(c) else {
            break;
        };
        n += 1;
        if n > 16 {
            return i;
        }
        match (kind, c) {
            (Sep::Dot, _) => {
                dot = true;
                other = true;
            }
            (Sep::Space, '\n') => {
                newlines += 1;
                space = true;
            }
            (Sep::Space, _) => space = true,
            _ => other = true,
        }
        end += c.len_utf8();
    }
    if (dot && space) || newlines > 1 || (other && n > 3) {
        return i;
    }
    end
}

struct Candidate {
    term: u32,
    start: usize,
    end: usize,
    /// (index into the term's chars, start, end) of each separator run crossed.
    seps: Vec<(usize, usize, usize)>,
}

impl Dictionaries {
    /// Compiles `(detector, variants, terms)`; `None` when there is no term.
    pub fn build(
        dicts: Vec<(usize, Variants, Vec<String>)>,
    ) -> Result<Option<Dictionaries>, super::BuildError> {
        let mut terms = Vec::new();
        for (detector, variants, list) in dicts {
            for raw in list {
                if let Some(t) = split_term(&raw, detector, variants) {
                    terms.push(t);
                }
            }
        }
        if terms.is_empty() {
            return Ok(None);
        }
        let mut trie = Trie::default();
        let mut firsts: Vec<String> = Vec::new();
        // For the regex: (word, whether its case is free).
        let mut words: Vec<(String, bool)> = Vec::new();
        for (i, t) in terms.iter().enumerate() {
            let folded: String = t.chars.iter().map(|&c| fold(c)).collect();
            trie.insert(&folded, i as u32);
            let first_len = t.words.first().map_or(t.chars.len(), |w| w.0);
            let first: String = t.chars[..first_len].iter().collect();
            let w = if t.variants.case {
                (first.to_lowercase(), true)
            } else {
                (first.clone(), false)
            };
            if !words.contains(&w) {
                words.push(w);
            }
            // The automaton folds ASCII case only: other scripts' words go in each case.
            let forms = if first.is_ascii() {
                vec![first.to_ascii_lowercase()]
            } else {
                vec![first.to_lowercase(), first.to_uppercase(), first.clone()]
            };
            for f in forms {
                if !firsts.contains(&f) {
                    firsts.push(f);
                }
            }
        }
        let first_words = if words.len() <= REGEX_FIRST_WORDS {
            let alt = |free: bool| {
                words
                    .iter()
                    .filter(|w| w.1 == free)
                    .map(|w| regex::escape(&w.0))
                    .collect::<Vec<_>>()
                    .join("|")
            };
            let (free, exact) = (alt(true), alt(false));
            let pattern = match (free.is_empty(), exact.is_empty()) {
                (false, false) => format!("(?i:{free})|{exact}"),
                (false, true) => format!("(?i:{free})"),
                _ => exact,
            };
            FirstWords::Regex(
                regex::Regex::new(&pattern).map_err(super::BuildError::DictionaryRegex)?,
            )
        } else {
            FirstWords::Automaton(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&firsts)
                    .map_err(super::BuildError::DictionaryAutomaton)?,
            )
        };
        let confusables = terms.iter().any(|t| t.variants.confusables);
        Ok(Some(Dictionaries {
            terms,
            first_words,
            trie,
            confusables,
        }))
    }

    /// The pattern that finds where a term may start, when it is a regex: a text it does not
    /// match holds no term (so that a set that runs it can tell when to skip [`Self::scan`]).
    pub fn first_words_pattern(&self) -> Option<&str> {
        match &self.first_words {
            FirstWords::Regex(re) => Some(re.as_str()),
            FirstWords::Automaton(_) => None,
        }
    }

    /// Whether some dictionary reads look-alike letters (the caller then scans the
    /// look-alike view of non-ASCII texts).
    pub fn wants_lookalikes(&self) -> bool {
        self.confusables
    }

    /// Every match in `text`; `lookalikes` tells which bytes of `text` were look-alike
    /// letters read as ASCII.
    pub fn scan(&self, text: &str, lookalikes: Option<&OffsetMap>) -> Vec<DictMatch> {
        let mut starts: Vec<usize> = match &self.first_words {
            FirstWords::Automaton(ac) => {
                ac.find_overlapping_iter(text).map(|m| m.start()).collect()
            }
            FirstWords::Regex(re) => {
                // Every start, also of words that overlap one found before.
                let mut v = Vec::new();
                let mut at = 0;
                while let Some(m) = re.find_at(text, at) {
                    v.push(m.start());
                    at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8);
                    if at >= text.len() {
                        break;
                    }
                }
                v
            }
        };
        if starts.is_empty() {
            return Vec::new();
        }
        starts.sort_unstable();
        starts.dedup();
        let mut out = Vec::new();
        let mut cands = Vec::new();
        for s in starts {
            cands.clear();
            self.walk(text, s, &mut cands);
            for c in &cands {
                let term = &self.terms[c.term as usize];
                if let Some(used) = self.verify(term, text, c, lookalikes) {
                    out.push(DictMatch {
                        detector: term.detector,
                        start: c.start,
                        end: c.end,
                        used,
                    });
                }
            }
        }
        out
    }

    fn walk(&self, text: &str, start: usize, out: &mut Vec<Candidate>) {
        let mut node = 0u32;
        let mut i = start;
        let mut k = 0usize;
        let mut seps: Vec<(usize, usize, usize)> = Vec::new();
        loop {
            if k > 0 {
                if let Some(ts) = self.trie.terms.get(&node) {
                    for &t in ts {
                        out.push(Candidate {
                            term: t,
                            start,
                            end: i,
                            seps: seps.clone(),
                        });
                    }
                }
            }
            if i >= text.len() {
                break;
            }
            let mut at = i;
            if k > 0 {
                at = separator_run(text, i);
            }
            let Some(c) = text[at..].chars().next() else {
                break;
            };
            if separator_kind(c).is_some() {
                break;
            }
            let Some(n) = self.trie.step(node, fold(c)) else {
                break;
            };
            if at > i {
                seps.push((k, i, at));
            }
            node = n;
            i = at + c.len_utf8();
            k += 1;
        }
    }

    /// Checks a candidate against the term's variant rules; the kinds it needed, or `None`.
    fn verify(
        &self,
        term: &Term,
        text: &str,
        c: &Candidate,
        lookalikes: Option<&OffsetMap>,
    ) -> Option<Used> {
        let v = term.variants;
        let mut used = Used::default();
        // Separators only between words, of an allowed kind.
        let mut crossed = c.seps.iter().peekable();
        for &(at, own, number) in &term.words {
            let run = match crossed.peek() {
                Some(&&(k, s, e)) if k == at => {
                    crossed.next();
                    Some(&text[s..e])
                }
                _ => None,
            };
            match run {
                None => {
                    if own != Sep::None {
                        if !v.separators {
                            return None;
                        }
                        used.separators = true;
                    }
                }
                Some(run) => {
                    let spaced = run.chars().any(char::is_whitespace);
                    let same = match own {
                        Sep::None => false,
                        Sep::Space => run.chars().all(char::is_whitespace),
                        Sep::Dash => run == "-",
                        Sep::Underscore => run == "_",
                        Sep::Dot => run == ".",
                    };
                    if !same {
                        if !v.separators || (number && spaced && own != Sep::Space) {
                            return None;
                        }
                        used.separators = true;
                    }
                }
            }
        }
        if crossed.next().is_some() {
            return None; // a separator inside a word
        }
        // Letters: case as the term's variants allow.
        let mut letters: Vec<(usize, char)> = Vec::with_capacity(term.chars.len());
        let mut pos = c.start;
        while pos < c.end {
            let Some(ch) = text[pos..].chars().next() else {
                break;
            };
            if separator_kind(ch).is_none() {
                letters.push((pos, ch));
            }
            pos += ch.len_utf8();
        }
        if letters.len() != term.chars.len() {
            return None;
        }
        let word_start = |i: usize| term.words.iter().any(|w| w.0 == i);
        for (i, (&(_, got), &want)) in letters.iter().zip(&term.chars).enumerate() {
            if got != want {
                if !v.case {
                    return None;
                }
                used.case = true;
            }
            if i > 0 && v.case && !word_start(i) {
                let prev = letters[i - 1].1;
                let contiguous = letters[i - 1].0 + prev.len_utf8() == letters[i].0;
                if contiguous && prev.is_lowercase() && got.is_uppercase() {
                    return None; // "BlueHeron" reads as two words
                }
            }
        }
        // Look-alike letters: only when allowed, and never a whole-script look-alike.
        if let Some(map) = lookalikes {
            if map.substituted(c.start, c.end) {
                if !v.confusables {
                    return None;
                }
                let latin = letters.iter().any(|&(p, ch)| {
                    ch.is_ascii_alphabetic() && !map.substituted(p, p + ch.len_utf8())
                });
                if !latin {
                    return None;
                }
                used.confusables = true;
            }
        }
        let (first_at, first) = *letters.first()?;
        let (last_at, last) = *letters.last()?;
        let before = text[..c.start].chars().next_back();
        let after = text[c.end..].chars().next();
        // A letter at `at` glued to the term's edge letter starts another word when it is of
        // another script — as written: a look-alike read as ASCII next to an edge letter
        // written in ASCII is one too (a word already mixing scripts, `МYВLUЕНЕRОN`, is not
        // parted where they change).
        let substituted =
            |at: usize, ch: char| lookalikes.is_some_and(|m| m.substituted(at, at + ch.len_utf8()));
        let other_script = |at: usize, ch: char, (edge_at, edge): (usize, char)| {
            script_changes(edge, ch)
                || (ch.is_alphabetic() && substituted(at, ch) && !substituted(edge_at, edge))
        };
        let in_tag = || v.tags && inside_tag(text, c.start);
        // Left edge.
        match before {
            Some(p)
                if is_word_char(p)
                    && !other_script(c.start - p.len_utf8(), p, (first_at, first)) =>
            {
                if p == '_' && v.suffixes {
                    used.suffixes = true;
                } else if in_tag()
                    && (p.is_ascii_digit()
                        || p == '_'
                        || (p.is_lowercase() && first.is_uppercase()))
                {
                    used.tags = true;
                } else {
                    return None;
                }
            }
            _ => {}
        }
        // Right edge.
        if let Some(n) = after {
            if is_word_char(n) && !other_script(c.end, n, (last_at, last)) {
                let ends = |at: usize, ch: char| other_script(at, ch, (last_at, last));
                if v.suffixes && suffix_ends(text, c.end, last, ends) {
                    used.suffixes = true;
                } else if in_tag() && tag_right_edge(text, c.end, last, n) {
                    used.tags = true;
                } else {
                    return None;
                }
            }
        }
        Some(used)
    }
}

/// Whether the word holding `at` is a hashtag or mention (`#`/`@` before its first
/// character; the look back is bounded).
fn inside_tag(text: &str, at: usize) -> bool {
    for (n, c) in text[..at].chars().rev().enumerate() {
        if n > 100 {
            return false;
        }
        if c == '#' || c == '@' {
            return true;
        }
        if !is_word_char(c) {
            return false;
        }
    }
    false
}

/// Whether a tag's words part at `at`: `_`, a digit, a change of case, or a capitalised
/// word.
fn tag_right_edge(text: &str, at: usize, last: char, next: char) -> bool {
    if next == '_' || next.is_ascii_digit() {
        return true;
    }
    if last.is_lowercase() && next.is_uppercase() {
        return true;
    }
    // "BLUEHERONLaunch", "Kestrel7Rocks": a capitalised word follows.
    let mut rest = text[at..].chars().skip(1);
    next.is_uppercase() && rest.next().is_some_and(char::is_lowercase)
}

/// Whether a suffix glued at `at` ends the word: `_…`, `v2`, `v2.1`, or digits after a
/// term ending with a letter.
///
/// The suffix ends where a word would, or where a letter of another script than the term's
/// follows it (`BLUEHERON2ж`; `other_script` says, from its offset and char).
fn suffix_ends(
    text: &str,
    at: usize,
    last: char,
    other_script: impl Fn(usize, char) -> bool,
) -> bool {
    let rest = &text[at..];
    if rest.starts_with('_') {
        return true;
    }
    let b = rest.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'v' | b'V')) && b.get(1).is_some_and(u8::is_ascii_digit) {
        i = 1;
    } else if !(last.is_alphabetic() && b.first().is_some_and(u8::is_ascii_digit)) {
        return false;
    }
    loop {
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return false;
        }
        i += digits;
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            continue;
        }
        break;
    }
    match rest[i..].chars().next() {
        None => true,
        Some(c) => c == '_' || !is_word_char(c) || other_script(at + i, c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(terms: &[&str], v: Variants) -> Dictionaries {
        Dictionaries::build(vec![(0, v, terms.iter().map(|s| s.to_string()).collect())])
            .unwrap()
            .unwrap()
    }

    fn found(d: &Dictionaries, text: &str) -> Vec<String> {
        let view = matching_view(text);
        let look = lookalike_view(&view.text);
        d.scan(&look.text, look.map.as_ref())
            .iter()
            .map(|m| {
                let (s, e) = look.to_original(m.start, m.end);
                let (s, e) = view.to_original(s, e);
                text[s..e].to_string()
            })
            .collect()
    }

    const CODENAMES: &[&str] = &[
        "BLUEHERON",
        "Project Nightjar",
        "KESTREL-7",
        "Operation Larkspur",
    ];

    #[test]
    fn written_variants_match() {
        let d = dict(CODENAMES, Variants::default());
        for (text, want) in [
            ("BLUEHERON ships", "BLUEHERON"),
            ("blueheron beta", "blueheron"),
            ("Blueheron beta", "Blueheron"),
            ("#OperationLarkspur", "OperationLarkspur"),
            ("operation-larkspur", "operation-larkspur"),
            ("OPERATION_LARKSPUR", "OPERATION_LARKSPUR"),
            ("Operation - Larkspur", "Operation - Larkspur"),
            ("Operation.Larkspur", "Operation.Larkspur"),
            ("project  nightjar", "project  nightjar"),
            ("BLUEHERON_v2", "BLUEHERON"),
            ("BLUEHERONv2.1 is out", "BLUEHERON"),
            ("BLUEHERON2 soon", "BLUEHERON"),
            (
                "the Nightjar's budget: Project Nightjar's",
                "Project Nightjar",
            ),
            ("deploy_blueheron now", "blueheron"),
            ("#TeamBlueheron", "Blueheron"),
            ("#BLUEHERONLaunch", "BLUEHERON"),
            ("#Kestrel7Rocks", "Kestrel7"),
            ("#ProjectNightjarUpdate", "ProjectNightjar"),
            ("@blueheron_team", "blueheron"),
            ("KESTREL7 and", "KESTREL7"),
            ("kestrel_7", "kestrel_7"),
            ("KESTREL-7_v2", "KESTREL-7"),
            ("ВLUЕНЕRОN", "ВLUЕНЕRОN"),
            ("新プロジェクトBLUEHERONの件", "BLUEHERON"),
            // A letter of another script glued to a term starts another word.
            ("BLUEHERON\u{048C}oon", "BLUEHERON"),
            ("жBLUEHERON", "BLUEHERON"),
            ("BLUEHERON0\u{048C}oon", "BLUEHERON"),
            ("BLUEHERONv2ж", "BLUEHERON"),
            ("BLUEHERON\u{0430}", "BLUEHERON"),
            ("BLUEHERON\u{058C}o", "BLUEHERON"),
            ("BLUEHERON\u{00D1}\u{0711}", "BLUEHERON"),
            ("BLUEHERO\u{0301}N", "BLUEHERO\u{0301}N"),
            ("BLUEHERON\u{0301}", "BLUEHERON\u{0301}"),
            ("Opération Larkspur", "Opération Larkspur"),
            ("\u{0430}BLUEHERON", "BLUEHERON"),
            (
                "Projectω Nightjar and Operation Larkspurд",
                "Operation Larkspur",
            ),
            ("עBLUEHERONש", "BLUEHERON"),
            ("ＢＬＵＥＨＥＲＯＮ", "ＢＬＵＥＨＥＲＯＮ"),
            ("BLUE\u{200B}HERON", "BLUE\u{200B}HERON"),
        ] {
            assert_eq!(found(&d, text), vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn hard_negatives_do_not() {
        let d = dict(CODENAMES, Variants::default());
        for text in [
            "I saw a blue heron at the lake",
            "Blue-Heron Inn",
            "#GreatBlueHeron at dawn",
            "#greatblueheron",
            "#blueheronsighting",
            "BLUEHERONS nest in colonies",
            "MYBLUEHERON account",
            "larkspur flowers are toxic",
            "the operation. Larkspur grows here",
            "operation of larkspur farms",
            "Project Nightjars",
            "Project Night jar",
            "kestrel 7 times a day",
            "KESTREL-70 is a model",
            "KESTREL-7B part",
            "blueHeron",
            "KESTREL 7",
            "#KESTREL7B",
        ] {
            assert!(found(&d, text).is_empty(), "{text}: {:?}", found(&d, text));
        }
    }

    #[test]
    fn whole_script_lookalikes_are_words_of_their_language() {
        let d = dict(&["HOPE"], Variants::default());
        assert!(found(&d, "НОРЕ").is_empty(), "Russian, all Cyrillic");
        assert_eq!(found(&d, "HОPE"), vec!["HОPE".to_string()]);
    }

    #[test]
    fn each_variant_kind_can_be_switched_off() {
        let off = |f: fn(&mut Variants)| {
            let mut v = Variants::default();
            f(&mut v);
            dict(CODENAMES, v)
        };
        let d = off(|v| v.case = false);
        assert!(found(&d, "blueheron").is_empty());
        assert_eq!(found(&d, "Operation-Larkspur").len(), 1);
        let d = off(|v| v.separators = false);
        assert!(found(&d, "OperationLarkspur").is_empty());
        assert_eq!(found(&d, "operation   larkspur").len(), 1);
        let d = off(|v| v.tags = false);
        assert!(found(&d, "#TeamBlueheron").is_empty());
        let d = off(|v| v.suffixes = false);
        assert!(found(&d, "BLUEHERON_v2").is_empty());
        assert!(found(&d, "BLUEHERONv2").is_empty());
        let d = off(|v| v.confusables = false);
        assert!(found(&d, "ВLUЕНЕRОN").is_empty());
    }
}
