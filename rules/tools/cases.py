"""Detector cases: for each category, positive texts (with the values that must be found)
and hard negatives (texts that must not produce that category)."""
import testvalues as tv
from testvalues import R

def P(text, *values, also=()):
    return {"text": text, "values": list(values), "also": list(also)}

def N(text, also=()):
    return {"text": text, "also": list(also)}

def cards():
    v16 = tv.luhn_complete("4", 16); mc = tv.luhn_complete("53", 16); mc2 = tv.luhn_complete("2221", 16)
    amex = tv.luhn_complete("37", 15); disc = tv.luhn_complete("6011", 16); jcb = tv.luhn_complete("3530", 16)
    din = tv.luhn_complete("305", 14); up = tv.luhn_complete("62", 16); up19 = tv.luhn_complete("6212", 19)
    v13 = tv.luhn_complete("4", 13); maestro = tv.luhn_complete("6759", 16); v16b = tv.luhn_complete("4", 16)
    mc3 = tv.luhn_complete("55", 16); v19 = tv.luhn_complete("4", 19); disc65 = tv.luhn_complete("65", 16)
    g4 = lambda n, s=" ": tv.group(n, [4, 4, 4, 4], s)
    pos = [
        P(f"my card is {g4(v16)} exp 09/27", g4(v16)),
        P(f"{mc} was charged twice, can someone from support DM me?", mc),
        P(f"Refund went to card {g4(mc2, '-')}", g4(mc2, "-")),
        P(f"Amex {tv.group(amex, [4, 6, 5])} — please call me back", tv.group(amex, [4, 6, 5])),
        P(f"Discover: {disc}", disc),
        P(f"JCB カード番号{jcb}です", jcb),
        P(f"Diners Club {tv.group(din, [4, 6, 4])} still works abroad", tv.group(din, [4, 6, 4])),
        P(f"银联卡号：{g4(up)}。谢谢", g4(up)),
        P(f"UnionPay 19-digit {up19} declined", up19),
        P(f"old visa {v13}", v13),
        P(f"Maestro {g4(maestro)} 🙏", g4(maestro)),
        P(f"cards: {g4(v16b)} and {g4(mc3, '-')} both blocked", g4(v16b), g4(mc3, "-")),
        P(f"{g4(v19)[:-0] if False else tv.group(v19, [4, 4, 4, 4, 3])} is the new long card", tv.group(v19, [4, 4, 4, 4, 3])),
        P(f"Pay with «{disc65}» please", disc65),
        P(f"número de tarjeta: {g4(v16, '-')} (vence 09/27)", g4(v16, "-")),
        P(f"card {g4(v16)} cvv 123", g4(v16)),
        P(f'{{"card":"{mc}","name":"Test"}}', mc),
        P(f"Kartennummer:{g4(mc2)}", g4(mc2)),
    ]
    neg = [
        N(f"card {g4(tv.luhn_broken('4', 16))} (typo)"),
        N(f"order #{tv.luhn_broken('5', 16)} shipped"),
        N("call me on +1 415 555 0132 or 020 7946 0958"),
        N("tracking 1Z999AA10123456784 arrives Tuesday"),
        N("request id 550e8400-e29b-41d4-a716-446655440000 failed"),
        N("fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("ISBN 978-0-306-40615-7 is a good read"),
        N("tweet id 1790123456789012345 went viral"),
        N(f"random digits {tv.luhn_complete('9', 16)} here"),
        N(f"{tv.luhn_complete('1', 16)} is our invoice number"),
        N("1111 1111 1111 1111 is obviously fake"),
        N("0000-0000-0000-0000"),
        N("timestamp 1717236000000 ms, build 20240601123456"),
        N(f"twenty digits {tv.luhn_complete('4', 20)}"),
        N("version 4.1.1.1 released 2024-06-01"),
        N("price 4111.11 USD, qty 1111"),
        N(f"IMEI 35-209900-176148-1 on the box"),
        N("account 12345678 sort code 12-34-56"),
        N("IBAN CR88 5595 2003 7047 8303 55 (card-shaped digits inside an IBAN)", also=["pii.iban"]),
        N("token xoxp-90357889226-58367337479-4085678554137-e81323d52b789cd5e81d51f079241128", also=["secret.slack_token"]),
    ]
    return pos, neg

def ibans():
    de = tv.iban("DE", "370400440532013000"); gb = tv.iban("GB", "WEST12345698765432", True)
    fr = tv.iban("FR", "20041010050500013M02606", True); nl = tv.iban("NL", "ABNA0417164300")
    es = tv.iban("ES", "21000418450200051332", True); it = tv.iban("IT", "X0542811101000000123456")
    be = tv.iban("BE", "539007547034", True); ch = tv.iban("CH", "00762011623852957")
    no = tv.iban("NO", "86011117947"); pl = tv.iban("PL", "109010140000071219812874", True)
    se = tv.iban("SE", "50000000058398257466"); ie = tv.iban("IE", "AIBK93115212345678", True)
    at = tv.iban("AT", "1904300234573201"); pt = tv.iban("PT", "000201231234567890154")
    mt = tv.iban("MT", "MALT011000012345MTLCAST001S", True); fi = tv.iban("FI", "21234560000785")
    dk = tv.iban("DK", "00400440116243", True); lu = tv.iban("LU", "0019400644750000")
    pos = [
        P(f"Please wire the deposit to {de} by Friday", de),
        P(f"IBAN: {gb}", gb),
        P(f"RIB/IBAN {fr} — merci !", fr),
        P(f"{nl} is my account for the refund", nl),
        P(f"Cuenta {es}.", es),
        P(f"bonifico su {it} grazie", it),
        P(f"BE account ({be}) for the club fees", be),
        P(f"Konto {ch} (CHF)", ch),
        P(f"norsk konto {no}", no),
        P(f"numer konta: {pl}", pl),
        P(f"{se}", se),
        P(f"Send it to {ie} or to {de}", ie, de),
        P(f"österreichisches Konto:{at}✅", at),
        P(f"NIB/IBAN {pt}", pt),
        P(f"Malta: {mt}", mt),
        P(f'{{"iban":"{fi}"}}', fi),
        P(f"Danish account {dk} 🇩🇰", dk),
        P(f"LU {lu} for the invoice", lu),
    ]
    neg = [
        N(f"typo in {tv.bad_iban('DE', '370400440532013000')} sorry"),
        N(f"old {tv.bad_iban('GB', 'WEST12345698765432', True)}"),
        N(f"{tv.bad_iban('FR', '20041010050500013M02606')} bounced"),
        N("DE89 3704 0044 0532 0130 0"),
        N("GB82WEST1234569876543210 (too long)"),
        N("XX82 WEST 1234 5698 7654 32 is not a country"),
        N("ISO codes DE, GB and FR are in the EU list"),
        N("part number DE12345 and GB4 are fine"),
        N("Use the SWIFT code DEUTDEFF500 for transfers"),
        N("flight LH2024 and seat 12A"),
        N("request id 550e8400-e29b-41d4-a716-446655440000"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("NL CODE ABNA BANK 0417 164300"),
        N("ticket ES-2024-0418-4502"),
        N("UK postcode SW1A 1AA and EC1A 1BB"),
        N(f"lowercase words de89 and gb82 are not accounts"),
        N("CH93 is our room number on floor CH"),
        N("model IT60X054 runs fine"),
    ]
    return pos, neg

def ssns():
    vals = [tv.ssn() for _ in range(14)]
    pos = [
        P(f"My SSN is {vals[0]}, please update my file", vals[0]),
        P(f"{vals[1]} is the number on the form", vals[1]),
        P(f"Employee record: name Test Person, SSN {vals[2]}", vals[2]),
        P(f"social security number: {vals[3].replace('-', ' ')}", vals[3].replace("-", " ")),
        P(f"SSN {vals[4].replace('-', '')} for the W-2", vals[4].replace("-", "")),
        P(f"ssn:{vals[5]}", vals[5]),
        P(f"社会保障番号 {vals[6]} です", vals[6]),
        P(f"two of them: {vals[7]} and {vals[8]}", vals[7], vals[8]),
        P(f"(SSN {vals[9]})", vals[9]),
        P(f"Numéro de sécurité sociale américain : {vals[10]}.", vals[10]),
        P(f'{{"ssn":"{vals[11]}"}}', vals[11]),
        P(f"the applicant's ss# is {vals[12].replace('-', '')}", vals[12].replace("-", "")),
        P(f"SSN→{vals[13]}←", vals[13]),
        (lambda v: P(f"sample {v} from the onboarding sheet", v))(tv.ssn()),
        P("taxpayer ssn 078-05-1121 in the template", "078-05-1121"),
    ]
    neg = [
        N("000-12-3456 is not valid"),
        N("666-12-3456 is not valid either"),
        N("912-34-5678 is an ITIN range"),
        N("123-00-4567 has group zero"),
        N("123-45-0000 has serial zero"),
        N("call 555-123-4567 tomorrow"),
        N("order 123456789 shipped"),
        N("phone (415) 555-0132"),
        N("date 2024-06-01 and 2024-06-0123"),
        N("ISBN 978-0-306-40615-7"),
        N("part 12-345-6789 in stock"),
        N("the code 123 45 6789 was on the parcel"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("078-05-1120 is the famous Woolworth wallet card"),
        N("range 1-800-55-1234 toll free"),
        N("ssn field was 987-65-4320 in the ads"),
    ]
    return pos, neg

def ninos():
    v = [tv.nino(spaced=(i % 2 == 0)) for i in range(13)]
    pos = [
        P(f"My NI number is {v[0]}", v[0]),
        P(f"{v[1]} — National Insurance", v[1]),
        P(f"NINO:{v[2]}", v[2]),
        P(f"new starter, NI {v[3]}, starts Monday", v[3]),
        P(f"national insurance number {v[4]}.", v[4]),
        P(f"Employee {v[5]} payroll issue", v[5]),
        P(f"({v[6]})", v[6]),
        P(f'{{"nino":"{v[7]}"}}', v[7]),
        P(f"NI番号{v[8]}です", v[8]),
        P(f"two: {v[9]} / {v[10]}", v[9], v[10]),
        P(f"{v[11]}", v[11]),
        P(f"numéro NI « {v[12]} »", v[12]),
        P("JG 10 37 59 A and AB 12 34 56 C on two payslips", "JG 10 37 59 A", "AB 12 34 56 C"),
        P("CE123456D on the letter", "CE123456D"),
        P("payslip shows ZY 98 76 54 B", "ZY 98 76 54 B"),
    ]
    neg = [
        N("QQ 12 34 56 C is the specimen number"),
        N("DA123456A has a forbidden first letter"),
        N("FO123456B is not allowed"),
        N("BG123456A is an unallocated prefix"),
        N("GB123456A is an unallocated prefix"),
        N("NK 12 34 56 B is unallocated"),
        N("TN123456C is a temporary number"),
        N("ZZ123456D is used for tests"),
        N("AO123456A (second letter O)"),
        N("AB123456E has a bad suffix"),
        N("AB12345C is too short"),
        N("part AB1234567C is too long"),
        N("flight BA123456 and gate C"),
        N("ab123456 lower-case without a suffix"),
        N("ticket VQ123456A is not a NINO"),
        N("serial UA123456B"),
    ]
    return pos, neg

def emails():
    pos = [
        P("reach me at alice.example@example.com", "alice.example@example.com"),
        P("bob+jobs@example.org is the best address", "bob+jobs@example.org"),
        P("contact: carol_smith@mail.example.co.uk.", "carol_smith@mail.example.co.uk"),
        P("📧 dave@example.net", "dave@example.net"),
        P("メールはerin@example.jpまで", "erin@example.jp"),
        P("<frank@example.com>", "frank@example.com"),
        P("mailto:grace@example.io?subject=hi", "grace@example.io"),
        P("heidi@example.com,ivan@example.com", "heidi@example.com", "ivan@example.com"),
        P("Write to j.o'brien? no: judy.obrien@example.ie", "judy.obrien@example.ie"),
        P('{"email":"mallory@example.dev"}', "mallory@example.dev"),
        P("(niaj@sub.example.museum)", "niaj@sub.example.museum"),
        P("olivia@example.com is my work email", "olivia@example.com"),
        P("E-Mail: peggy.müller? nein: peggy.mueller@example.de", "peggy.mueller@example.de"),
        P("send CVs to hr-team@example-corp.com today", "hr-team@example-corp.com"),
        P("rupert@EXAMPLE.COM", "rupert@EXAMPLE.COM"),
        P("sybil1987@example.travel and nothing else", "sybil1987@example.travel"),
    ]
    neg = [
        N("follow me at @alice@mastodon.social"),
        N("@bob@hachyderm.io and @carol@fosstodon.org are here"),
        N("ping @dave on slack"),
        N("user@localhost is not an address"),
        N("email me at erin at example dot com"),
        N("the @ sign and example.com"),
        N("price: 5@3.99"),
        N("foo@bar"),
        N("@trent@social.example.com boosted this"),
        N("handle @victor@mas.to"),
        N("email@ is incomplete"),
        N("@example.com is a domain"),
        N("a@b.c is too short a tld"),
        N("meet @walter@infosec.exchange and @wendy@mstdn.social"),
        N("weird@123.456"),
    ]
    return pos, neg

def aws():
    k = [tv.aws("AKIA") for _ in range(8)] + [tv.aws("ASIA") for _ in range(4)]
    pos = [
        P("key AKIAZ3MHGQ7XW2KLT5PB in the config", "AKIAZ3MHGQ7XW2KLT5PB"),
        P(f"aws_access_key_id={k[0]}", k[0]),
        P(f"{k[1]} is the id", k[1]),
        P(f'{{"AccessKeyId":"{k[8]}","Expiration":"2024-06-01T12:00:00Z"}}', k[8]),
        P(f"export AWS_ACCESS_KEY_ID={k[2]}", k[2]),
        P(f"temp creds {k[9]} expire soon", k[9]),
        P(f"キー：{k[3]}です", k[3]),
        P(f"two keys {k[4]},{k[5]}", k[4], k[5]),
        P(f"```\n[default]\naws_access_key_id = {k[6]}\n```", k[6]),
        P(f"(`{k[10]}`)", k[10]),
        P(f"ends with {k[7]}", k[7]),
        P(f"«{k[11]}»", k[11]),
        P("AKIAJ5Q7R2KQ3XMWLT4A was in the screenshot", "AKIAJ5Q7R2KQ3XMWLT4A"),
        P(f"id:{tv.aws('ABIA')}", None),
        P(f"- {tv.aws('ACCA')}", None),
    ]
    neg = [
        N("AKIA is the prefix of AWS keys"),
        N("AKIA1234 too short"),
        N(f"{tv.aws('AKIA')}X is 21 characters"),
        N("akiaiosfodnn7example lower case"),
        N("AIDAJQABLZS4A3QDU576Q is a user id, not an access key"),
        N("AROA3XFRBF535PLBIFPI4 is a role id"),
        N("AKIA-IOSF-ODNN-7EXA-MPLE"),
        N("the BAKIAIOSFODNN7EXAMPLE string"),
        N("request 550e8400-e29b-41d4-a716-446655440000"),
        N("sha 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("ASIAN FOOD FESTIVAL 2024 TICKETS"),
        N("AKIAIOSFODNN7EXAMPL is 19 chars"),
        N("secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY alone is not an id"),
        N("ASIA-PACIFIC REGIONAL OFFICE"),
        N("KIAIOSFODNN7EXAMPLE without the A"),
    ]
    pos[13]["values"] = [pos[13]["text"].split(":")[1]]
    pos[14]["values"] = [pos[14]["text"][2:]]
    return pos, neg

def github():
    t = [tv.github(p) for p in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "ghp_", "ghp_", "ghs_", "ghp_", "gho_", "ghp_", "ghp_", "ghu_")]
    pat = tv.github_pat(); pat2 = tv.github_pat()
    pos = [
        P(f"token {t[0]} works", t[0]),
        P(f"GITHUB_TOKEN={t[1]}", t[1]),
        P(f"{t[2]}", t[2]),
        P(f"installation token {t[3]} expires in 1h", t[3]),
        P(f"refresh: {t[4]}", t[4]),
        P(f"git clone https://{t[5]}@github.com/example/repo.git", t[5], also=["pii.email"]),
        P(f"fine-grained {pat} for the bot", pat),
        P(f'{{"token":"{t[6]}"}}', t[6]),
        P(f"トークン{t[7]}を使って", t[7]),
        P(f"{t[8]} and {pat2}", t[8], pat2),
        P(f"Authorization: token {t[9]}", t[9]),
        P(f"(`{t[10]}`)", t[10]),
        P(f"«{t[11]}»", t[11]),
        P(f"password field: {t[12]}.", t[12]),
        P(f"line1\n{tv.github('ghp_')}\nline3", None),
    ]
    pos[14]["values"] = [pos[14]["text"].split("\n")[1]]
    neg = [
        N("ghp_ is the prefix of classic tokens"),
        N("ghp_abc123 is too short"),
        N(f"ghx_{tv.alnum(36)} wrong prefix"),
        N("github_pat_ prefix alone"),
        N("GHP_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 upper case prefix"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("see https://github.com/example/repo/pull/42"),
        N(f"ghp_{tv.alnum(20)} truncated"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("the gh cli: gh pr create --fill"),
        N(f"my_ghp_{tv.alnum(36)} embedded in an identifier"),
        N("github_pat_abc_def too short"),
        N("ghs_ tokens expire after an hour"),
        N("the variable gho_token is unset"),
        N(f"sha256:{tv.alnum(40)}"),
    ]
    return pos, neg

def slack():
    b = [tv.slack_bot() for _ in range(6)]; u = [tv.slack_user() for _ in range(3)]; w = [tv.slack_webhook() for _ in range(4)]
    pos = [
        P(f"bot token {b[0]}", b[0]),
        P(f"SLACK_BOT_TOKEN={b[1]}", b[1]),
        P(f"{u[0]} is my user token", u[0]),
        P(f"webhook: {w[0]}", w[0]),
        P(f"curl -X POST -d '{{\"text\":\"hi\"}}' {w[1]}", w[1]),
        P(f'{{"token":"{b[2]}"}}', b[2]),
        P(f"トークン:{b[3]}", b[3]),
        P(f"{u[1]} and {w[2]}", u[1], w[2]),
        P(f"legacy xoxa-2-{tv.digits(12)}-{tv.digits(12)}-{tv.alnum(20)}", None),
        P(f"refresh xoxr-{tv.digits(10)}-{tv.alnum(30)}", None),
        P(f"app-level xapp-1-A{tv.upper_alnum(10)}-{tv.digits(13)}-{''.join(tv.R.choice('0123456789abcdef') for _ in range(64))}", None),
        P(f"rotating xoxe.xoxp-1-{tv.alnum(60)}", None),
        P(f"(`{b[4]}`)", b[4]),
        P(f"hooks.slack.com/services/T{tv.upper_alnum(8)}/B{tv.upper_alnum(10)}/{tv.alnum(24)} without scheme", None),
        P(f"«{u[2]}»", u[2]),
        P(f"end {b[5]}", b[5]),
    ]
    for p in pos:
        if p["values"] == [None]:
            import re
            m = re.search(r"(xox[a-z.]*-\S+|xapp-\S+|hooks\.slack\.com/\S+)", p["text"]); p["values"] = [m.group(1)]
    neg = [
        N("xoxb-your-token-here"),
        N("xoxb-123 too short"),
        N("the xoxp- prefix means a user token"),
        N("https://hooks.slack.com/services/ (paste yours)"),
        N("https://slack.com/intl/en-gb/help/articles/115005265063"),
        N("join example.slack.com/archives/C0123456789"),
        N("xoxz-123456789012-123456789012-abcdefghijklmnop wrong letter"),
        N("XOXB-123456789012 upper case"),
        N("hooks.slack.com/services/T000/B000/XXX"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("slack channel #xoxb-rotation"),
        N("xapp-1 is the app token prefix"),
        N("see https://api.slack.com/authentication/token-types"),
        N("foxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx"),
    ]
    return pos, neg

def keys():
    kinds = ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"]
    pos = []
    for i, k in enumerate(kinds):
        p = tv.pem(k, lines=4 + i)
        pos.append(P(f"here is the key:\n{p}\nthanks", p))
    p = tv.pem("RSA PRIVATE KEY"); pos.append(P(p, p))
    p = tv.pem("PRIVATE KEY"); pos.append(P(f"```\n{p}\n```", p))
    p = tv.pem("EC PRIVATE KEY"); pos.append(P(f"鍵:{p}です", p))
    p = tv.pem("OPENSSH PRIVATE KEY").replace("\n", " "); pos.append(P(f"one line: {p}", p))
    p = tv.pem("RSA PRIVATE KEY"); trunc = p.split("\n")[0] + "\n" + p.split("\n")[1]
    pos.append(P(f"it starts with\n{trunc}\n...", trunc))
    enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,5E2C7D8B1A3F4E6D9C0B1A2F3E4D5C6B\n\n" + tv.pem("X", 5).split("\n", 1)[1].rsplit("\n", 1)[0] + "\n-----END RSA PRIVATE KEY-----"
    pos.append(P(f"legacy encrypted:\n{enc}", enc))
    p1 = tv.pem("PRIVATE KEY", 3); p2 = tv.pem("EC PRIVATE KEY", 3)
    pos.append(P(f"{p1}\nand\n{p2}", p1, p2))
    p = tv.pem("PRIVATE KEY").replace("\n", "\r\n"); pos.append(P(p, p))
    neg = [
        N("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEexample\n-----END PUBLIC KEY-----"),
        N("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUexampleexampleexampleexample\n-----END CERTIFICATE-----"),
        N("never paste your private key anywhere"),
        N("the file starts with -----BEGIN RSA PRIVATE KEY----- and that's all I'll say"),
        N("BEGIN RSA PRIVATE KEY in prose"),
        N("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7example user@host"),
        N("-----BEGIN OPENSSH PUBLIC KEY-----"),
        N("-----BEGIN CERTIFICATE REQUEST-----\nMIIBexampleexampleexampleexampleexampleexampleexample\n-----END CERTIFICATE REQUEST-----"),
        N("PRIVATE KEY rotation is scheduled"),
        N("id_rsa and id_rsa.pub live in ~/.ssh"),
        N("-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQENBFexampleexampleexampleexampleexampleexampleexample\n-----END PGP PUBLIC KEY BLOCK-----"),
        N("-----BEGIN PGP SIGNATURE-----\niQEzBAEBCAAdFiEEexampleexampleexampleexampleexample\n-----END PGP SIGNATURE-----"),
        N("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY----- (empty template)"),
        N("openssl genrsa -out key.pem 2048"),
        N("a base64 blob MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7example"),
    ]
    return pos, neg

def jwts():
    j = [tv.jwt(alg) for alg in ("HS256", "RS256", "ES256", "HS512", "RS384", "PS256", "EdDSA", "HS256", "RS256", "HS256", "ES384", "HS256", "RS256")]
    spaced_header = tv.b64url(b'{ "alg": "HS256", "typ": "JWT" }') + "." + tv.b64url({"sub": "1"}) + "." + tv.alnum(43)
    none_alg = tv.b64url({"alg": "none"}) + "." + tv.b64url({"sub": "42"}) + "."
    pos = [
        P(f"Authorization: Bearer {j[0]}", j[0]),
        P(f"token={j[1]}", j[1]),
        P(f"{j[2]}", j[2]),
        P(f'{{"id_token":"{j[3]}"}}', j[3]),
        P(f"cookie session={j[4]}; path=/", j[4]),
        P(f"トークン{j[5]}です", j[5]),
        P(f"https://app.example.com/callback#access_token={j[6]}&state=xyz", j[6]),
        P(f"two: {j[7]} {j[8]}", j[7], j[8]),
        P(f"(`{j[9]}`)", j[9]),
        P(f"«{j[10]}»", j[10]),
        P(f"ends with {j[11]}.", j[11]),
        P(f"header with spaces {spaced_header}", spaced_header),
        P(f"unsigned {none_alg} still a token", none_alg),
        P(f"jwt:\n{j[12]}\n", j[12]),
        (lambda t: P(f"a token shaped like the jwt.io sample {t}", t))(tv.jwt(payload={"sub": "1234567890", "name": "John Doe", "iat": 1516239022})),
    ]
    neg = [
        N("eyJhbGciOiJIUzI1NiJ9 alone is only a header"),
        N(f"{tv.b64url({'typ': 'JWT'})}.{tv.b64url({'sub': '1'})}.{tv.alnum(20)} has no alg"),
        N(f"eyJub3Rqc29u.{tv.b64url({'a': 1})}.{tv.alnum(20)}"),
        N("version 1.2.3 and file.tar.gz"),
        N("www.example.com.au is a domain"),
        N("eyes.on.the.prize"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("eyJhbGciOiJIUzI1NiJ9..missing payload"),
        N(f"{tv.b64url([1, 2, 3])}.{tv.b64url({'a': 1})}.{tv.alnum(20)} header is an array"),
        N("the JWT format is header.payload.signature"),
        N("base64 of {} is e30 and {\"a\":1} is eyJhIjoxfQ"),
        N("everyone.loves.dots.in.prose"),
        N(f"ey{tv.alnum(30)}.{tv.alnum(30)}.{tv.alnum(30)} random"),
        N("api.example.com/v1/users.json"),
    ]
    return pos, neg

def google():
    g = [tv.google() for _ in range(14)]
    pos = [P(*tup) for tup in [
        (f"maps key {g[0]}", g[0]),
        (f"key={g[1]}&libraries=places", g[1]),
        (f"{g[2]}", g[2]),
        (f'{{"apiKey":"{g[3]}","authDomain":"example.firebaseapp.com"}}', g[3]),
        (f"GOOGLE_API_KEY={g[4]}", g[4]),
        (f"キー{g[5]}を", g[5]),
        (f"https://maps.googleapis.com/maps/api/js?key={g[6]}&callback=init", g[6]),
        (f"two {g[7]} {g[8]}", g[7], g[8]),
        (f"(`{g[9]}`)", g[9]),
        (f"«{g[10]}»", g[10]),
        (f"ends {g[11]}.", g[11]),
        (f"line\n{g[12]}\n", g[12]),
        (f"youtube data api: {g[13]}", g[13]),
        ("AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe is in the docs", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
        ("AIzaSyB-_3k9Q_x7Lm-2Rt_8Vw-4Np_6Zs-1Hc_ dashes and underscores", "AIzaSyB-_3k9Q_x7Lm-2Rt_8Vw-4Np_6Zs-1Hc_"),
    ]]
    neg = [
        N("AIza is the prefix of Google keys"),
        N("AIzaSyShort"),
        N(f"AIza{tv.alnum(30)} is too short"),
        N(f"AIza{tv.alnum(40)} is too long"),
        N("aizasydagmwka4jsxz-hjgw7isln_3nambgewqe lower case"),
        N(f"BAIza{tv.alnum(35)}"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("https://console.cloud.google.com/apis/credentials"),
        N("AIzawesome idea"),
        N(f"AIzb{tv.alnum(35)} wrong prefix"),
        N("the key looks like AIza followed by 35 characters"),
        N("ya29.a0AfH6SMBexampleexampleexample is an OAuth access token format"),
        N(f"x_AIza{tv.alnum(35)}"),
        N("GOOG1EXAMPLEKEYEXAMPLE"),
    ]
    return pos, neg

def stripe():
    s = [tv.stripe("sk_live_", 24), tv.stripe("sk_live_", 99), tv.stripe("rk_live_", 24), tv.stripe("rk_live_", 99)] + [tv.stripe("sk_live_", 24 + i) for i in range(10)]
    pos = [P(*tup) for tup in [
        (f"STRIPE_SECRET_KEY={s[0]}", s[0]),
        (f"new-style key {s[1]}", s[1]),
        (f"restricted {s[2]} for the reports job", s[2]),
        (f"{s[3]}", s[3]),
        (f'{{"stripe":"{s[4]}"}}', s[4]),
        (f"curl https://api.stripe.com/v1/charges -u {s[5]}:", s[5]),
        (f"キー{s[6]}", s[6]),
        (f"two {s[7]} {s[8]}", s[7], s[8]),
        (f"(`{s[9]}`)", s[9]),
        (f"«{s[10]}»", s[10]),
        (f"ends {s[11]}.", s[11]),
        (f"line\n{s[12]}\n", s[12]),
        (f"Stripe.api_key = '{s[13]}'", s[13]),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc as in the old docs", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("rk_live_51H8exampleExampleEXAMPLE0001 rotated", "rk_live_51H8exampleExampleEXAMPLE0001"),
    ]]
    neg = [
        N("sk_test_4eC39HqLyjWDarjtT1zdp7dc is a test key"),
        N("pk_live_51H8exampleExampleEXAMPLE0001 is publishable"),
        N("sk_live_ prefix"),
        N("sk_live_abc too short"),
        N("rk_test_51H8exampleExampleEXAMPLE0001"),
        N("whsec_exampleexampleexampleexample webhook secrets are separate"),
        N("SK_LIVE_4EC39HQLYJWDARJTT1ZDP7DC upper case"),
        N("uuid 550e8400-e29b-41d4-a716-446655440000"),
        N("commit 3f786850e387550fdab836ed7e6dc881de23001b"),
        N("ask_live_4eC39HqLyjWDarjtT1zdp7dc is not a key"),
        N("the sk_live keys live in the vault"),
        N("acct_1032D82eZvKYlo2C is an account id"),
        N("ch_3MmlLrLkdIwHu7ix0snN0B15 is a charge id"),
        N("pi_3MtwBwLkdIwHu7ix28a3tqPa"),
        N("sk-live-4eC39HqLyjWDarjtT1zdp7dc with dashes"),
    ]
    return pos, neg

def hosts():
    pos = [
        P("ssh into build01.corp.example and restart it", "build01.corp.example"),
        P("jenkins.intranet.example is down again", "jenkins.intranet.example"),
        P("db-primary.eu-west.internal has the data", "db-primary.eu-west.internal"),
        P("the gateway is 10.20.30.40", "10.20.30.40"),
        P("printer at 192.168.1.23:9100", "192.168.1.23"),
        P("VPN hands out 172.16.5.4 and 172.31.255.254", "172.16.5.4", "172.31.255.254"),
        P("サーバーはvault.corp.exampleです", "vault.corp.example"),
        P("(metrics.prod.internal)", "metrics.prod.internal"),
        P("DNS: NS1.CORP.EXAMPLE.", "NS1.CORP.EXAMPLE"),
        P("hosts: a.internal,b.internal", "a.internal", "b.internal"),
        P("10.0.0.1", "10.0.0.1"),
        P("ping git.corp.example→ timeout", "git.corp.example"),
        P("«wiki.intranet.example»", "wiki.intranet.example"),
        P("connect to 192.168.0.10, then 10.1.1.1.", "192.168.0.10", "10.1.1.1"),
        P('{"host":"kafka-3.data.internal","port":9092}', "kafka-3.data.internal"),
        P("the ldap server ldap.corp.example:636 rejects me", "ldap.corp.example"),
    ]
    neg = [
        N("www.example.com is public"),
        N("8.8.8.8 and 1.1.1.1 are public resolvers"),
        N("api.internal.example.com is a public name that contains internal"),
        N("status.internal-tools.io is a SaaS"),
        N("corp.example.com is not the internal zone"),
        N("we had an internal review of the corp strategy"),
        N("version 10.2.3 released"),
        N("172.32.0.1 is outside the private range"),
        N("192.169.1.1 is public"),
        N("11.0.0.1 is public"),
        N("127.0.0.1 is loopback"),
        N("version 1.10.0.0.1 of the firmware"),
        N("internal is just a word"),
        N("example.internals.org is public"),
        N("256.10.10.10 is not an address"),
        N("the intranet.example.org site"),
        N("@alice@mastodon.social"),
    ]
    return pos, neg

def urls():
    pos = [
        P("see https://wiki.corp.example/display/ENG/Runbook", "https://wiki.corp.example/display/ENG/Runbook", also=["corp.internal_host"]),
        P("http://10.0.4.12:8080/admin is the console", "http://10.0.4.12:8080/admin", also=["corp.internal_host"]),
        P("dashboard: https://grafana.prod.internal/d/abc?orgId=1.", "https://grafana.prod.internal/d/abc?orgId=1", also=["corp.internal_host"]),
        P("https://jira.intranet.example/browse/OPS-123", "https://jira.intranet.example/browse/OPS-123", also=["corp.internal_host"]),
        P("(https://192.168.10.5/login)", "https://192.168.10.5/login", also=["corp.internal_host"]),
        P("リンク：https://docs.corp.example/設計/v2 です", "https://docs.corp.example/設計/v2", also=["corp.internal_host"]),
        P("wiki.corp.example/display/SEC/Incidents without scheme", "wiki.corp.example/display/SEC/Incidents", also=["corp.internal_host"]),
        P("two: https://a.internal/x and http://b.corp.example", "https://a.internal/x", "http://b.corp.example", also=["corp.internal_host"]),
        P('{"url":"https://api.staging.internal/v1/users"}', "https://api.staging.internal/v1/users", also=["corp.internal_host"]),
        P("ssh://git@git.corp.example:2222/infra.git", "ssh://git@git.corp.example:2222/infra.git", also=["corp.internal_host", "pii.email"]),
        P("HTTPS://SHARE.INTRANET.EXAMPLE/Q3", "HTTPS://SHARE.INTRANET.EXAMPLE/Q3", also=["corp.internal_host"]),
        P("«https://172.20.1.1/status»", "https://172.20.1.1/status", also=["corp.internal_host"]),
        P("https://wiki.corp.example", "https://wiki.corp.example", also=["corp.internal_host"]),
        P("open http://intranet.corp.example/hr/payroll?id=7#top now", "http://intranet.corp.example/hr/payroll?id=7#top", also=["corp.internal_host"]),
        P("smb://files.corp.example/finance/budget.xlsx", "smb://files.corp.example/finance/budget.xlsx", also=["corp.internal_host"]),
        P("wss://events.prod.internal:8443/stream", "wss://events.prod.internal:8443/stream", also=["corp.internal_host"]),
    ]
    neg = [
        N("https://www.example.com/docs"),
        N("https://wiki.corp.example.com/page is a public site"),
        N("http://8.8.8.8/dns-query"),
        N("https://status.internal-tools.io/incidents"),
        N("https://example.org/internal/policy"),
        N("https://corp.example.net/about"),
        N("http://172.32.1.1/ is public"),
        N("https://github.com/example/internal"),
        N("https://medium.com/@alice/internal-tools-we-love-1234"),
        N("https://mastodon.social/@alice"),
        N("ftp://ftp.example.com/pub/file.txt"),
        N("https://news.ycombinator.com/item?id=1"),
        N("the internal url is on the wiki"),
        N("https://internal.example.com/"),
        N("http://localhost:8080/admin"),
    ]
    return pos, neg

def markings():
    pos = [
        P("CONFIDENTIAL: Q3 revenue forecast attached", "CONFIDENTIAL"),
        P("This deck is INTERNAL ONLY, please don't share", "INTERNAL ONLY"),
        P("COMPANY CONFIDENTIAL\nRoadmap 2025", "COMPANY CONFIDENTIAL"),
        P("Slide footer: STRICTLY PRIVATE", "STRICTLY PRIVATE"),
        P("NOT FOR DISTRIBUTION – draft v3", "NOT FOR DISTRIBUTION"),
        P("RESTRICTED - INTERNAL\nOrg chart changes", "RESTRICTED - INTERNAL"),
        P("[Confidential] board minutes", "Confidential"),
        P("Classification: Confidential", "Confidential"),
        P("Company Confidential — do not forward", "Company Confidential"),
        P("Confidential: the merger closes Friday", "Confidential"),
        P("社外秘 CONFIDENTIAL 資料です", "CONFIDENTIAL"),
        P("Internal Only: new pricing tiers", "Internal Only"),
        P("sensitivity label = Internal Only", "Internal Only"),
        P("*** STRICTLY CONFIDENTIAL ***", "STRICTLY CONFIDENTIAL"),
        P("(Not for Distribution) early results", "Not for Distribution"),
        P("page 3 of 12 · INTERNAL USE ONLY", "INTERNAL USE ONLY"),
        P("«CONFIDENTIAL»", "CONFIDENTIAL"),
    ]
    neg = [
        N("I kept our conversation confidential, of course"),
        N("We had an internal review of the process"),
        N("Confidentiality agreements protect both sides"),
        N("Confidential sources say the launch slipped"),
        N("the internal combustion engine is old tech"),
        N("this is strictly private between us, lol"),
        N("samples are not for distribution outside the lab"),
        N("the area is restricted to staff"),
        N("doctor-patient confidentiality matters"),
        N("internal only in the sense that it runs in-process"),
        N("a confidential informant"),
        N("our internal tooling team is hiring"),
        N("NONCONFIDENTIALITY is not a word"),
        N("Internal communications are important"),
        N("please keep this confidential"),
        N("He said it was INTERNALLY consistent"),
    ]
    return pos, neg

def codenames():
    pos = [
        P("BLUEHERON ships next month", "BLUEHERON"),
        P("any news on Project Nightjar?", "Project Nightjar"),
        P("KESTREL-7 benchmarks look great", "KESTREL-7"),
        P("Operation Larkspur kicks off Monday", "Operation Larkspur"),
        P("blueheron beta invite", "blueheron"),
        P("project nightjar is delayed", "project nightjar"),
        P("kestrel-7", "kestrel-7"),
        P("OPERATION LARKSPUR", "OPERATION LARKSPUR"),
        P("#BLUEHERON launch party 🎉", "BLUEHERON"),
        P("新プロジェクトBLUEHERONの件", "BLUEHERON"),
        P("Project  Nightjar (double space)", "Project  Nightjar"),
        P("Kestrel‑7 with a non-breaking hyphen", "Kestrel‑7"),
        P('{"project":"Operation Larkspur"}', "Operation Larkspur"),
        P("BLUEHERON and KESTREL-7 share a team", "BLUEHERON", "KESTREL-7"),
        P("the Project Nightjar's budget", "Project Nightjar"),
        P("(operation larkspur)", "operation larkspur"),
    ]
    neg = [
        N("I saw a blue heron at the lake"),
        N("the nightjar is a nocturnal bird"),
        N("a kestrel hovered over the field"),
        N("larkspur flowers are toxic to cattle"),
        N("KESTREL-70 is a different model"),
        N("BLUEHERONS nest in colonies"),
        N("Project Nightjars is not our project"),
        N("Operation Larkspurs typo"),
        N("kestrel 7 times a day"),
        N("the Nightjar project (different word order)"),
        N("Blue-Heron Inn"),
        N("operation of larkspur farms"),
        N("MYBLUEHERON account"),
        N("KESTREL-7B is a different part number"),
        N("Project Night jar"),
    ]
    return pos, neg

CATEGORIES = [
    ("pii.credit_card", cards), ("pii.iban", ibans), ("pii.us_ssn", ssns), ("pii.uk_nino", ninos),
    ("pii.email", emails), ("secret.aws_access_key", aws), ("secret.github_token", github),
    ("secret.slack_token", slack), ("secret.private_key", keys), ("secret.jwt", jwts),
    ("secret.google_api_key", google), ("secret.stripe_key", stripe), ("corp.internal_host", hosts),
    ("corp.internal_url", urls), ("corp.marking", markings), ("corp.codename", codenames),
]
