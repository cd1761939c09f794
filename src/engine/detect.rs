//! Detectors of sensitive content: regexes compiled together, case-insensitive whole-word
//! dictionaries, validators (checksums and formats) and context words.
//!
//! # How a text is scanned
//! 1. One [`regex::RegexSet`] of every pattern of every detector runs once over the text and
//!    says which patterns match anywhere. Text without findings costs that one pass.
//! 2. Each pattern that matched runs on its own to find every (non-overlapping, leftmost-
//!    first) match. A pattern with a capture group named `value` reports that group's span.
//! 3. One Aho–Corasick automaton of every dictionary entry (ASCII case-insensitive) reports
//!    all overlapping occurrences; only whole words count (the characters around the match
//!    are not alphanumeric or `_`).
//! 4. Each candidate is checked by its detector's validator, then its context words.
//!
//! # Overlaps
//! Matches of *different* detectors are all reported, even when they overlap (a URL on an
//! internal host is both `corp.internal_url` and `corp.internal_host`). Overlapping matches
//! of the *same* detector are reduced to one: the longest, then the earliest. Redaction
//! merges overlapping findings (see `redact`). Findings are ordered by start, then end,
//! then detector order.
//!
//! # Hostile input
//! The `regex` crate guarantees matching in time linear in the text for any pattern;
//! validators are linear in the match; context look-ups are bounded by the window. No
//! input panics. Offsets are byte offsets into the field text, always on char boundaries.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};

use crate::engine::redact::Redaction;

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

/// Checks that a candidate match is real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validator {
    Luhn,
    Iban,
    UsSsn,
    UkNino,
    Jwt,
    AwsKey,
    PrivateIpv4,
    Email,
}

impl Validator {
    pub const NAMES: &'static [&'static str] = &[
        "luhn",
        "iban",
        "us_ssn",
        "uk_nino",
        "jwt",
        "aws_key",
        "private_ipv4",
        "email",
    ];

    pub fn parse(name: &str) -> Option<Validator> {
        Some(match name {
            "luhn" => Validator::Luhn,
            "iban" => Validator::Iban,
            "us_ssn" | "ssn" => Validator::UsSsn,
            "uk_nino" | "nino" => Validator::UkNino,
            "jwt" => Validator::Jwt,
            "aws_key" => Validator::AwsKey,
            "private_ipv4" => Validator::PrivateIpv4,
            "email" => Validator::Email,
            _ => return None,
        })
    }

    pub fn check(&self, s: &str) -> bool {
        match self {
            Validator::Luhn => luhn(s),
            Validator::Iban => iban(s),
            Validator::UsSsn => us_ssn(s),
            Validator::UkNino => uk_nino(s),
            Validator::Jwt => jwt(s),
            Validator::AwsKey => aws_key(s),
            Validator::PrivateIpv4 => private_ipv4(s),
            Validator::Email => email(s),
        }
    }
}

/// Luhn checksum over the digits (spaces and dashes ignored), 12 to 19 digits.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if s.chars()
        .any(|c| !(c.is_ascii_digit() || c == ' ' || c == '-'))
    {
        return false;
    }
    if !(12..=19).contains(&digits.len()) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("LY", 25),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SD", 18),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS.iter().find(|(c, _)| *c == country).map(|(_, n)| *n)
}

/// IBAN: known country, its exact length, mod-97 = 1 (spaces ignored, case-insensitive).
pub fn iban(s: &str) -> bool {
    let compact: String = s
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase();
    if compact.len() < 15 || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let (country, rest) = compact.split_at(2);
    if iban_length(country) != Some(compact.len()) || !rest[..2].chars().all(|c| c.is_ascii_digit())
    {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u64 = 0;
    for c in rearranged.chars() {
        let v = match c.to_digit(36) {
            Some(v) => v as u64,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// US SSN: `AAA-GG-SSSS` (or 9 digits, or spaces): area not 000, 666 or 9xx; group not
/// 00; serial not 0000; not a well-known advertising number.
pub fn us_ssn(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 9
        || s.chars()
            .any(|c| !(c.is_ascii_digit() || c == '-' || c == ' '))
    {
        return false;
    }
    let area: u32 = digits[0..3].parse().unwrap_or(0);
    let group: u32 = digits[3..5].parse().unwrap_or(0);
    let serial: u32 = digits[5..9].parse().unwrap_or(0);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    !matches!(digits.as_str(), "078051120" | "219099999" | "123456789")
}

/// UK National Insurance number: two prefix letters (not D, F, I, Q, U, V; second not O;
/// not BG, GB, KN, NK, NT, TN, ZZ), six digits, suffix A–D. Spaces ignored.
pub fn uk_nino(s: &str) -> bool {
    let c: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if c.len() != 9 {
        return false;
    }
    let (a, b) = (c[0], c[1]);
    if !a.is_ascii_uppercase() || !b.is_ascii_uppercase() {
        return false;
    }
    if "DFIQUV".contains(a) || "DFIQUVO".contains(b) {
        return false;
    }
    let prefix: String = [a, b].iter().collect();
    if ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"].contains(&prefix.as_str()) {
        return false;
    }
    c[2..8].iter().all(|d| d.is_ascii_digit()) && "ABCD".contains(c[8])
}

/// JWT: three base64url segments whose header decodes to a JSON object with `alg`.
pub fn jwt(s: &str) -> bool {
    use base64::Engine;
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 3 || parts[0].is_empty() || parts[1].is_empty() {
        return false;
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Ok(header) = engine.decode(parts[0].trim_end_matches('=')) else {
        return false;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return false;
    };
    value.get("alg").is_some_and(|a| a.is_string())
}

/// AWS access key id: a known 4-letter prefix and 16 base32 characters.
pub fn aws_key(s: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA", "ABIA", "ACCA",
    ];
    s.len() == 20
        && PREFIXES.iter().any(|p| s.starts_with(p))
        && s[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
}

/// A private-range (RFC 1918), loopback-free IPv4 address, optionally with a port.
pub fn private_ipv4(s: &str) -> bool {
    let host = s.split(':').next().unwrap_or(s);
    let Ok(ip) = host.parse::<std::net::Ipv4Addr>() else {
        return false;
    };
    ip.is_private()
}

/// A plausible e-mail address: one `@`, a dotted domain with an alphabetic TLD of 2+.
pub fn email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 || local.contains('@') {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
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
}

/// A detector's definition, as compiled from a rule file.
#[derive(Clone, Debug)]
pub struct DetectorDef {
    pub detector: Detector,
    pub patterns: Vec<String>,
    pub case_insensitive: bool,
    pub dictionary: Vec<String>,
}

/// One match of a detector in a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index of the detector in [`Detectors`].
    pub detector: usize,
    pub start: usize,
    pub end: usize,
}

/// Every detector of a rule set, compiled together.
#[derive(Debug, Default)]
pub struct Detectors {
    detectors: Vec<Detector>,
    set: Option<RegexSet>,
    /// Per pattern of the set: its regex, its detector, whether it has a `value` group.
    patterns: Vec<(Regex, usize, bool)>,
    dictionary: Option<AhoCorasick>,
    /// Per dictionary entry: its detector.
    entry_owner: Vec<usize>,
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

impl Detectors {
    /// Compiles detectors whose patterns were each checked already. An `Err` concerns the
    /// set as a whole (for example, too large).
    pub fn build(defs: Vec<DetectorDef>) -> Result<Detectors, String> {
        let mut detectors = Vec::new();
        let mut sources = Vec::new();
        let mut patterns = Vec::new();
        let mut words = Vec::new();
        let mut entry_owner = Vec::new();
        for (i, def) in defs.into_iter().enumerate() {
            for p in &def.patterns {
                let src = effective_pattern(p, def.case_insensitive);
                let re = regex::RegexBuilder::new(&src)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("detector {}: {e}", def.detector.id))?;
                let has_value = re.capture_names().any(|n| n == Some("value"));
                patterns.push((re, i, has_value));
                sources.push(src);
            }
            for w in &def.dictionary {
                let w = w.trim();
                if !w.is_empty() {
                    words.push(w.to_string());
                    entry_owner.push(i);
                }
            }
            detectors.push(def.detector);
        }
        let set = if sources.is_empty() {
            None
        } else {
            Some(
                regex::RegexSetBuilder::new(&sources)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("the detectors' patterns do not compile together: {e}"))?,
            )
        };
        let dictionary = if words.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&words)
                    .map_err(|e| format!("dictionaries do not compile: {e}"))?,
            )
        };
        Ok(Detectors {
            detectors,
            set,
            patterns,
            dictionary,
            entry_owner,
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

    /// Every validated match in `text`, ordered by start, end, detector.
    pub fn scan(&self, text: &str) -> Vec<Match> {
        let mut out: Vec<Match> = Vec::new();
        if let Some(set) = &self.set {
            let hits = set.matches(text);
            if hits.matched_any() {
                for pi in hits.iter() {
                    let (re, det, has_value) = &self.patterns[pi];
                    if *has_value {
                        for caps in re.captures_iter(text) {
                            if let Some(m) = caps.name("value").or_else(|| caps.get(0)) {
                                self.accept(text, *det, m.start(), m.end(), &mut out);
                            }
                        }
                    } else {
                        for m in re.find_iter(text) {
                            self.accept(text, *det, m.start(), m.end(), &mut out);
                        }
                    }
                }
            }
        }
        if let Some(ac) = &self.dictionary {
            for m in ac.find_overlapping_iter(text) {
                let (s, e) = (m.start(), m.end());
                if is_whole_word(text, s, e) {
                    let det = self.entry_owner[m.pattern().as_usize()];
                    self.accept(text, det, s, e, &mut out);
                }
            }
        }
        out.sort_by_key(|m| (m.detector, m.start, std::cmp::Reverse(m.end)));
        // Same detector, overlapping: keep the longest, then the earliest.
        let mut kept: Vec<Match> = Vec::with_capacity(out.len());
        let mut by_len = out.clone();
        by_len.sort_by_key(|m| (m.detector, std::cmp::Reverse(m.end - m.start), m.start));
        for m in by_len {
            if !kept
                .iter()
                .any(|k| k.detector == m.detector && k.start < m.end && m.start < k.end)
            {
                kept.push(m);
            }
        }
        kept.sort_by_key(|m| (m.start, m.end, m.detector));
        kept
    }

    fn accept(&self, text: &str, det: usize, start: usize, end: usize, out: &mut Vec<Match>) {
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
        if let Some(ctx) = &d.context {
            if ctx.required && !has_context(text, start, end, ctx) {
                return;
            }
        }
        out.push(Match {
            detector: det,
            start,
            end,
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
            },
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            case_insensitive: false,
            dictionary: dict.iter().map(|s| s.to_string()).collect(),
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
}
