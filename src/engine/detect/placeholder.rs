//! Placeholders: candidates that have a secret's shape but are obviously not secrets.
//!
//! Documentation, tutorials and bug reports are full of `ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx`,
//! `AKIAXXXXXXXXXXXXXXXX` and vendors' published example keys. Blocking them teaches
//! employees that the gateway cries wolf, so a detector may declare what its placeholders
//! look like (`placeholders:` in its rule file). A candidate is a placeholder when its
//! *secret part* (the value less the detector's fixed `prefix`):
//! - is made of runs: split at `-`, `_`, `.`, `/`, every piece is one character repeated
//!   (`XXXX`, `0000`), a plain sequence (`1234`, `abcd`) or a shorter block repeated
//!   (`ABCDABCD`, `1234567890abcdef1234567890abcdef`);
//! - or has a Shannon entropy below the detector's floor (`min_entropy`, bits per
//!   character): random secrets sit far above it (the shipped floors are chosen so that a
//!   random value of the format falls below them far less often than once in a billion);
//! - or is a well-known documentation example (`examples`, exact values, or
//!   `example_pattern`), unless `report_examples: true` (organisations that want even the
//!   published examples blocked).
//!
//! Placeholders are not findings: they are not counted, redacted or blocked.

use regex::Regex;

/// A detector's placeholder rules, compiled.
#[derive(Clone, Debug, Default)]
pub struct Placeholders {
    /// The fixed part of a value (anchored at its start), not counted as secret.
    pub prefix: Option<Regex>,
    /// Bits per character below which a secret part is not a secret (0: no floor).
    pub min_entropy: f64,
    /// Whether runs of one character and plain sequences are placeholders.
    pub runs: bool,
    /// Published example values (exact).
    pub examples: Vec<String>,
    /// Published example values (a pattern over the whole value).
    pub example_pattern: Option<Regex>,
    /// Report documentation examples like any secret.
    pub report_examples: bool,
}

impl Placeholders {
    /// Why `value` is a placeholder, or `None` when it is to be reported.
    pub fn reason(&self, value: &str) -> Option<&'static str> {
        if !self.report_examples
            && (self.examples.iter().any(|e| e == value)
                || self
                    .example_pattern
                    .as_ref()
                    .is_some_and(|p| p.is_match(value)))
        {
            return Some("a published documentation example");
        }
        let secret = match &self.prefix {
            Some(p) => match p.find(value) {
                Some(m) if m.start() == 0 => &value[m.end()..],
                _ => value,
            },
            None => value,
        };
        if secret.is_empty() {
            return None;
        }
        if self.runs && is_runs(secret) {
            return Some("a run of one character or a plain sequence");
        }
        if self.min_entropy > 0.0 && entropy(secret) < self.min_entropy {
            return Some("below the detector's entropy floor");
        }
        None
    }
}

/// Shannon entropy of `s`, bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `a` then `b` in a typed sequence: the next character, or a digit run or the hexadecimal
/// or Latin alphabet starting again (`…890abc`, `…def123`).
fn is_sequence_step(a: u8, b: u8) -> bool {
    b == a.wrapping_add(1)
        || (a == b'9' && matches!(b, b'0' | b'a' | b'A'))
        || (a == b'0' && matches!(b, b'a' | b'A'))
        || (matches!(a, b'f' | b'F' | b'z' | b'Z') && matches!(b, b'0' | b'1' | b'a' | b'A'))
}

/// Whether `b` repeats a shorter block at least twice (`ABCDABCD`, `1234567890abcdef1234…`).
fn is_periodic(b: &[u8]) -> bool {
    (1..=b.len() / 2).any(|p| (p..b.len()).all(|i| b[i] == b[i - p]))
}

/// Whether every piece of `s` (split at `-`, `_`, `.`, `/`) is one repeated character, a
/// plain ascending sequence, or a shorter block repeated.
fn is_runs(s: &str) -> bool {
    let mut any = false;
    for piece in s.split(['-', '_', '.', '/']) {
        let b = piece.as_bytes();
        if b.is_empty() {
            continue;
        }
        any = true;
        let same = b.iter().all(|&c| c == b[0]);
        let ascending = b.windows(2).all(|w| is_sequence_step(w[0], w[1]));
        if !same && !ascending && !is_periodic(b) {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Placeholders {
        Placeholders {
            prefix: Regex::new("^(?:AKIA|ghp_|xox[bp]-)").ok(),
            min_entropy: 2.5,
            runs: true,
            examples: vec!["AKIAIOSFODNN7EXAMPLE".into()],
            example_pattern: None,
            report_examples: false,
        }
    }

    #[test]
    fn runs_sequences_examples_and_low_entropy() {
        let p = rules();
        assert!(p.reason("AKIAXXXXXXXXXXXXXXXX").is_some());
        assert!(p
            .reason("ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
            .is_some());
        assert!(p
            .reason("xoxb-000000000000-0000000000000-xxxxxxxxxxxxxxxxxxxxxxxx")
            .is_some());
        assert!(p.reason("AKIA1234567890ABCDEF").is_some());
        assert!(p.reason("AKIA7890abcdef123456").is_some());
        assert!(p.reason("AKIAABABABABABABABAB").is_some());
        assert!(p
            .reason("ghp_1234567890abcdef1234567890abcdef12345678")
            .is_some());
        assert!(p.reason("AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(p.reason("AKIAZ3MHGQ7XW2KLT5PB").is_none());
        assert!(p.reason("AKIAXXXXXXQ7XW2KLT5P").is_none());
        let strict = Placeholders {
            report_examples: true,
            ..rules()
        };
        assert!(strict.reason("AKIAIOSFODNN7EXAMPLE").is_none());
        assert!(strict.reason("AKIAXXXXXXXXXXXXXXXX").is_some());
    }

    #[test]
    fn entropy_of_simple_strings() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abab") - 1.0).abs() < 1e-9);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
