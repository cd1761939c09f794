"""`scan(texts)` for gen_tests.py --check: runs the built `permeable scan` once, on a JSON
array of the texts (each array element is a field), with the shipped rules, and returns, per
text, its findings as tuples (start, end, detector, category, field, value), the value cut
from the text by byte offsets."""
import json, os, subprocess

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("PERMEABLE_BIN", os.path.join(HERE, "..", "target", "debug", "permeable"))

def scan(texts):
    body = json.dumps(list(texts), ensure_ascii=False).encode()
    r = subprocess.run([BIN, "scan", "--rules", HERE, "--content-type", "application/json", "--json", "-"],
                       input=body, capture_output=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"permeable scan failed ({r.returncode}): {r.stderr.decode()}")
    out = [[] for _ in texts]
    for f in json.loads(r.stdout)["findings"]:
        i = int(f["field"].lstrip("/"))
        raw = texts[i].encode()
        value = raw[f["start"]:f["end"]].decode()
        out[i].append((f["start"], f["end"], f["detector"], f["category"], f["field"], value))
    return out
