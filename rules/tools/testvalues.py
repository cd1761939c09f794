"""Format-valid FAKE test values (never real people's data), generated deterministically."""
import base64, json, random, string

R = random.Random(20240601)
ALNUM = string.ascii_letters + string.digits
B32 = string.ascii_uppercase + "234567"

def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)

def luhn_ok(num: str) -> bool:
    ds = [int(c) for c in num if c.isdigit()]
    t = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        t += d
    return t % 10 == 0

def luhn_broken(prefix: str, length: int) -> str:
    n = luhn_complete(prefix, length)
    return n[:-1] + str((int(n[-1]) + 1 + R.randrange(8)) % 10)

def group(num: str, sizes, sep=" "):
    out, i = [], 0
    for s in sizes:
        out.append(num[i:i + s]); i += s
    return sep.join(out)

def iban(country: str, bban: str, spaced=False) -> str:
    rearranged = bban + country + "00"
    n = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - n % 97
    s = f"{country}{check:02d}{bban}"
    if spaced:
        s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
    return s

def bad_iban(country, bban, spaced=False):
    s = iban(country, bban, spaced)
    cd = int(s[2:4])
    return s[:2] + f"{(cd + 1 + R.randrange(50)) % 97 + 2:02d}" + s[4:] if cd != 0 else s

def digits(n): return "".join(R.choice(string.digits) for _ in range(n))
def upper_alnum(n): return "".join(R.choice(string.ascii_uppercase + string.digits) for _ in range(n))
def alnum(n): return "".join(R.choice(ALNUM) for _ in range(n))

def ssn():
    while True:
        a = R.randrange(1, 900)
        if a != 666:
            break
    return f"{a:03d}-{R.randrange(1, 100):02d}-{R.randrange(1, 10000):04d}"

NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
def nino(spaced=False):
    while True:
        p = R.choice(NINO_FIRST) + R.choice(NINO_SECOND)
        if p not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    d = digits(6); s = R.choice("ABCD")
    return f"{p} {d[:2]} {d[2:4]} {d[4:]} {s}" if spaced else f"{p}{d}{s}"

def b64url(obj) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode() if not isinstance(obj, bytes) else obj
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

def jwt(alg="HS256", payload=None):
    payload = payload or {"sub": digits(8), "name": "Test User", "iat": 1700000000 + R.randrange(10**6)}
    sig = b64url(bytes(R.randrange(256) for _ in range(32)))
    return f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(payload)}.{sig}"

def pem(kind="RSA PRIVATE KEY", lines=6):
    body = base64.b64encode(bytes(R.randrange(256) for _ in range(48 * lines))).decode()
    wrapped = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{wrapped}\n-----END {kind}-----"

def aws(prefix="AKIA"): return prefix + "".join(R.choice(B32) for _ in range(16))
def github(prefix="ghp_"): return prefix + alnum(36)
def github_pat(): return "github_pat_" + alnum(22) + "_" + alnum(59)
def google(): return "AIza" + "".join(R.choice(ALNUM + "-_") for _ in range(34)) + R.choice(ALNUM)
def stripe(prefix="sk_live_", n=24): return prefix + alnum(n)
def slack_bot(): return f"xoxb-{digits(11)}-{digits(13)}-{alnum(24)}"
def slack_user(): return f"xoxp-{digits(11)}-{digits(11)}-{digits(13)}-{''.join(R.choice('0123456789abcdef') for _ in range(32))}"
def slack_webhook(): return f"https://hooks.slack.com/services/T{upper_alnum(8)}/B{upper_alnum(10)}/{alnum(24)}"
