//! Validators: checksums and formats that a candidate must pass to be reported.
//!
//! Numbers are validated on their digits: the separators people write between groups
//! (spaces, hyphens, dots, slashes, in runs: the matching view has already turned no-break
//! spaces and typographic dashes into plain ones) are skipped; any other character fails.

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

/// Whether `c` may separate the groups of a written number.
pub fn is_number_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '/')
}

/// Luhn checksum over the digits (separators ignored), 12 to 19 digits.
pub fn luhn(s: &str) -> bool {
    if s.chars()
        .any(|c| !(c.is_ascii_digit() || is_number_separator(c)))
    {
        return false;
    }
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
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

/// IBAN: known country, its exact length, mod-97 = 1 (separators ignored,
/// case-insensitive).
pub fn iban(s: &str) -> bool {
    let compact: String = s
        .chars()
        .filter(|c| !is_number_separator(*c))
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

/// US SSN: `AAA-GG-SSSS` (or 9 digits, or other separators): area not 000, 666 or 9xx;
/// group not 00; serial not 0000; not a well-known advertising number.
pub fn us_ssn(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 9
        || s.chars()
            .any(|c| !(c.is_ascii_digit() || is_number_separator(c)))
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
/// not BG, GB, KN, NK, NT, TN, ZZ), six digits, suffix A–D. Any case; separators ignored.
pub fn uk_nino(s: &str) -> bool {
    let c: Vec<char> = s
        .chars()
        .filter(|c| !c.is_whitespace() && !is_number_separator(*c))
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
