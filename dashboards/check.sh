#!/usr/bin/env bash
# Checks permeable's dashboards and alert rules with a real Prometheus.
#
#   bash dashboards/check.sh static
#       promtool check rules + test rules on dashboards/alerts; every dashboard JSON is
#       valid, every panel has a description and PromQL targets that parse; dashboards
#       are up to date with build.py; metric names match src/metrics.rs and docs/metrics.md.
#
#   bash dashboards/check.sh live HOST:PORT [COMMAND...]
#       Starts Prometheus on loopback (temp dir, 1 s scrapes, bounded runtime) scraping
#       the gateway's admin port HOST:PORT as job "permeable" with the alert rules
#       loaded; waits for samples; runs COMMAND (e.g. a traffic generator), if given, and
#       waits for a few more scrapes; runs `promtool check metrics` on the scraped
#       /metrics; evaluates every dashboard and alert expression via /api/v1/query: each
#       must evaluate, and each panel in dashboards/expected_nonempty.txt must return data.
#
#   Environment:
#     PERMEABLE_METRICS_URL     the gateway's metrics URL (instead of HOST:PORT), e.g.
#                               http://127.0.0.1:9180/metrics
#     PERMEABLE_PROMETHEUS_URL  use this running Prometheus (already scraping the gateway
#                               as job "permeable") instead of starting one
#     PERMEABLE_LIVE_TIMEOUT    seconds the started Prometheus may live (default 300)
#
# Exit status: 0 all checks pass, 1 a check failed, 2 usage error.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALERTS="$DIR/alerts/permeable.yml"
ALERT_TESTS="$DIR/alerts/permeable_test.yml"

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

ensure_tools() {
    local packages=()
    command -v promtool >/dev/null && command -v prometheus >/dev/null || packages+=(prometheus)
    python3 -c 'import yaml' 2>/dev/null || packages+=(python3-yaml)
    if ((${#packages[@]})); then
        step "installing ${packages[*]}"
        # The Debian package does not start its service in these environments; we run
        # the binary ourselves on loopback.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null; }
    fi
    promtool --version 2>&1 | head -n1
}

# Runs a named check; a failure is recorded and the remaining checks still run, so one
# pass reports everything that is wrong.
FAILED_CHECKS=()
run_check() {
    local name="$1"
    shift
    step "$name"
    if ! "$@"; then
        FAILED_CHECKS+=("$name")
    fi
}

parse_dashboard_exprs() {
    local rules="$1" out
    if out="$(promtool check rules "$rules" 2>&1)"; then
        sed -n 's/^  SUCCESS: \(.*\) rules found/ok: \1 expressions parse/p' <<<"$out"
        return 0
    fi
    echo "$out" >&2
    # Name the panels behind the failing recording rules.
    grep -o 'permeable_check:expr_[0-9]*' <<<"$out" | sort -u | while read -r rule; do
        grep -P "^$rule\t" "${rules%.yml}.index" | cut -f2- | sed 's/^/  in: /' >&2
    done
    return 1
}

check_static() {
    ensure_tools
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT

    run_check "promtool check rules $(basename "$ALERTS")" promtool check rules "$ALERTS"
    run_check "promtool test rules $(basename "$ALERT_TESTS")" promtool test rules "$ALERT_TESTS"
    run_check "dashboards are up to date with build.py" python3 "$DIR/build.py" --check
    run_check "dashboards: JSON, descriptions, targets, datasource, metric names" \
        python3 "$DIR/check.py" static "$tmp/dashboard-exprs.yml"
    if [[ -f "$tmp/dashboard-exprs.yml" ]]; then
        run_check "every dashboard expression parses (promtool check rules)" \
            parse_dashboard_exprs "$tmp/dashboard-exprs.yml"
    fi

    if ((${#FAILED_CHECKS[@]})); then
        printf 'FAILED: %s\n' "${FAILED_CHECKS[@]}" >&2
        exit 1
    fi
    step "static checks passed"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cleanup_live() {
    if [[ -n "${PROM_PID:-}" ]]; then
        kill "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
    [[ -n "${LIVE_TMP:-}" ]] && rm -rf "$LIVE_TMP"
}

# check_live TARGET [COMMAND...] — TARGET is HOST:PORT of the gateway's admin listener.
check_live() {
    local target="${1:-}"
    shift || true
    local metrics_url="${PERMEABLE_METRICS_URL:-}"
    if [[ -z "$metrics_url" ]]; then
        [[ -n "$target" ]] || { echo "usage: $0 live HOST:PORT [COMMAND...]" >&2; exit 2; }
        metrics_url="http://$target/metrics"
    fi
    ensure_tools

    local scheme hostport path
    read -r scheme hostport path < <(python3 -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1]); print(p.scheme or "http", p.netloc, p.path or "/metrics")' "$metrics_url")

    local prometheus="${PERMEABLE_PROMETHEUS_URL:-}"
    # Globals: the EXIT trap runs after this function has returned.
    LIVE_TMP="$(mktemp -d)"
    PROM_PID=""
    trap cleanup_live EXIT
    local tmp="$LIVE_TMP"

    if [[ -z "$prometheus" ]]; then
        local port
        port="$(free_port)"
        prometheus="http://127.0.0.1:$port"
        cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $ALERTS
scrape_configs:
  - job_name: permeable
    scheme: $scheme
    metrics_path: $path
    static_configs:
      - targets: ['$hostport']
EOF
        step "starting Prometheus on 127.0.0.1:$port scraping $metrics_url"
        promtool check config "$tmp/prometheus.yml" >/dev/null
        # `timeout` bounds its life even if this script is killed before cleanup.
        timeout "${PERMEABLE_LIVE_TIMEOUT:-300}" prometheus \
            --config.file="$tmp/prometheus.yml" \
            --storage.tsdb.path="$tmp/data" \
            --web.listen-address="127.0.0.1:$port" \
            --log.level=warn >"$tmp/prometheus.log" 2>&1 &
        PROM_PID=$!
    else
        step "using Prometheus at $prometheus"
    fi

    step "waiting for samples"
    python3 "$DIR/check.py" wait "$prometheus" permeable 3 60 || {
        [[ -f "$tmp/prometheus.log" ]] && tail -n 20 "$tmp/prometheus.log" >&2
        fail "Prometheus did not scrape $metrics_url"
    }

    if (($#)); then
        step "generating traffic: $*"
        "$@" || fail "traffic command failed: $*"
        # Let Prometheus scrape what the traffic produced (1 s interval).
        sleep 4
    fi

    step "promtool check metrics on $metrics_url"
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
        "$metrics_url" >"$tmp/metrics.txt" || fail "cannot fetch $metrics_url"
    promtool check metrics <"$tmp/metrics.txt" || fail "promtool check metrics found problems in $metrics_url"
    echo "ok: $(grep -c '^# TYPE permeable_' "$tmp/metrics.txt") permeable_ families exposed"

    step "evaluating dashboard and alert expressions"
    python3 "$DIR/check.py" live "$prometheus"

    step "live checks passed"
}

case "${1:-}" in
    static) check_static ;;
    live) shift; check_live "$@" ;;
    *) echo "usage: $0 static | live HOST:PORT [COMMAND...]" >&2; exit 2 ;;
esac
