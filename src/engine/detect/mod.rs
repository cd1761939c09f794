//! Detectors of sensitive content: regexes compiled together, dictionaries matched as
//! people write their terms, validators (checksums and formats), placeholder rules and
//! context words — all run on a normalised *matching view* of each text, with findings
//! reported at exact offsets in the text itself.
//!
//! # How a text is scanned
//! 0. The text's matching view is made (`view`: NFKC, invisible characters removed, Unicode
//!    spaces and dashes read as plain ones). An all-ASCII text is its own view.
//! 1. One [`regex::RegexSet`] of every pattern of every detector (and of the base64 blob
//!    pattern, when some detector reads wrapped text) runs once over the view and says
//!    which patterns match anywhere. Text without findings costs that one pass.
//! 2. Each pattern that matched runs on its own to find every (non-overlapping, leftmost-
//!    first) match. A pattern with a capture group named `value` reports that group's span.
//! 3. Dictionaries (`dictionary`): one Aho–Corasick automaton of the terms' first words
//!    finds where a term may start, then each term's written variants are checked (case,
//!    separators, hashtags and mentions, suffixes, look-alike letters of other scripts;
//!    each kind can be switched off per detector). Non-ASCII views are read a second time
//!    with look-alike letters as ASCII when a dictionary wants them.
//! 4. Each base64 blob is decoded once and its text scanned by the detectors that read
//!    wrapped text (`wrapped`); a finding there is reported as the whole blob.
//! 5. Each candidate is checked by its detector's validator, its placeholder rules (a
//!    secret's shape that is obviously not a secret is not reported) and its context words.
//! 6. Spans of the view are mapped back to the text (`view::OffsetMap`): a value is
//!    reported with every character it was made from, invisible ones inside it included,
//!    and nothing around it.
//!
//! # Overlaps
//! Matches of *different* detectors are all reported, even when they overlap (a URL on an
//! internal host is both `corp.internal_url` and `corp.internal_host`). Overlapping matches
//! of the *same* detector are reduced to one: the longest, then the earliest. Redaction
//! merges overlapping findings (see `redact`). Findings are ordered by start, then end,
//! then detector order.
//!
//! # Hostile input
//! The `regex` crate guarantees matching in time linear in the text for any pattern; the
//! view is made in one pass; a dictionary walk from a candidate start is bounded by the
//! longest term; blobs are decoded once, never recursively, and only up to
//! `wrapped::MAX_BLOB`; validators are linear in the match; context look-ups are bounded
//! by the window. No input panics. Offsets are byte offsets into the field text, always on
//! char boundaries.

mod dictionary;
mod placeholder;
mod validate;
pub mod view;
mod wrapped;

use regex::{Regex, RegexSet};

use crate::engine::redact::Redaction;

pub use dictionary::Variants;
pub use placeholder::{entropy, Placeholders};
pub use validate::*;

use dictionary::Dictionaries;

/// The categories of DESIGN.md. Detectors must use one of them (or `custom.…`).
pub const CATEGORIES: &[&str] = &[
    "pii.credit_card",
    "pii.iban",
    "pii.us_ssn",
    "pii.uk_nino",
    "pii.email",
    "secret.aws_access_key",
    "secret.github_token",
    "secret.slack_token",
    "secret.private_key",
    "secret.jwt",
    "secret.google_api_key",
    "secret.stripe_key",
    "corp.internal_host",
    "corp.internal_url",
    "corp.marking",
    "corp.codename",
];

/// Whether `category` is known.
pub fn is_known_category(category: &str) -> bool {
    CATEGORIES.contains(&category)
        || category
            .strip_prefix("custom.")
            .is_some_and(|r| !r.is_empty())
}

/// Nearby words that make a match count (or make it more certain).
#[derive(Clone, Debug)]
pub struct Context {
    /// Lowercase.
    pub words: Vec<String>,
    pub window: usize,
    pub required: bool,
}

/// One compiled detector.
#[derive(Clone, Debug)]
pub struct Detector {
    pub id: String,
    pub category: String,
    pub validator: Option<Validator>,
    pub context: Option<Context>,
    pub redaction: Redaction,
    /// What its placeholders look like (not reported).
    pub placeholders: Option<Placeholders>,
    /// Whether it also reads the text of base64 blobs.
    pub wrapped: bool,
}

impl Detector {
    /// Whether a detector of `category` reads wrapped text unless its rule file says.
    pub fn wrapped_by_default(category: &str) -> bool {
        category.starts_with("secret.")
    }
}

/// A detector's definition, as compiled from a rule file.
#[derive(Clone, Debug)]
pub struct DetectorDef {
    pub detector: Detector,
    pub patterns: Vec<String>,
    pub case_insensitive: bool,
    pub dictionary: Vec<String>,
    /// Which written variants of the dictionary's terms count.
    pub variants: Variants,
}

/// One match of a detector in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index of the detector in [`Detectors`].
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

/// How a match was made, for `explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    pub matched: Match,
    /// The text of the matching view the detector matched.
    pub view_text: String,
    /// How: "as written", "variant: case, separators", "decoded from base64"…
    pub how: String,
}

/// A scan with the matching view it was made on (for `explain`).
#[derive(Clone, Debug, Default)]
pub struct ExplainedScan {
    /// The view, when it differs from the text.
    pub view: Option<String>,
    pub matches: Vec<Explained>,
}

/// Every detector of a rule set, compiled together.
#[derive(Debug, Default)]
pub struct Detectors {
    detectors: Vec<Detector>,
    set: Option<RegexSet>,
    /// Per pattern of the set: its regex, its detector, whether it has a `value` group.
    patterns: Vec<(Regex, usize, bool)>,
    dictionaries: Option<Dictionaries>,
    /// The blob pattern (its index in the set is `patterns.len()`), when some detector
    /// reads wrapped text.
    blob: Option<Regex>,
    /// The detectors that read wrapped text, compiled on their own, and the index of each
    /// in this set.
    wrapped: Option<Box<(Detectors, Vec<usize>)>>,
    /// The index in the set of the dictionaries' first words, when they are a regex.
    first_words: Option<usize>,
}

/// Applies a detector's case option to a pattern.
pub fn effective_pattern(pattern: &str, case_insensitive: bool) -> String {
    if case_insensitive {
        format!("(?i:{pattern})")
    } else {
        pattern.to_string()
    }
}

/// Size limit of compiled regexes (bytes); rule sets beyond it are rejected.
const REGEX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// A candidate in view coordinates, with how it was found.
struct Candidate {
    detector: usize,
    start: usize,
    end: usize,
    how: How,
}

#[derive(Clone, Copy)]
enum How {
    Pattern,
    Dictionary(dictionary::Used),
    Wrapped,
}

/// A match in the text's offsets, with how and on which reading it was made.
struct Read {
    matched: Match,
    how: How,
    reading: Reading,
}

#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// The matching view, at these view offsets.
    View(usize, usize),
    /// The ASCII reading (offsets are the text's own).
    Ascii,
}

/// The text with each non-ASCII byte and each control the matching view removes read as a
/// space: same length, same offsets.
fn ascii_reading(text: &str) -> String {
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| {
            if b.is_ascii() && !view::is_hidden_control_byte(b) {
                b
            } else {
                b' '
            }
        })
        .collect();
    // Every byte is ASCII by construction.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Of the matches of one detector that overlap, keeps the longest, then the earliest.
/// `span` gives a match's detector, start and end.
fn reduce_overlaps<T>(mut found: Vec<T>, span: impl Fn(&T) -> (usize, usize, usize)) -> Vec<T> {
    found.sort_by_key(|m| {
        let (d, s, e) = span(m);
        (d, std::cmp::Reverse(e - s), s)
    });
    let mut kept: Vec<T> = Vec::with_capacity(found.len());
    for m in found {
        let (d, s, e) = span(&m);
        if !kept.iter().any(|k| {
            let (kd, ks, ke) = span(k);
            kd == d && ks < e && s < ke
        }) {
            kept.push(m);
        }
    }
    kept
}

/// Why a set of detectors does not compile. Each pattern was checked on its own when the
/// rules were read, so these concern the set as a whole (too large together, or a limit
/// one pattern reaches only once the view's options are applied).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("detector {detector}: {source}")]
    Pattern {
        detector: String,
        #[source]
        source: regex::Error,
    },
    #[error("the detectors' patterns do not compile together: {0}")]
    Set(#[source] regex::Error),
    #[error("dictionaries do not compile: {0}")]
    DictionaryRegex(#[source] regex::Error),
    #[error("dictionaries do not compile: {0}")]
    DictionaryAutomaton(#[source] aho_corasick::BuildError),
}

impl Detectors {
    /// Compiles detectors whose patterns were each checked already.
    pub fn build(defs: Vec<DetectorDef>) -> Result<Detectors, BuildError> {
        Self::build_layer(defs, true)
    }

    fn build_layer(defs: Vec<DetectorDef>, outer: bool) -> Result<Detectors, BuildError> {
        let wrapped_defs: Vec<(usize, DetectorDef)> = if outer {
            defs.iter()
                .enumerate()
                .filter(|(_, d)| d.detector.wrapped && !d.patterns.is_empty())
                .map(|(i, d)| (i, d.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let mut detectors = Vec::new();
        let mut sources = Vec::new();
        let mut patterns = Vec::new();
        let mut dicts = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            for p in &def.patterns {
                let src = effective_pattern(p, def.case_insensitive);
                let re = regex::RegexBuilder::new(&src)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|source| BuildError::Pattern {
                        detector: def.detector.id.clone(),
                        source,
                    })?;
                let has_value = re.capture_names().any(|n| n == Some("value"));
                patterns.push((re, i, has_value));
                sources.push(src);
            }
            if !def.dictionary.is_empty() {
                dicts.push((i, def.variants, def.dictionary));
            }
            detectors.push(def.detector);
        }
        let wrapped = if wrapped_defs.is_empty() {
            None
        } else {
            let (index, defs): (Vec<usize>, Vec<DetectorDef>) = wrapped_defs.into_iter().unzip();
            Some(Box::new((Self::build_layer(defs, false)?, index)))
        };
        let blob = if wrapped.is_some() {
            sources.push(wrapped::BLOB_PATTERN.to_string());
            Some(Regex::new(wrapped::BLOB_PATTERN).map_err(BuildError::Set)?)
        } else {
            None
        };
        let dictionaries = Dictionaries::build(dicts)?;
        // The dictionaries' first words ride in the set: the pass over the text that finds
        // the patterns also says whether a term may be there.
        let first_words = dictionaries
            .as_ref()
            .and_then(Dictionaries::first_words_pattern)
            .map(|p| {
                sources.push(p.to_string());
                sources.len() - 1
            });
        let set = if sources.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&sources)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(BuildError::Set)?,
            )
        };
        Ok(Detectors {
            detectors,
            set,
            patterns,
            dictionaries,
            blob,
            wrapped,
            first_words,
        })
    }

    pub fn len(&self) -> usize {
        self.detectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.detectors.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Detector> {
        self.detectors.get(i)
    }

    pub fn ids(&self) -> Vec<String> {
        self.detectors.iter().map(|d| d.id.clone()).collect()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.detectors.iter().position(|d| d.id == id)
    }

    /// Every validated match in `text`, ordered by start, end, detector. Offsets are bytes
    /// of `text` (not of its matching view).
    pub fn scan(&self, text: &str) -> Vec<Match> {
        let mut out: Vec<Match> = self
            .scan_readings(text)
            .1
            .into_iter()
            .map(|r| r.matched)
            .collect();
        out.sort_by_key(|m| (m.start, m.end, m.detector));
        out.dedup();
        out
    }

    /// [`Detectors::scan`], with the view each match was made on and how.
    pub fn scan_explained(&self, text: &str) -> ExplainedScan {
        let (view, found) = self.scan_readings(text);
        let ascii = found
            .iter()
            .any(|r| r.reading == Reading::Ascii)
            .then(|| ascii_reading(text));
        let mut matches: Vec<Explained> = found
            .into_iter()
            .map(|r| {
                let Match { start, end, .. } = r.matched;
                let how = match r.how {
                    How::Pattern => "pattern".to_string(),
                    How::Dictionary(u) => u.describe(),
                    How::Wrapped => "decoded from base64".to_string(),
                };
                let (how, view_text) = match r.reading {
                    Reading::Ascii => (
                        format!("{how}; read with its non-ASCII characters and controls as spaces"),
                        ascii.as_deref().and_then(|a| a.get(start..end)),
                    ),
                    Reading::View(s, e) => {
                        let seen = view.text.get(s..e);
                        if view.changed() && seen != text.get(start..end) {
                            (format!("{how}; normalised text"), seen)
                        } else {
                            (how, seen)
                        }
                    }
                };
                Explained {
                    matched: r.matched,
                    view_text: view_text.unwrap_or("").to_string(),
                    how,
                }
            })
            .collect();
        matches.sort_by_key(|e| (e.matched.start, e.matched.end, e.matched.detector));
        matches.dedup_by(|a, b| a.matched == b.matched);
        ExplainedScan {
            view: view.changed().then(|| view.text.into_owned()),
            matches,
        }
    }

    /// Every validated match in `text`'s offsets, read two ways: on its matching view, and
    /// — when `text` holds non-ASCII characters or controls the view removes — on its ASCII
    /// reading, where each of them is a space. A display that cannot show a character shows
    /// what is around it apart (`BLUEHERONÞ` reads as the codename where `Þ` is dropped), a
    /// letter the matching view makes ASCII (a full-width `Ｘ`) must not glue itself to a key
    /// it follows, and a control between a key and a word (a protobuf field's tag) must not
    /// glue them once removed. Overlaps of one detector are reduced across both readings.
    fn scan_readings<'t>(&self, text: &'t str) -> (view::View<'t>, Vec<Read>) {
        let view = view::matching_view(text);
        let mut found: Vec<Read> = self
            .scan_view(&view.text)
            .into_iter()
            .map(|c| {
                let (start, end) = view.to_original(c.start, c.end);
                Read {
                    matched: Match {
                        detector: c.detector,
                        start,
                        end,
                    },
                    how: c.how,
                    reading: Reading::View(c.start, c.end),
                }
            })
            .collect();
        if text.is_ascii() && !view.changed() {
            return (view, found);
        }
        let ascii = ascii_reading(text);
        for c in self.scan_view(&ascii) {
            // The reading has the text's offsets; a match never starts or ends inside a
            // character, even one read as a space.
            let (mut start, mut end) = (c.start, c.end);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            while !text.is_char_boundary(end) {
                end += 1;
            }
            found.push(Read {
                matched: Match {
                    detector: c.detector,
                    start,
                    end,
                },
                how: c.how,
                reading: Reading::Ascii,
            });
        }
        (
            view,
            reduce_overlaps(found, |r| {
                (r.matched.detector, r.matched.start, r.matched.end)
            }),
        )
    }

    /// Every validated candidate in a matching view, in view coordinates, overlaps of one
    /// detector reduced.
    fn scan_view(&self, text: &str) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        let mut blobs = false;
        let mut words = false;
        // Most texts hold nothing: a non-overlapping search, which can stop at the first
        // match and runs the DFA's fast loop, says so before the overlapping one that names
        // every pattern matching.
        if let Some(set) = self.set.as_ref().filter(|set| set.is_match(text)) {
            let hits = set.matches(text);
            if hits.matched_any() {
                for pi in hits.iter() {
                    if Some(pi) == self.first_words {
                        words = true;
                        continue;
                    }
                    let Some((re, det, has_value)) = self.patterns.get(pi) else {
                        blobs = true;
                        continue;
                    };
                    if *has_value {
                        for caps in re.captures_iter(text) {
                            if let Some(m) = caps.name("value").or_else(|| caps.get(0)) {
                                self.accept(text, *det, m.start(), m.end(), How::Pattern, &mut out);
                            }
                        }
                    } else {
                        for m in re.find_iter(text) {
                            self.accept(text, *det, m.start(), m.end(), How::Pattern, &mut out);
                        }
                    }
                }
            }
        }
        if let Some(dicts) = &self.dictionaries {
            let lookalikes = dicts.wants_lookalikes() && !text.is_ascii();
            // The set read this very text: where none of the terms' first words is (and no
            // look-alike letter stands for one), no term is.
            let possible = self.first_words.is_none() || words || lookalikes;
            if possible {
                let look = if lookalikes {
                    view::lookalike_view(text)
                } else {
                    view::View {
                        text: std::borrow::Cow::Borrowed(text),
                        map: None,
                    }
                };
                for m in dicts.scan(&look.text, look.map.as_ref()) {
                    let (s, e) = look.to_original(m.start, m.end);
                    self.accept(text, m.detector, s, e, How::Dictionary(m.used), &mut out);
                }
            }
        }
        if blobs {
            if let (Some(blob), Some(inner)) = (&self.blob, &self.wrapped) {
                let (inner, index) = &**inner;
                for b in blob.find_iter(text) {
                    let Some(decoded) = wrapped::decode_blob(b.as_str()) else {
                        continue;
                    };
                    for m in inner.scan(&decoded) {
                        if let Some(&det) = index.get(m.detector) {
                            out.push(Candidate {
                                detector: det,
                                start: b.start(),
                                end: b.end(),
                                how: How::Wrapped,
                            });
                        }
                    }
                }
            }
        }
        reduce_overlaps(out, |c| (c.detector, c.start, c.end))
    }

    fn accept(
        &self,
        text: &str,
        det: usize,
        start: usize,
        end: usize,
        how: How,
        out: &mut Vec<Candidate>,
    ) {
        if start >= end {
            return;
        }
        let Some(d) = self.detectors.get(det) else {
            return;
        };
        let Some(value) = text.get(start..end) else {
            return;
        };
        if let Some(v) = d.validator {
            if !v.check(value) {
                return;
            }
        }
        if let Some(p) = &d.placeholders {
            if p.reason(value).is_some() {
                return;
            }
        }
        if let Some(ctx) = &d.context {
            if ctx.required && !has_context(text, start, end, ctx) {
                return;
            }
        }
        out.push(Candidate {
            detector: det,
            start,
            end,
            how,
        });
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `text[start..end]` is not part of a longer word.
pub fn is_whole_word(text: &str, start: usize, end: usize) -> bool {
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return false;
    }
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let first = text[start..end].chars().next();
    let last = text[start..end].chars().next_back();
    // A boundary only matters where the entry itself starts/ends with a word character.
    let left_ok = !(before.is_some_and(is_word_char) && first.is_some_and(is_word_char));
    let right_ok = !(after.is_some_and(is_word_char) && last.is_some_and(is_word_char));
    left_ok && right_ok
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
}

/// Whether one of the context words occurs (whole word, case-insensitive) within the window
/// around `start..end`.
pub fn has_context(text: &str, start: usize, end: usize, ctx: &Context) -> bool {
    let lo = floor_boundary(text, start.saturating_sub(ctx.window));
    let hi = ceil_boundary(text, end.saturating_add(ctx.window).min(text.len()));
    let around = format!("{} {}", &text[lo..start], &text[end..hi]).to_lowercase();
    ctx.words.iter().any(|w| {
        let mut from = 0;
        while let Some(i) = around[from..].find(w.as_str()) {
            let s = from + i;
            if is_whole_word(&around, s, s + w.len()) {
                return true;
            }
            from = s + w.len().max(1);
            if from >= around.len() {
                break;
            }
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(
        id: &str,
        cat: &str,
        patterns: &[&str],
        dict: &[&str],
        v: Option<Validator>,
    ) -> DetectorDef {
        DetectorDef {
            detector: Detector {
                id: id.into(),
                category: cat.into(),
                validator: v,
                context: None,
                redaction: Redaction::default_for(cat),
                placeholders: None,
                wrapped: Detector::wrapped_by_default(cat),
            },
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            case_insensitive: false,
            dictionary: dict.iter().map(|s| s.to_string()).collect(),
            variants: Variants::default(),
        }
    }

    #[test]
    fn validators() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("4111-1111-1111-1111"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("0000 0000 0000 0000"));
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("GB82 WEST 1234 5698 7654 33"));
        assert!(!iban("DE8937040044053201300"));
        assert!(us_ssn("123-45-6780"));
        assert!(!us_ssn("666-45-6789"));
        assert!(!us_ssn("900-45-6789"));
        assert!(!us_ssn("123-00-6789"));
        assert!(!us_ssn("078-05-1120"));
        assert!(uk_nino("AB 12 34 56 C"));
        assert!(!uk_nino("BG123456C"));
        assert!(!uk_nino("DA123456C"));
        assert!(!uk_nino("AB123456E"));
        assert!(jwt("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"));
        assert!(!jwt("eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2ln"));
        assert!(!jwt("abc.def.ghi"));
        assert!(aws_key("AKIAIOSFODNN7EXAMPLE"));
        assert!(!aws_key("AKIAIOSFODNN7EXAMPL"));
        assert!(private_ipv4("10.1.2.3"));
        assert!(private_ipv4("192.168.0.1:8080"));
        assert!(!private_ipv4("8.8.8.8"));
        assert!(email("a.b@example.com"));
        assert!(!email("alice@mastodon"));
    }

    #[test]
    fn regex_dictionary_and_validator_together() {
        let d = Detectors::build(vec![
            det(
                "card",
                "pii.credit_card",
                &[r"\b(?:\d[ -]?){12,18}\d\b"],
                &[],
                Some(Validator::Luhn),
            ),
            det(
                "codename",
                "corp.codename",
                &[],
                &["BLUEHERON", "Project Nightjar"],
                None,
            ),
        ])
        .unwrap();
        let text =
            "pay 4111 1111 1111 1111 not 4111 1111 1111 1112 re project nightjar and blueherons";
        let m = d.scan(text);
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(&text[m[0].start..m[0].end], "4111 1111 1111 1111");
        assert_eq!(&text[m[1].start..m[1].end], "project nightjar");
        assert!(d.scan("nothing here at all").is_empty());
    }

    #[test]
    fn value_group_and_context_words() {
        let mut def = det(
            "pw",
            "custom.password",
            &[r"password[:=]\s*(?P<value>\S+)"],
            &[],
            None,
        );
        def.detector.context = Some(Context {
            words: vec!["login".into()],
            window: 30,
            required: true,
        });
        let d = Detectors::build(vec![def]).unwrap();
        let t = "login with password: hunter2";
        let m = d.scan(t);
        assert_eq!(m.len(), 1);
        assert_eq!(&t[m[0].start..m[0].end], "hunter2");
        assert!(d.scan("password: hunter2 somewhere").is_empty());
    }

    #[test]
    fn whole_words_with_unicode_neighbours() {
        assert!(is_whole_word("«KESTREL-7»", "«".len(), "«KESTREL-7".len()));
        assert!(!is_whole_word("xKESTREL", 1, 8));
        assert!(is_whole_word("é BLUEHERON", 3, 12));
    }

    #[test]
    fn non_ascii_neighbours_do_not_hide_a_match() {
        let d = Detectors::build(vec![
            det(
                "aws",
                "secret.aws_access_key",
                &[r"(?:^|[^A-Za-z0-9])(?P<value>AKIA[A-Z0-9]{16})(?-u:\b)"],
                &[],
                None,
            ),
            det("codename", "corp.codename", &[], &["BLUEHERON"], None),
        ])
        .unwrap();
        // A letter of the term's script but not ASCII, a letter the matching view makes
        // ASCII (full-width), a combining mark: each is read apart where a display drops it.
        for (text, want) in [
            ("re BLUEHERONÞ today", "BLUEHERON"),
            ("ÞBLUEHERON", "BLUEHERON"),
            ("BLUEHERONＸ", "BLUEHERON"),
            ("key AKIAZ3MHGQ7XW2KLT5PBＸ", "AKIAZ3MHGQ7XW2KLT5PB"),
            ("ＸAKIAZ3MHGQ7XW2KLT5PB", "AKIAZ3MHGQ7XW2KLT5PB"),
        ] {
            let m = d.scan(text);
            assert_eq!(m.len(), 1, "{text}: {m:?}");
            assert_eq!(&text[m[0].start..m[0].end], want, "{text}");
            let e = d.scan_explained(text);
            assert!(
                e.matches[0].how.contains("non-ASCII"),
                "{text}: {}",
                e.matches[0].how
            );
        }
        // ASCII letters still join a word; a term spelled in look-alikes throughout is a
        // word of its own script.
        for text in ["BLUEHERONS are birds", "xBLUEHERON", "МYВLUЕНЕRОN"] {
            assert!(d.scan(text).is_empty(), "{text}");
        }
        // One match where both readings find the term, on the text's bytes.
        let text = "«BLUEHERON» and né";
        let m = d.scan(text);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(&text[m[0].start..m[0].end], "BLUEHERON");
        // Controls the view removes: a term written through them is found on the view; a
        // key between a protobuf field's tag bytes and the next field is found where they
        // are read as spaces (removed, they would glue it to `ok`).
        for (text, want) in [
            (
                "\n\u{14}AKIAZ3MHGQ7XW2KLT5PB\u{12}\u{2}ok",
                "AKIAZ3MHGQ7XW2KLT5PB",
            ),
            ("B\0L\0U\0E\0H\0E\0R\0O\0N\0", "B\0L\0U\0E\0H\0E\0R\0O\0N"),
        ] {
            let m = d.scan(text);
            assert_eq!(m.len(), 1, "{text:?}: {m:?}");
            assert_eq!(&text[m[0].start..m[0].end], want, "{text:?}");
        }
    }
}
