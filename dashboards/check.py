#!/usr/bin/env python3
"""Checks permeable's dashboards and alert rules; driven by dashboards/check.sh.

    check.py static RULES_OUT
        Validates every dashboard JSON (schema version, datasource, a description and a
        PromQL target on every panel, unique panel titles), that every metric named in an
        expression is a family of src/metrics.rs listed in docs/metrics.md, that the
        titles in expected_nonempty.txt exist, and that the alert rules carry a severity,
        a summary and a description. Writes every dashboard expression (variables
        substituted) as a recording rule to RULES_OUT, so `promtool check rules` parses
        them all.

    check.py wait PROMETHEUS_URL JOB MIN_SAMPLES TIMEOUT_SECONDS
        Waits until Prometheus holds MIN_SAMPLES successful scrapes of JOB.

    check.py live PROMETHEUS_URL
        Evaluates every dashboard and alert expression through /api/v1/query: each must
        parse; each panel named in expected_nonempty.txt must return data. Also requires
        every loaded alert rule to be healthy. Reports every failure, then exits 1.

Only the standard library and PyYAML are used.
"""

import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ALERTS = HERE / "alerts" / "permeable.yml"
EXPECTED = HERE / "expected_nonempty.txt"
METRICS_RS = ROOT / "src" / "metrics.rs"
METRICS_MD = ROOT / "docs" / "metrics.md"
MIN_SCHEMA_VERSION = 36
DATASOURCE_UID = "prometheus"

# Grafana's built-in variables, as a dashboard would resolve them for a 1-hour view.
BUILTINS = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}


class Failures:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")

    def report_and_exit(self, what):
        if self.items:
            print(f"FAILED: {len(self.items)} problem(s) in {what}:", file=sys.stderr)
            for item in self.items:
                print(f"  - {item}", file=sys.stderr)
            sys.exit(1)


def dashboards():
    return sorted(p for p in HERE.glob("*.json"))


def panels_of(dashboard):
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr, variables):
    for name, value in BUILTINS.items():
        expr = expr.replace(name, value)
    for name, value in variables.items():
        expr = re.sub(r"\$\{" + name + r"(?::[a-z]+)?\}|\$" + name + r"\b", value, expr)
    return expr


def dashboard_variables(dashboard):
    """Each variable resolved to its "All" value, as on a dashboard's first load."""
    return {v["name"]: v.get("allValue") or ".*" for v in dashboard.get("templating", {}).get("list", [])}


def label_values_query(query):
    """`label_values(metric, label)` → a PromQL expression over the same series."""
    m = re.fullmatch(r"\s*label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)\s*", query)
    if not m:
        return None
    return f"count by ({m.group(2)}) ({m.group(1)})"


def expressions():
    """(where, panel title or None, expr) for every dashboard target, dashboard variable
    query and alert rule, variables substituted."""
    out = []
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        variables = dashboard_variables(dashboard)
        for panel in panels_of(dashboard):
            for t in panel.get("targets", []):
                if t.get("expr"):
                    where = f"{path.name} panel \"{panel.get('title')}\" target {t.get('refId')}"
                    out.append((where, panel.get("title"), substitute(t["expr"], variables)))
        for v in dashboard.get("templating", {}).get("list", []):
            query = v.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            expr = label_values_query(query or "")
            if expr:
                out.append((f"{path.name} variable ${v['name']}", None, expr))
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            out.append((f"{ALERTS.relative_to(ROOT)} {name}", None, rule["expr"]))
    return out


def expected_titles():
    titles = []
    for line in EXPECTED.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            titles.append(line)
    return titles


def metric_families():
    return set(re.findall(r'"(permeable_[a-z_]+)"', METRICS_RS.read_text()))


# --- static -----------------------------------------------------------------------


def check_static(rules_out):
    failures = Failures()
    titles = {}
    for path in dashboards():
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            failures.add(path.name, f"not valid JSON: {err}")
            continue
        if dashboard.get("schemaVersion", 0) < MIN_SCHEMA_VERSION:
            failures.add(path.name, f"schemaVersion {dashboard.get('schemaVersion')} < {MIN_SCHEMA_VERSION}")
        for key in ("uid", "title"):
            if not dashboard.get(key):
                failures.add(path.name, f"no {key}")
        if "DS_PROMETHEUS" in path.read_text():
            failures.add(path.name, "uses an import-time ${DS_PROMETHEUS} datasource input")
        ids = set()
        for panel in panels_of(dashboard):
            title = panel.get("title") or "(untitled)"
            where = f"{path.name} panel \"{title}\""
            if panel.get("id") in ids:
                failures.add(where, f"duplicate panel id {panel.get('id')}")
            ids.add(panel.get("id"))
            if "gridPos" not in panel:
                failures.add(where, "no gridPos")
            if panel.get("type") == "row":
                continue
            if title in titles:
                failures.add(where, f"title also used in {titles[title]} (titles must be unique)")
            titles[title] = path.name
            if not (panel.get("description") or "").strip():
                failures.add(where, "no description")
            targets = panel.get("targets") or []
            if not targets or not all((t.get("expr") or "").strip() for t in targets):
                failures.add(where, "needs at least one target, each with an expr")
            for ds in [panel.get("datasource"), *(t.get("datasource") for t in targets)]:
                if not isinstance(ds, dict) or ds.get("uid") != DATASOURCE_UID:
                    failures.add(where, f"datasource must be {{uid: {DATASOURCE_UID}}}, got {ds!r}")
                    break

    for title in expected_titles():
        if title not in titles:
            failures.add(EXPECTED.name, f"no panel titled \"{title}\"")

    alerts = yaml.safe_load(ALERTS.read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert")
            if not name:
                continue
            where = f"{ALERTS.name} {name}"
            if not rule.get("labels", {}).get("severity"):
                failures.add(where, "no severity label")
            for key in ("summary", "description"):
                if not rule.get("annotations", {}).get(key):
                    failures.add(where, f"no {key} annotation")

    families = metric_families()
    spec = METRICS_MD.read_text()
    for family in sorted(families):
        if f"`{family}`" not in spec:
            failures.add(METRICS_MD.name, f"{family} (in src/metrics.rs) is not specified")
    exprs = expressions()
    for where, _, expr in exprs:
        for name in re.findall(r"\bpermeable_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if name not in families and base not in families:
                failures.add(where, f"{name} is not a metric family of src/metrics.rs")

    rules = {"groups": [{"name": "dashboard-expressions", "rules": [
        {"record": f"permeable_check:expr_{i}", "expr": expr} for i, (_, _, expr) in enumerate(exprs)
    ]}]}
    Path(rules_out).write_text(yaml.safe_dump(rules, sort_keys=False, width=1000))
    index = Path(rules_out).with_suffix(".index")
    index.write_text("".join(f"permeable_check:expr_{i}\t{where}\n" for i, (where, _, _) in enumerate(exprs)))

    failures.report_and_exit("dashboards and alert rules")
    panels = sum(1 for p in dashboards() for x in panels_of(json.loads(p.read_text())) if x.get("type") != "row")
    print(f"ok: {len(dashboards())} dashboards, {panels} panels, {len(exprs)} expressions, "
          f"{len(expected_titles())} expected to be non-empty")


# --- live -------------------------------------------------------------------------


def api(prometheus, path, params=None):
    url = prometheus.rstrip("/") + path
    data = urllib.parse.urlencode(params).encode() if params else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        # Prometheus answers 400/422 with a JSON error body for a bad query.
        try:
            return json.load(err)
        except ValueError:
            return {"status": "error", "error": f"HTTP {err.code}"}


def wait_for_samples(prometheus, job, min_samples, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            answer = api(prometheus, "/api/v1/query", {"query": f'sum_over_time(up{{job="{job}"}}[5m])'})
            result = answer.get("data", {}).get("result", [])
            last = float(result[0]["value"][1]) if result else 0
            if last >= min_samples:
                print(f"ok: {int(last)} successful scrapes of job {job}")
                return
        except (urllib.error.URLError, OSError, ValueError) as err:
            last = err
        time.sleep(0.5)
    targets = api(prometheus, "/api/v1/targets")
    health = [
        (t.get("scrapeUrl"), t.get("health"), t.get("lastError"))
        for t in targets.get("data", {}).get("activeTargets", [])
    ]
    print(f"FAILED: fewer than {min_samples} successful scrapes of job {job} after {timeout}s "
          f"(last: {last}); targets: {health}", file=sys.stderr)
    sys.exit(1)


def check_live(prometheus):
    failures = Failures()
    expected = set(expected_titles())
    populated = set()
    exprs = expressions()
    for where, title, expr in exprs:
        answer = api(prometheus, "/api/v1/query", {"query": expr})
        if answer.get("status") != "success":
            failures.add(where, f"does not evaluate: {answer.get('error')} in `{expr}`")
            continue
        if answer["data"]["result"]:
            populated.add(title)
    for title in sorted(expected - populated):
        failures.add(EXPECTED.name, f"panel \"{title}\" returned no data for the generated traffic")

    rules = api(prometheus, "/api/v1/rules")
    loaded = [r for g in rules.get("data", {}).get("groups", []) for r in g.get("rules", [])]
    for rule in loaded:
        if rule.get("health") not in ("ok", "unknown"):
            failures.add(f"alert {rule.get('name')}", f"unhealthy in Prometheus: {rule.get('lastError')}")
    firing = [r["name"] for r in loaded if r.get("state") == "firing"]

    failures.report_and_exit("live evaluation")
    print(f"ok: {len(exprs)} expressions evaluate; {len(expected)} expected panels have data; "
          f"{len(loaded)} alert rules loaded and healthy" + (f" (firing: {', '.join(firing)})" if firing else ""))


def main():
    command, *args = sys.argv[1:] or ["help"]
    if command == "static" and len(args) == 1:
        check_static(args[0])
    elif command == "wait" and len(args) == 4:
        wait_for_samples(args[0], args[1], float(args[2]), float(args[3]))
    elif command == "live" and len(args) == 1:
        check_live(args[0])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
