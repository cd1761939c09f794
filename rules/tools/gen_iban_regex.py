#!/usr/bin/env python3
"""Prints the IBAN detector's pattern: one alternative per country with its exact length
(SWIFT IBAN registry), printed as groups of four with optional separators (a space, hyphen,
dot or slash, up to two: the matching view has already read no-break spaces as spaces), so
the match never swallows a following word or number. The `iban` validator then checks the
country length again and the mod-97 checksum."""
LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

SEP = r"[ \-./]{0,2}"

def pattern() -> str:
    by_len = {}
    for cc, n in sorted(LENGTHS.items()):
        by_len.setdefault(n, []).append(cc)
    alts = []
    for n, ccs in sorted(by_len.items()):
        bban = n - 4
        groups, rest = divmod(bban, 4)
        body = "(?:%s[A-Z0-9]{4}){%d}" % (SEP, groups)
        if rest:
            body += SEP + "[A-Z0-9]{%d}" % rest
        alts.append("(?:%s)[0-9]{2}%s" % ("|".join(ccs), body))
    return r"(?-u:\b)(?:" + "|".join(alts) + r")(?-u:\b)"

if __name__ == "__main__":
    print(pattern())
