//! Secrets wrapped once: base64 and base64url blobs, decoded and scanned again.
//!
//! A credential pasted as a base64 blob (a Docker `auth`, a Kubernetes secret's `data`, an
//! HTTP Basic header, a JSON config someone encoded) hides from every pattern. A blob is a
//! run of at least 24 base64 or base64url characters (`\/`, as JSON escapes a
//! slash, counts as `/`), optionally padded; it is decoded, and the decoded text is scanned
//! by the detectors that read wrapped text (`wrapped:` in the rule file; by default those
//! of `secret.*` categories). A finding in the decoded text is reported as the whole blob,
//! so a redaction replaces the blob.
//!
//! Bounds: one layer (a blob inside a decoded blob is not decoded again); blobs longer
//! than [`MAX_BLOB`] characters (files, images) are not decoded; decoding and the second
//! scan are linear in the blob, so a text costs at most about twice its plain scan.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// Longest blob decoded (characters).
pub const MAX_BLOB: usize = 256 * 1024;
/// The blob pattern (also in the detectors' `RegexSet`, so that texts without a blob pay
/// nothing more). 24 characters are 18 bytes; the shortest secret the shipped detectors
/// know has 20 characters (28 in base64).
pub const BLOB_PATTERN: &str = r"(?:[A-Za-z0-9+_\-]|\\?/){24,}={0,2}";

fn engine(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// The text a blob decodes to, when it decodes to text.
pub fn decode_blob(blob: &str) -> Option<String> {
    // Base64 of 18 bytes or more has capitals and small letters; identifiers such as
    // `feature_flag_number_12_enabled` (JSON keys, URLs' paths) do not, and are not decoded.
    let b = blob.as_bytes();
    if blob.len() > MAX_BLOB
        || !b.iter().any(u8::is_ascii_uppercase)
        || !b.iter().any(u8::is_ascii_lowercase)
    {
        return None;
    }
    let compact: String = blob.chars().filter(|&c| c != '\\' && c != '=').collect();
    let url = compact.contains(['-', '_']);
    if url && compact.contains(['+', '/']) {
        return None;
    }
    // A lone trailing character carries no whole byte.
    let usable = if compact.len() % 4 == 1 {
        &compact[..compact.len() - 1]
    } else {
        &compact[..]
    };
    let bytes = if url {
        engine(&alphabet::URL_SAFE).decode(usable)
    } else {
        engine(&alphabet::STANDARD).decode(usable)
    }
    .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // Mostly text, or not worth a scan: binary data decodes to control characters.
    let total = text.chars().count();
    let printable = text
        .chars()
        .filter(|c| !c.is_control() || c.is_whitespace())
        .filter(|&c| c != char::REPLACEMENT_CHARACTER)
        .count();
    (total > 0 && printable * 10 >= total * 9).then(|| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_url_safe_padded_unpadded_and_escaped() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let plain = "user:AKIAZ3MHGQ7XW2KLT5PB??>>";
        let std = STANDARD.encode(plain);
        let url = URL_SAFE_NO_PAD.encode(plain);
        assert_ne!(
            std.trim_end_matches('='),
            url,
            "the sample uses both alphabets"
        );
        assert_eq!(decode_blob(&std).as_deref(), Some(plain));
        assert_eq!(decode_blob(&url).as_deref(), Some(plain));
        assert_eq!(
            decode_blob(&std.replace('/', "\\/")).as_deref(),
            Some(plain)
        );
        assert_eq!(
            decode_blob("3f786850e387550fdab836ed7e6dc881de23001b"),
            None
        );
        assert_eq!(decode_blob(&"A".repeat(MAX_BLOB + 4)), None);
        assert_eq!(decode_blob("feature_flag_number_12_enabled"), None);
    }
}
