//! "Did you mean …?" for misspelt keys, actions, categories, sites, activities and groups:
//! the closest known name by edit distance (transpositions count as one edit), when it is
//! close enough to be a typo rather than another word.

/// Optimal string alignment distance (Levenshtein with adjacent transpositions), on chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The known name closest to `word`, if it is within a typo's reach (a third of its length,
/// at least one edit).
pub fn did_you_mean<'a, I>(word: &str, known: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let reach = (word.chars().count() / 3).max(1);
    known
        .into_iter()
        .filter(|k| *k != word)
        .map(|k| {
            (
                edit_distance(&word.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                k,
            )
        })
        .filter(|(d, _)| *d <= reach)
        .min_by_key(|(d, k)| (*d, k.len()))
        .map(|(_, k)| k)
}

/// `message` with ", did you mean `x`?" after the unknown name, for the messages serde
/// writes about unknown fields and variants (`unknown field `activites`, expected one of
/// `sites`, `activities`, …`).
pub fn serde_message_with_suggestion(message: &str) -> String {
    for what in ["unknown field `", "unknown variant `"] {
        let Some(at) = message.find(what) else {
            continue;
        };
        let (before, rest) = message.split_at(at + what.len());
        let Some((word, tail)) = rest.split_once('`') else {
            continue;
        };
        let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        if let Some(s) = did_you_mean(word, expected.iter().copied()) {
            let tail = tail.trim_start_matches(',').trim();
            return format!("{before}{word}`, did you mean `{s}`? ({tail})");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_not_typos() {
        assert_eq!(edit_distance("activites", "activities"), 1);
        assert_eq!(edit_distance("blok", "block"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        let known = ["sites", "activities", "groups", "categories"];
        assert_eq!(did_you_mean("activites", known), Some("activities"));
        assert_eq!(did_you_mean("categores", known), Some("categories"));
        assert_eq!(did_you_mean("zzz", known), None);
        assert_eq!(
            did_you_mean("corp.codenme", ["corp.codename", "corp.marking"]),
            Some("corp.codename")
        );
    }

    #[test]
    fn serde_messages_get_a_suggestion() {
        assert_eq!(
            serde_message_with_suggestion(
                "unknown variant `blok`, expected one of `allow`, `log`, `redact`, `coach`, `block`"
            ),
            "unknown variant `blok`, did you mean `block`? (expected one of `allow`, `log`, `redact`, `coach`, `block`)"
        );
        assert_eq!(
            serde_message_with_suggestion("unknown field `activites`, expected `activities`"),
            "unknown field `activites`, did you mean `activities`? (expected `activities`)"
        );
        assert_eq!(
            serde_message_with_suggestion("missing field `id`"),
            "missing field `id`"
        );
    }
}
