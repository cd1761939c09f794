#!/usr/bin/env python3
"""Builds permeable's Grafana dashboards as plain JSON (no dependencies).

    python3 dashboards/build.py          # (re)write dashboards/*.json
    python3 dashboards/build.py --check  # exit 1 if a committed file differs

The JSON files are committed; edit this script, run it, and commit both. Every panel
carries a description and PromQL targets on the datasource provisioned with uid
`prometheus` (dashboards/provisioning/datasources/prometheus.yaml). Metric names and
labels are those of docs/metrics.md.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SCHEMA_VERSION = 39
RATE = "$__rate_interval"
RANGE = "$__range"


# --- panel builders ---------------------------------------------------------------


def target(expr, legend="", ref="A", instant=False, fmt="time_series"):
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "format": fmt,
    }


def targets(*specs, instant=False, fmt="time_series"):
    """specs: (expr, legend) pairs; refIds A, B, C… in order."""
    return [
        target(expr, legend, chr(ord("A") + i), instant, fmt)
        for i, (expr, legend) in enumerate(specs)
    ]


def timeseries(title, description, specs, unit="short", stack=False, width=12, height=8,
               min_zero=True):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets(*specs),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                **({"min": 0} if min_zero else {}),
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 20 if stack else 10,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (width, height),
    }


def stat(title, description, expr, unit="short", width=6, height=4, legend="",
         thresholds=None, decimals=None):
    steps = [{"color": "green", "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    defaults = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend, instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
        },
        "_size": (width, height),
    }


def bargauge(title, description, expr, legend, unit="short", width=12, height=8):
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, legend, instant=True)],
        "fieldConfig": {
            "defaults": {"unit": unit, "min": 0, "color": {"mode": "continuous-BlPu"},
                         "thresholds": {"mode": "absolute",
                                        "steps": [{"color": "green", "value": None}]}},
            "overrides": [],
        },
        "options": {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
        "_size": (width, height),
    }


def table(title, description, expr, columns, value_name, unit="short", width=12, height=8):
    """An instant query shown as a table: one row per series, `columns` as labels."""
    hidden = {"Time": True, "__name__": True, "job": True, "instance": True}
    order = {name: i for i, name in enumerate([*columns, "Value"])}
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, "", instant=True, fmt="table")],
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"align": "auto"}},
                        "overrides": []},
        "options": {"showHeader": True, "cellHeight": "sm",
                    "sortBy": [{"displayName": value_name, "desc": True}]},
        "transformations": [{
            "id": "organize",
            "options": {"excludeByName": hidden, "indexByName": order,
                        "renameByName": {"Value": value_name}},
        }],
        "_size": (width, height),
    }


def heatmap(title, description, expr, unit="s", width=12, height=8):
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, "{{le}}", fmt="heatmap")],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5,
                      "fill": "dark-orange", "reverse": False, "scale": "exponential"},
            "yAxis": {"axisPlacement": "left", "unit": unit},
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
            "legend": {"show": True},
            "filterValues": {"le": 1e-9},
        },
        "_size": (width, height),
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def quantiles(metric, selector, by=""):
    group = f"{by}, le" if by else "le"
    return [
        (f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))",
         f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""))
        for q in (0.5, 0.9, 0.99)
    ]


# --- layout and dashboard ---------------------------------------------------------


def layout(panels):
    """Flows panels left to right in Grafana's 24-column grid; rows start a new line."""
    x = y = line_height = 0
    out = []
    for panel_id, panel in enumerate(panels, start=1):
        width, height = panel.pop("_size")
        if panel["type"] == "row" or x + width > 24:
            x, y, line_height = 0, y + line_height, 0
        panel["id"] = panel_id
        panel["gridPos"] = {"h": height, "w": width, "x": x, "y": y}
        out.append(panel)
        if panel["type"] == "row":
            y += height
        else:
            x += width
            line_height = max(line_height, height)
    return out


def variable(name, label, query):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
    }


def dashboard(uid, title, description, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["permeable"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "links": [{
            "type": "dashboards", "tags": ["permeable"], "asDropdown": False,
            "includeVars": False, "keepTime": True, "title": "permeable", "icon": "external link",
            "targetBlank": False, "tooltip": "", "url": "",
        }],
        "templating": {"list": list(variables)},
        "panels": layout(panels),
    }


# --- the dashboards ---------------------------------------------------------------

USAGE_SEL = '{site=~"$site", group=~"$group"}'
CONTENT = "post|comment|message|share|upload"


def usage():
    req = f"permeable_requests_total{USAGE_SEL}"
    panels = [
        row("Overview"),
        stat("Requests in range",
             "Requests to social sites through the gateway in the selected time range, "
             "for the selected sites and groups.",
             f"sum(increase({req}[{RANGE}])) or vector(0)", decimals=0),
        stat("Content shared in range",
             "Posts, comments, messages, shares and uploads sent in the selected range: "
             "what employees publish, as opposed to what they read.",
             f'sum(increase(permeable_requests_total{{site=~"$site", group=~"$group", '
             f'activity=~"{CONTENT}"}}[{RANGE}])) or vector(0)', decimals=0),
        stat("Sites in use",
             "Catalogue sites that have received requests since the gateways started "
             "(hosts outside the catalogue are not counted).",
             'count(count by (site) (permeable_requests_total{site!="other"})) or vector(0)',
             decimals=0),
        stat("Share of traffic from suppressed groups",
             "Groups with fewer distinct clients than the k-anonymity threshold are "
             "reported as \"suppressed\" so no one can be singled out. This is the share of "
             "requests in the range counted that way: a high value means the per-group "
             "panels hide a lot of traffic.",
             f'(sum(increase(permeable_requests_total{{site=~"$site", group="suppressed"}}'
             f'[{RANGE}])) or vector(0)) / sum(increase(permeable_requests_total{{site=~"$site"}}'
             f'[{RANGE}]))',
             unit="percentunit", thresholds=[(0.25, "orange")]),
        row("By site, activity and group"),
        timeseries("Requests by site",
                   "Request rate per catalogue site (\"other\": a host outside the "
                   "catalogue reached the HTTP pipeline).",
                   [(f"sum by (site) (rate({req}[{RATE}]))", "{{site}}")],
                   unit="reqps", stack=True),
        timeseries("Requests by activity",
                   "Request rate per activity (view, post, comment, message, upload…); "
                   "\"unclassified\" is traffic to a known site that matched no activity, "
                   "\"none\" traffic to hosts outside the catalogue.",
                   [(f"sum by (activity) (rate({req}[{RATE}]))", "{{activity}}")],
                   unit="reqps", stack=True),
        bargauge("Activity mix by site",
                 "Requests in the selected range per site and activity: how each site is "
                 "used (mostly read, or also written to).",
                 f"sort_desc(sum by (site, activity) (increase({req}[{RANGE}])))",
                 "{{site}} · {{activity}}"),
        timeseries("Requests by group",
                   "Request rate per client group. Groups below the k-anonymity threshold "
                   "appear as \"suppressed\"; clients in no configured group as \"unknown\"; "
                   "unconfigured groups named by an identity header as \"other\".",
                   [(f"sum by (group) (rate({req}[{RATE}]))", "{{group}}")],
                   unit="reqps", stack=True),
        table("Content shared by group and site",
              "Posts, comments, messages, shares and uploads in the selected range, per "
              "group and site (suppressed groups grouped together).",
              f'sort_desc(sum by (group, site) (increase(permeable_requests_total'
              f'{{site=~"$site", group=~"$group", activity=~"{CONTENT}"}}[{RANGE}])))',
              ["group", "site"], "Items shared"),
        row("Shared links"),
        bargauge("Top shared link domains",
                 "Domains of links that employees put in posts (domains only, never URLs), "
                 "top 15 in the selected range. Only the first N distinct domains are "
                 "itemised; later newcomers are counted under \"other\".",
                 f"topk(15, sum by (domain) (increase(permeable_shared_link_domains_total[{RANGE}])))",
                 "{{domain}}"),
        timeseries("Shared links over time",
                   "Rate of links shared in posts, itemised domains versus \"other\". A "
                   "growing \"other\" means the domain capacity is too small to be useful.",
                   [(f'sum(rate(permeable_shared_link_domains_total{{domain!="other"}}[{RATE}]))',
                     "itemised domains"),
                    (f'sum(rate(permeable_shared_link_domains_total{{domain="other"}}[{RATE}]))',
                     "other")],
                   unit="ops", stack=True),
        row("Trends"),
        timeseries("Content shared per hour, this week vs last week",
                   "Items of content shared per hour (posts, comments, messages, shares, "
                   "uploads) compared with the same hour a week earlier.",
                   [(f'sum(increase(permeable_requests_total{{site=~"$site", group=~"$group", '
                     f'activity=~"{CONTENT}"}}[1h]))', "this week"),
                    (f'sum(increase(permeable_requests_total{{site=~"$site", group=~"$group", '
                     f'activity=~"{CONTENT}"}}[1h] offset 1w))', "last week")]),
        timeseries("Body volume by site",
                   "Bytes per second of request bodies (sent by employees) and response "
                   "bodies (received), per site, as seen on the wire.",
                   [(f'sum by (site, direction) (rate(permeable_body_bytes_total{{site=~"$site"}}'
                     f'[{RATE}]))', "{{site}} {{direction}}")],
                   unit="Bps"),
    ]
    return dashboard(
        "permeable-usage", "permeable · Social media usage",
        "How employees use social sites: which sites, which activities, which teams, "
        "and which domains they share. Groups too small to stay anonymous are suppressed.",
        panels,
        [variable("site", "Site", "label_values(permeable_requests_total, site)"),
         variable("group", "Group", "label_values(permeable_requests_total, group)")],
    )


def policy():
    site = '{site=~"$site"}'

    def action_count(action):
        return (f'sum(increase(permeable_requests_total{{site=~"$site", action="{action}"}}'
                f'[{RANGE}])) or vector(0)')

    panels = [
        row("Overview"),
        stat("Blocked in range",
             "Requests answered with 403 and an explanation because a rule with action "
             "block matched (enforce mode only).",
             action_count("block"), thresholds=[(1, "red")], decimals=0),
        stat("Redacted in range",
             "Requests forwarded with the sensitive parts replaced, structure preserved.",
             action_count("redact"), thresholds=[(1, "orange")], decimals=0),
        stat("Coached in range",
             "Requests stopped with an explanation the employee can act on (coach).",
             action_count("coach"), thresholds=[(1, "yellow")], decimals=0),
        stat("Monitor-mode hits in range",
             "Matches of rules in monitor mode: what they would have done, not enforced. "
             "Use them to judge a rule before switching it to enforce.",
             f'sum(increase(permeable_rule_matches_total{{mode="monitor"}}[{RANGE}])) or vector(0)',
             thresholds=[(1, "blue")], decimals=0),
        row("Enforcement"),
        timeseries("Actions over time",
                   "Rate of requests by the action taken, allow excluded: log, redact, "
                   "coach and block.",
                   [(f'sum by (action) (rate(permeable_requests_total{{site=~"$site", '
                     f'action!="allow"}}[{RATE}]))', "{{action}}")],
                   unit="reqps", stack=True),
        timeseries("Blocks by site and activity",
                   "Rate of blocked requests per site and activity: where the rules bite.",
                   [(f'sum by (site, activity) (rate(permeable_requests_total{{site=~"$site", '
                     f'action="block"}}[{RATE}]))', "{{site}} · {{activity}}")],
                   unit="reqps", stack=True),
        timeseries("Enforced rule matches by rule",
                   "Rate of matches of enforced rules, by rule id and the rule's action. "
                   "Every matching rule counts, not only the one whose action won.",
                   [(f'sum by (rule, action) (rate(permeable_rule_matches_total{{mode="enforce"}}'
                     f'[{RATE}]))', "{{rule}} ({{action}})")],
                   unit="ops"),
        table("Top enforced rules",
              "Enforced rule matches in the selected range, most frequent first.",
              f'sort_desc(sum by (rule, action) (increase(permeable_rule_matches_total'
              f'{{mode="enforce"}}[{RANGE}])))',
              ["rule", "action"], "Matches"),
        row("Findings"),
        timeseries("Findings by category",
                   "Rate of sensitive-data findings in inspected bodies by category "
                   "(pii.*, secret.*, corp.*).",
                   [(f"sum by (category) (rate(permeable_findings_total[{RATE}]))",
                     "{{category}}")],
                   unit="ops", stack=True),
        bargauge("Findings by category and action",
                 "Findings in the selected range by category and the action taken on the "
                 "request that carried them: a category that is mostly allowed may need a rule.",
                 f"sort_desc(sum by (category, action) (increase(permeable_findings_total[{RANGE}])))",
                 "{{category}} → {{action}}"),
        row("Monitor mode"),
        timeseries("Monitor-mode hits by rule",
                   "Rate of matches of rules in monitor mode, by rule and the action they "
                   "would take. Compare with the traffic they would affect before enforcing.",
                   [(f'sum by (rule, action) (rate(permeable_rule_matches_total{{mode="monitor"}}'
                     f'[{RATE}]))', "{{rule}} (would {{action}})")],
                   unit="ops"),
        table("Monitor-mode hits",
              "Matches of monitor-mode rules in the selected range, by rule and the action "
              "they would have taken.",
              f'sort_desc(sum by (rule, action) (increase(permeable_rule_matches_total'
              f'{{mode="monitor"}}[{RANGE}])))',
              ["rule", "action"], "Would-be matches"),
        row("Blind spots"),
        timeseries("Unclassified requests by site",
                   "Requests to a catalogue site that matched no activity. A rise means the "
                   "site's client or API changed and the catalogue needs updating; rules on "
                   "activities do not see this traffic.",
                   [(f"sum by (site) (rate(permeable_unclassified_requests_total{site}[{RATE}]))",
                     "{{site}}")],
                   unit="reqps"),
        timeseries("Uninspectable requests by site and reason",
                   "Content-carrying requests whose body could not be inspected (too large, "
                   "bad content encoding, nested too deep, malformed); "
                   "inspection.on_uninspectable decided their fate.",
                   [(f"sum by (site, reason) (rate(permeable_uninspectable_total{site}[{RATE}]))",
                     "{{site}} · {{reason}}")],
                   unit="reqps"),
    ]
    return dashboard(
        "permeable-policy", "permeable · Policy enforcement",
        "What the rules do: blocks, redactions and coaching by rule and category, "
        "monitor-mode hits, and the traffic the rules cannot see.",
        panels,
        [variable("site", "Site", "label_values(permeable_requests_total, site)")],
    )


def health():
    inst = '{instance=~"$instance"}'
    up = '{job="permeable", instance=~"$instance"}'
    panels = [
        row("Overview"),
        stat("Gateways up",
             "Gateway instances Prometheus can scrape (job=\"permeable\"), out of those "
             "it knows about.",
             f"sum(up{up})", thresholds=None, decimals=0),
        stat("Request rate",
             "Requests per second through the HTTP pipeline, all instances.",
             f"sum(rate(permeable_requests_total{inst}[{RATE}]))", unit="reqps"),
        stat("Upstream error ratio",
             "Upstream errors per request over the last 5 minutes (destinations the "
             "gateway refuses itself are not counted).",
             f"(sum(rate(permeable_upstream_errors_total{{instance=~\"$instance\", "
             f"kind!=\"refused\"}}[5m])) or vector(0)) / "
             f"sum(rate(permeable_requests_total{inst}[5m]))",
             unit="percentunit", thresholds=[(0.01, "orange"), (0.05, "red")]),
        stat("Live rule set",
             "Version of the rule set each instance is running (permeable_rules_info). "
             "Different versions across instances mean a reload did not reach all of them.",
             f"max by (version) (permeable_rules_info{inst})", legend="{{version}}"),
        row("Latency"),
        timeseries("Request latency percentiles",
                   "Percentiles of the whole request through the gateway, upstream time "
                   "included (permeable_request_duration_seconds).",
                   quantiles("permeable_request_duration_seconds", inst), unit="s"),
        timeseries("Gateway-added latency (inspection) percentiles",
                   "Percentiles of the time the gateway itself spends classifying, "
                   "inspecting and deciding on a request: the latency it adds.",
                   quantiles("permeable_inspection_duration_seconds", inst), unit="s"),
        heatmap("Inspection time distribution",
                "Distribution of inspection time per bucket (1 µs to 1 s): outliers show "
                "as isolated cells far above the bulk.",
                f"sum by (le) (increase(permeable_inspection_duration_seconds_bucket{inst}"
                f"[{RATE}]))"),
        timeseries("Request latency p99 by site",
                   "99th percentile of the whole request per site: a single slow site "
                   "usually means its upstream, not the gateway.",
                   [(f"histogram_quantile(0.99, sum by (site, le) "
                     f"(rate(permeable_request_duration_seconds_bucket{inst}[{RATE}])))",
                     "{{site}}")],
                   unit="s"),
        row("Errors and traffic"),
        timeseries("Errors by kind",
                   "Rate of upstream errors by kind: dns, connect, timeout, tls, reset, "
                   "protocol, refused (destination resolved to a forbidden address), other.",
                   [(f"sum by (kind) (rate(permeable_upstream_errors_total{inst}[{RATE}]))",
                     "{{kind}}")],
                   unit="ops", stack=True),
        timeseries("Upstream errors by site",
                   "Rate of errors reaching or talking to each real site (\"other\": blind "
                   "tunnels and hosts outside the catalogue).",
                   [(f"sum by (site) (rate(permeable_upstream_errors_total{inst}[{RATE}]))",
                     "{{site}}")],
                   unit="ops", stack=True),
        timeseries("Tunnels by mode",
                   "CONNECT tunnels opened per second: intercept (TLS terminated, inspected), "
                   "passthrough (blind tunnel to a non-social host), refused.",
                   [(f"sum by (mode) (rate(permeable_tunnels_total{inst}[{RATE}]))",
                     "{{mode}}")],
                   unit="ops", stack=True),
        timeseries("Active connections",
                   "Client connections open on each instance.",
                   [(f"sum by (instance) (permeable_connections_active{inst})",
                     "{{instance}}")]),
        timeseries("Slow clients cut off",
                   "Client connections closed for sending too slowly: head (request head "
                   "not complete within proxy.header_timeout_seconds) or body (less than "
                   "proxy.body_min_bytes per proxy.body_timeout_seconds). A rise is a "
                   "slowloris attempt or a client network in trouble.",
                   [(f"sum by (phase) (rate(permeable_client_timeouts_total{inst}[{RATE}]))",
                     "{{phase}}")],
                   unit="ops", stack=True),
        timeseries("Body throughput",
                   "Body bytes per second through the pipeline: request (to sites) and "
                   "response (from sites).",
                   [(f"sum by (direction) (rate(permeable_body_bytes_total{inst}[{RATE}]))",
                     "{{direction}}")],
                   unit="Bps"),
        row("Sign-in"),
        timeseries("Proxy sign-ins by method and result",
                   "Proxy authentication attempts per second (permeable_auth_total): "
                   "negotiate (Kerberos) and basic (LDAP password) by result, and requests "
                   "without credentials answered with a 407 challenge (none/challenged). "
                   "unavailable: the directory did not answer and auth.on_unavailable "
                   "applied.",
                   [(f"sum by (method, result) (rate(permeable_auth_total{inst}[{RATE}]))",
                     "{{method}} {{result}}")],
                   unit="ops", stack=True),
        timeseries("Directory lookups",
                   "Questions to the directory per second (password binds and group reads, "
                   "the sign-in cache's misses) by result; at most one per user per "
                   "auth.cache_ttl_seconds when the cache works.",
                   [(f"sum by (result) (rate(permeable_auth_directory_lookups_total{inst}"
                     f"[{RATE}]))", "{{result}}")],
                   unit="ops", stack=True),
        row("Rules and certificates"),
        timeseries("Rule reloads",
                   "Rule-set reloads per result. A failure keeps the running rule set and "
                   "prints FILE:LINE:COL errors in the gateway's log.",
                   [(f"sum by (result) (increase(permeable_rules_reloads_total{inst}[{RATE}]))",
                     "{{result}}")]),
        timeseries("Certificates minted",
                   "Leaf certificates minted per second for intercepted server names; "
                   "steady minting after warm-up means the cache is too small.",
                   [(f"sum(rate(permeable_certificates_minted_total{inst}[{RATE}]))",
                     "minted")],
                   unit="ops"),
        timeseries("Certificate cache hit ratio",
                   "Share of certificate lookups answered from the cache.",
                   [(f"sum(rate(permeable_certificate_cache_hits_total{inst}[{RATE}])) / "
                     f"(sum(rate(permeable_certificate_cache_hits_total{inst}[{RATE}])) + "
                     f"sum(rate(permeable_certificate_cache_misses_total{inst}[{RATE}])))",
                     "hit ratio")],
                   unit="percentunit"),
    ]
    return dashboard(
        "permeable-health", "permeable · Gateway health",
        "Is the gateway healthy: request rate, latency it adds, errors, tunnels, "
        "connections, rule reloads and certificates.",
        panels,
        [variable("instance", "Instance", 'label_values(up{job="permeable"}, instance)')],
    )


DASHBOARDS = {
    "social-media-usage.json": usage,
    "policy-enforcement.json": policy,
    "gateway-health.json": health,
}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"stale: {', '.join(stale)} (run python3 dashboards/build.py)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
