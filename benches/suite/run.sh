#!/usr/bin/env bash
# The permeable benchmark suite (issue 9): permeable side by side with the proxies an
# organisation would otherwise deploy, on this machine, in one run, on loopback.
#
#   bash benches/suite/run.sh            # everything, about 15 minutes
#   BENCH_SECONDS=3 BENCH_SCENARIOS="1 3" bash benches/suite/run.sh   # a quick look
#
# On a fresh Debian/Ubuntu machine it installs what it needs: nginx (upstream and the
# reference proxy), wrk (scenario 1), h2load (nghttp2-client, scenario 8), openssl (test
# certificates), python3-venv, and
# mitmproxy from PyPI in a venv under the cache directory; then builds permeable
# (`cargo build --release --locked`), the suite's load generator (benches/suite/loadgen,
# its own lock file) and the scale benchmark (benches/scale.rs).
#
# Placement: every server of a run (the candidate and the local upstream) is pinned to
# CPU 0, the load generator to CPU 1 (`taskset`), when the machine has two CPUs or more;
# each candidate runs alone, in turn, against the same upstream under the same client.
# Candidates run with one worker (nginx worker_processes 1, permeable threads: 1,
# mitmdump is single-threaded) since they get one CPU.
#
# Output: a Markdown table on stdout and in benches/suite/results.md (BENCH_OUT to move
# it); the raw JSON lines and every server log stay in the work directory it prints.
#
# Environment: BENCH_SECONDS (measured seconds per candidate, default 10), BENCH_WARMUP
# (default 2), BENCH_CONNS (keep-alive connections, default 32), BENCH_SCENARIOS
# (default "1 2 3 4 5 6 7 8"), BENCH_UPLOAD_MIB (default 100), BENCH_RATE (paced req/s for
# the latency measurements, default 1000), BENCH_IDLE (idle connections in scenario 7,
# default 5000), PERMEABLE_BENCH_CACHE (venv location).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUITE=$ROOT/benches/suite
DUR=${BENCH_SECONDS:-10}
WARM=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-32}
SCENARIOS=${BENCH_SCENARIOS:-1 2 3 4 5 6 7 8}
UPLOAD_MIB=${BENCH_UPLOAD_MIB:-100}
RATE=${BENCH_RATE:-1000}
IDLE=${BENCH_IDLE:-5000}
OUT=${BENCH_OUT:-$SUITE/results.md}
CACHE=${PERMEABLE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/permeable-bench}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

say() { printf '== %s\n' "$*" >&2; }
want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# --- what the suite needs ---------------------------------------------------------------
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# nginx's L4 proxy (stream module), the floor any tunnel pays in scenario 4; Debian builds
# it as a module of its own.
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_MODULE" ] || missing+=(libnginx-mod-stream)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
command -v ps >/dev/null 2>&1 || missing+=(procps)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
VENV=$CACHE/venv
if want 2 && [ ! -x "$VENV/bin/mitmdump" ]; then
  say "installing mitmproxy into $VENV (pip)"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q mitmproxy
fi
"$ROOT/scripts/bootstrap"

say "building permeable, the load generator and the scale benchmark"
(cd "$ROOT" && cargo build --release --locked -q)
(cd "$ROOT" && want 8 && cargo build --release --locked -q --example pingora_floor) || true
(cd "$ROOT" && want 5 && cargo bench --locked --bench scale --no-run -q 2>/dev/null) || true
cargo build --release --locked -q --manifest-path "$SUITE/loadgen/Cargo.toml" \
  --target-dir "$TARGET_DIR/suite"
PERMEABLE=$TARGET_DIR/release/permeable
LOADGEN=$TARGET_DIR/suite/release/permeable-loadgen

# --- placement ----------------------------------------------------------------------------
if [ "$(nproc)" -ge 2 ] && taskset -c 1 true 2>/dev/null; then
  SRV=(taskset -c 0)
  LOAD=(taskset -c 1)
  PLACEMENT="servers (candidate + upstream) pinned to CPU 0, load generator to CPU 1"
else
  SRV=()
  LOAD=()
  PLACEMENT="one CPU: not pinned (servers and load share it)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/permeable-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
say "work directory: $WORK"

# Listening ports, all different, taken below the kernel's ephemeral range: a port the
# kernel hands out (bind to port 0) can be given again as the source port of one of the
# thousands of connections the suite opens before the server that wants it starts.
free_ports() { # COUNT
  python3 - "$1" <<'PY'
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
picked = []
while len(picked) < int(sys.argv[1]):
    port = random.randint(10000, low - 1) if low > 11000 else 0
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        port = s.getsockname()[1]
        if port not in picked:
            picked.append(port)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, picked)))
PY
}
wait_port() {
  local i
  for i in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  say "nothing listens on port $1"
  return 1
}
# Peak resident memory (VmHWM) of a process and its children, in KiB.
hwm_kib() {
  local total=0 p v
  for p in "$1" $(ps --ppid "$1" -o pid= 2>/dev/null); do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
stop() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
# record SCENARIO CANDIDATE ROLE MEM_KIB JSON [EXTRA_JSON_FIELDS]
record() {
  printf '{"scenario":%s,"candidate":"%s","role":"%s","mem_kib":%s,"result":%s%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "${6:+,$6}" >>"$RESULTS"
  printf '   %-44s %s\n' "$2" "$5" >&2
}

# --- certificates -------------------------------------------------------------------------
PKI=$WORK/pki
mkdir -p "$PKI"
cat >"$PKI/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = permeable bench upstream CA
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:x.com,DNS:*.x.com,DNS:files.example.net,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
(
  cd "$PKI"
  openssl req -x509 -config openssl.cnf -extensions ca_ext -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 3 2>/dev/null
  openssl req -new -config openssl.cnf -subj /CN=x.com -newkey ec \
    -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout site.key -out site.csr 2>/dev/null
  openssl x509 -req -in site.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3 \
    -extfile openssl.cnf -extensions leaf_ext -out site.crt 2>/dev/null
)
"$PERMEABLE" ca init --out "$WORK/gwca" >/dev/null
GWCA=$WORK/gwca/ca.crt

# --- ports and the servers ---------------------------------------------------------------
read -r UP_HTTP UP_HTTPS NGX_HTTP NGX_TLS SINK MITM NGX_L4 NGX_UP \
  GW_PROXY GW_HTTP GW_TLS GW_ADMIN FLOOR_TLS <<<"$(free_ports 13)"
NGINX_USER=""
[ "$(id -u)" -eq 0 ] && NGINX_USER="user root;"

nginx_conf() { # DIR HTTP_SERVER_BLOCKS [STREAM_SERVER_BLOCKS]
  mkdir -p "$1/tmp"
  local stream_module="" stream=""
  if [ -n "${3:-}" ]; then
    [ -f "$STREAM_MODULE" ] && stream_module="load_module $STREAM_MODULE;"
    stream="stream { $3 }"
  fi
  cat >"$1/nginx.conf" <<EOF
$stream_module
worker_processes 1;
daemon off;
$NGINX_USER
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 0;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  ssl_protocols TLSv1.2 TLSv1.3;
$2
}
$stream
EOF
}

start_nginx() { # DIR (written by nginx_conf): on the servers' CPU; sets NGINX_PID
  "${SRV[@]}" "$NGINX" -p "$1" -c "$1/nginx.conf" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
}

# The upstream: small answers to every request, plain and TLS (a certificate for x.com).
UPSTREAM_PID=""
start_upstream() {
  nginx_conf "$WORK/upstream" "
  server {
    listen 127.0.0.1:$UP_HTTP backlog=4096;
    listen 127.0.0.1:$UP_HTTPS ssl backlog=4096;
    ssl_certificate $PKI/site.crt;
    ssl_certificate_key $PKI/site.key;
    location / { default_type text/plain; return 200 \"hello from the upstream, a small answer\n\"; }
  }"
  start_nginx "$WORK/upstream"
  UPSTREAM_PID=$NGINX_PID
  wait_port "$UP_HTTP"
  wait_port "$UP_HTTPS"
}
stop_upstream() { stop "$UPSTREAM_PID"; }

# The reference proxy: nginx proxy_pass (plain) and nginx terminating TLS (HTTP/1.1 or,
# by ALPN, HTTP/2) and proxying to the upstream over verified TLS, both with upstream
# keep-alive.
start_nginx_proxy() {
  nginx_conf "$WORK/nginx-proxy" "
  upstream plain { server 127.0.0.1:$UP_HTTP; keepalive 64; }
  upstream tls { server 127.0.0.1:$UP_HTTPS; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_HTTP backlog=4096;
    location / {
      proxy_pass http://plain;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
    }
  }
  server {
    listen 127.0.0.1:$NGX_TLS ssl http2 backlog=4096;
    ssl_certificate $PKI/site.crt;
    ssl_certificate_key $PKI/site.key;
    location / {
      proxy_pass https://tls;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_ssl_server_name on;
      proxy_ssl_name x.com;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $PKI/ca.crt;
      proxy_ssl_session_reuse on;
    }
  }"
  start_nginx "$WORK/nginx-proxy"
  CAND_PID=$NGINX_PID
  wait_port "$NGX_HTTP"
  wait_port "$NGX_TLS"
}

# permeable with a rules directory; one worker thread (it has one CPU).
GW_N=0
start_permeable() { # RULES_DIR
  GW_N=$((GW_N + 1))
  local dir=$WORK/permeable-$GW_N
  mkdir -p "$dir"
  cat >"$dir/permeable.yaml" <<EOF
proxy:
  listen: ["127.0.0.1:$GW_PROXY"]
transparent:
  http_listen: ["127.0.0.1:$GW_HTTP"]
  https_listen: ["127.0.0.1:$GW_TLS"]
admin:
  listen: "127.0.0.1:$GW_ADMIN"
rules: "$1"
state_dir: "$dir/state"
ca: { cert: "$GWCA", key: "$WORK/gwca/ca.key" }
audit: { output: "off" }
threads: 1
upstream:
  ca_file: "$PKI/ca.crt"
  resolve:
    "x.com:80": "127.0.0.1:$UP_HTTP"
    "x.com:443": "127.0.0.1:$UP_HTTPS"
    "upload.x.com:443": "127.0.0.1:$SINK"
    "files.example.net:443": "127.0.0.1:$SINK"
EOF
  "${SRV[@]}" "$PERMEABLE" run --config "$dir/permeable.yaml" 2>"$dir/stderr.log" &
  CAND_PID=$!
  PIDS+=("$CAND_PID")
  local i
  for i in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$GW_ADMIN/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  say "permeable did not become ready: $(tail -5 "$dir/stderr.log")"
  return 1
}

# Scenario 4's references: nginx as an L4 proxy to the upload sink (what a blind tunnel
# costs at best), and nginx terminating TLS and streaming bodies to the sink over verified
# TLS (what interception costs at best).
start_nginx_upload() {
  nginx_conf "$WORK/nginx-upload" "
  upstream sink { server 127.0.0.1:$SINK; keepalive 8; }
  server {
    listen 127.0.0.1:$NGX_UP ssl backlog=4096;
    ssl_certificate $PKI/site.crt;
    ssl_certificate_key $PKI/site.key;
    location / {
      proxy_pass https://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_request_buffering off;
      proxy_ssl_server_name on;
      proxy_ssl_name files.example.net;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $PKI/ca.crt;
      proxy_ssl_session_reuse on;
    }
  }" "
  server { listen 127.0.0.1:$NGX_L4; proxy_pass 127.0.0.1:$SINK; }"
  start_nginx "$WORK/nginx-upload"
  CAND_PID=$NGINX_PID
  wait_port "$NGX_UP"
  wait_port "$NGX_L4"
}

start_mitmdump() {
  BENCH_RESOLVE="x.com:443=127.0.0.1:$UP_HTTPS" "${SRV[@]}" "$VENV/bin/mitmdump" -q \
    --listen-host 127.0.0.1 --listen-port "$MITM" \
    --set confdir="$WORK/mitmproxy" \
    --set ssl_verify_upstream_trusted_ca="$PKI/ca.crt" \
    -s "$SUITE/mitm_resolve.py" >"$WORK/mitmdump.log" 2>&1 &
  CAND_PID=$!
  PIDS+=("$CAND_PID")
  wait_port "$MITM"
}

start_sink() { # CPU-PINNING-COMMAND...
  "$@" "$LOADGEN" serve --listen "127.0.0.1:$SINK" --cert "$PKI/site.crt" \
    --key "$PKI/site.key" &
  SINK_PID=$!
  PIDS+=("$SINK_PID")
  wait_port "$SINK"
}

# wrk: one thread on the load CPU; a warm-up run, then the measured run.
wrk_run() { # URL
  "${LOAD[@]}" wrk -t1 -c"$CONNS" -d"${WARM}s" -H 'Host: x.com' "$1" >/dev/null
  "${LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DUR}s" -H 'Host: x.com' -s "$SUITE/report.lua" "$1" \
    | tail -n 1
}
load() { # LOADGEN-RUN-ARGS...
  "${LOAD[@]}" "$LOADGEN" run "$@"
}
# h2load: one thread on the load CPU, keep-alive connections to https://x.com/ at PORT (SNI
# and :authority x.com), one request at a time on each; a warm-up run, then the measured
# run, whose per-request log gives the percentiles (h2load prints only mean and sd).
h2load_run() { # PORT [--h1]
  local port=$1 log=$WORK/h2load-$1${2:-}.log
  shift
  "${LOAD[@]}" h2load "$@" -t1 -c"$CONNS" -m1 -D"$WARM" --connect-to="127.0.0.1:$port" \
    https://x.com/ >/dev/null
  "${LOAD[@]}" h2load "$@" -t1 -c"$CONNS" -m1 -D"$DUR" --connect-to="127.0.0.1:$port" \
    --log-file="$log" https://x.com/ >"$log.out"
  python3 - "$log" <<'PY'
import json, re, sys
log = sys.argv[1]
out = open(log + ".out").read()
rps = float(re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", out).group(1))
m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
status = re.search(r"status codes: (\d+) 2xx", out)
lat = sorted(int(l.split("\t")[2]) / 1000 for l in open(log) if l.count("\t") >= 2)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0
done = int(m.group(2))
print(json.dumps({"rps": rps, "ok": int(status.group(1)) if status else 0,
                  "errors": int(m.group(4)) + int(m.group(5)),
                  "non2xx": done - (int(status.group(1)) if status else 0),
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99), "p999_ms": pct(0.999)}))
PY
}

# --- 1. plain reverse proxying of small GETs --------------------------------------------
if want 1; then
  say "scenario 1: plain reverse proxying of small GETs (wrk, $CONNS connections)"
  start_upstream
  r=$(wrk_run "http://127.0.0.1:$UP_HTTP/")
  record 1 "upstream directly (nginx)" info "$(hwm_kib "$UPSTREAM_PID")" "$r"
  start_nginx_proxy
  r=$(wrk_run "http://127.0.0.1:$NGX_HTTP/")
  record 1 "nginx proxy_pass" ref "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  r=$(wrk_run "http://127.0.0.1:$GW_HTTP/")
  record 1 "permeable (transparent HTTP, x.com)" candidate "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  stop_upstream
fi

# --- 2. intercepted HTTPS through CONNECT, keep-alive -----------------------------------
if want 2; then
  say "scenario 2: intercepted HTTPS through CONNECT with keep-alive ($CONNS connections)"
  start_upstream
  common=(-c "$CONNS" -d "$DUR" --warmup "$WARM" --tls --path /)
  r=$(load "${common[@]}" --target "127.0.0.1:$UP_HTTPS" --sni x.com --host x.com \
    --cacert "$PKI/ca.crt")
  record 2 "upstream directly (nginx, TLS)" info "$(hwm_kib "$UPSTREAM_PID")" "$r"
  start_mitmdump
  r=$(load "${common[@]}" --target "127.0.0.1:$MITM" --connect x.com:443 \
    --cacert "$WORK/mitmproxy/mitmproxy-ca-cert.pem")
  record 2 "mitmdump (CONNECT, intercepting)" ref "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_nginx_proxy
  r=$(load "${common[@]}" --target "127.0.0.1:$NGX_TLS" --sni x.com --host x.com \
    --cacert "$PKI/ca.crt")
  record 2 "nginx terminating TLS (no CONNECT)" info "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  r=$(load "${common[@]}" --target "127.0.0.1:$GW_PROXY" --connect x.com:443 --cacert "$GWCA")
  record 2 "permeable (CONNECT, intercepting)" candidate "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  stop_upstream
fi

# --- 3. inspected posts ---------------------------------------------------------------------
if want 3; then
  say "scenario 3: inspected 2 KiB CreateTweet posts through interception"
  python3 "$SUITE/posts.py" "$WORK"
  EMPTY=$WORK/rules-empty
  mkdir -p "$EMPTY/detectors"
  cp -r "$ROOT/rules/sites" "$EMPTY/sites"
  echo "rules: []" >"$EMPTY/policy.yaml"
  "$PERMEABLE" check "$EMPTY" >/dev/null
  post=(--method POST --path /i/api/graphql/abc123/CreateTweet --content-type application/json
    --body "$WORK/post.json")
  via_gw=(--target "127.0.0.1:$GW_PROXY" --connect x.com:443 --tls --cacert "$GWCA")
  start_upstream
  start_permeable "$EMPTY"
  r=$(load "${post[@]}" "${via_gw[@]}" -c "$CONNS" -d "$DUR" --warmup "$WARM")
  record 3 "permeable, empty rule set (same catalogue)" ref "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  # The redaction body really is redacted, the clean one allowed.
  action=$(curl -s -o /dev/null -D - --cacert "$GWCA" -x "http://127.0.0.1:$GW_PROXY" \
    -H 'content-type: application/json' --data-binary @"$WORK/post-redact.json" \
    https://x.com/i/api/graphql/abc123/CreateTweet | tr -d '\r' \
    | awk -F': ' 'tolower($1)=="x-permeable-action" {print $2}')
  [ "$action" = "redact" ] || say "warning: the redaction post was not redacted ($action)"
  r=$(load "${post[@]}" "${via_gw[@]}" -c "$CONNS" -d "$DUR" --warmup "$WARM")
  record 3 "permeable, default rule pack" candidate "$(hwm_kib "$CAND_PID")" "$r"
  r=$(load "${post[@]}" "${via_gw[@]}" -c "$CONNS" -d "$DUR" --warmup "$WARM" \
    --alt-body "$WORK/post-redact.json" --alt-every 10)
  record 3 "permeable, default pack, 10% redacted" candidate "$(hwm_kib "$CAND_PID")" "$r"
  # Latency the gateway adds, at a fixed rate well below saturation: the same posts sent
  # straight to the upstream, then through the gateway.
  r=$(load "${post[@]}" "${via_gw[@]}" -c 8 -d "$DUR" --warmup "$WARM" --rate "$RATE")
  record 3 "permeable, default pack, ${RATE} req/s" paced "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  r=$(load "${post[@]}" --target "127.0.0.1:$UP_HTTPS" --tls --sni x.com --host x.com \
    --cacert "$PKI/ca.crt" -c 8 -d "$DUR" --warmup "$WARM" --rate "$RATE")
  record 3 "upstream directly (TLS), ${RATE} req/s" paced-ref "$(hwm_kib "$UPSTREAM_PID")" "$r"
  stop_upstream
fi

# --- 4. large uploads -------------------------------------------------------------------
# Twice: with the upload sink on the servers' CPU (as the other scenarios: the gateway and
# the site share CPU 0), then with the sink on the client's CPU (the gateway alone on
# CPU 0, as on a gateway host of its own: does it keep up with client and site?).
if want 4; then
  say "scenario 4: ${UPLOAD_MIB} MiB uploads (2 connections, 16 uploads, median of 3 runs; memory after 1 MiB and after ${UPLOAD_MIB} MiB)"
  upload() { # NAME ROLE PID ARGS...
    local name=$1 role=$2 pid=$3
    shift 3
    load "$@" -c 2 -n 16 --upload-mib 1 >/dev/null
    local small
    small=$(hwm_kib "$pid")
    # Three runs, the median kept: one stall of a short run would swing a ratio.
    local runs=()
    for _ in 1 2 3; do
      runs+=("$(load "$@" -c 2 -n 16 --upload-mib "$UPLOAD_MIB")")
    done
    r=$(printf '%s\n' "${runs[@]}" | python3 -c 'import json,sys; rs=sorted((json.loads(l) for l in sys.stdin if l.strip()), key=lambda r: r["mib_per_s"]); print(json.dumps(rs[len(rs)//2]))')
    record 4 "$name" "$role" "$(hwm_kib "$pid")" "$r" "\"mem_small_kib\":$small"
  }
  up=(--method POST --path /i/media/upload.json --content-type application/octet-stream)
  for placement in shared split; do
    if [ "$placement" = shared ]; then
      start_sink "${SRV[@]}"
      where="" suffix=""
    else
      start_sink "${LOAD[@]}"
      where=" [sink on the client's CPU]" suffix=2
    fi
    upload "upstream directly (TLS)$where" "ref$suffix" "$SINK_PID" "${up[@]}" \
      --target "127.0.0.1:$SINK" --tls --sni files.example.net --cacert "$PKI/ca.crt" \
      --host files.example.net
    start_nginx_upload
    upload "nginx stream, L4 pass-through (no CONNECT)$where" "l4$suffix" "$CAND_PID" \
      "${up[@]}" --target "127.0.0.1:$NGX_L4" --tls --sni files.example.net \
      --cacert "$PKI/ca.crt" --host files.example.net
    upload "nginx terminating TLS, streaming to the site (no CONNECT)$where" "tls$suffix" \
      "$CAND_PID" "${up[@]}" --target "127.0.0.1:$NGX_UP" --tls --sni files.example.net \
      --cacert "$PKI/ca.crt" --host files.example.net
    stop "$CAND_PID"
    start_permeable "$ROOT/rules"
    upload "permeable, blind tunnel$where" "candidate$suffix" "$CAND_PID" "${up[@]}" \
      --target "127.0.0.1:$GW_PROXY" --connect files.example.net:443 --tls --cacert "$PKI/ca.crt"
    stop "$CAND_PID"
    start_permeable "$ROOT/rules"
    upload "permeable, intercepted, not inspected$where" "candidate$suffix" "$CAND_PID" \
      "${up[@]}" --target "127.0.0.1:$GW_PROXY" --connect upload.x.com:443 --tls --cacert "$GWCA"
    stop "$CAND_PID"
    stop "$SINK_PID"
  done
fi

# --- 5. rule-set scale -----------------------------------------------------------------
if want 5; then
  say "scenario 5: decision time per post, default pack vs + 10,000 codenames + 200 regexes"
  (cd "$ROOT" && "${SRV[@]}" cargo bench --locked --bench scale -- --noplot >"$WORK/scale.log" 2>&1) \
    || { tail -20 "$WORK/scale.log" >&2; exit 1; }
  for name in default_pack default_plus_10k_codenames_200_regexes; do
    est=$TARGET_DIR/criterion/scale/$name/new/estimates.json
    role=candidate
    [ "$name" = default_pack ] && role=ref
    record 5 "$name" "$role" 0 "$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(json.dumps({"median_ns": e["median"]["point_estimate"], "mean_ns": e["mean"]["point_estimate"]}))' "$est")"
  done
fi

# --- 6. TLS handshakes ------------------------------------------------------------------
if want 6; then
  say "scenario 6: TLS handshakes per second (full handshakes, no resumption, 8 connections)"
  # The client skips certificate checks here (--no-verify: two ECDSA verifications per
  # handshake would make the one-CPU client the bottleneck); the server's work is unchanged.
  start_upstream
  hs=(--handshake-only --no-verify --tls -c 8 -d "$DUR" --warmup "$WARM")
  start_permeable "$ROOT/rules"
  r=$(load "${hs[@]}" --target "127.0.0.1:$GW_TLS" --sni 'h{i}.x.com' --cacert "$GWCA")
  minted=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk '/^permeable_certificates_minted_total/ {print $2}')
  record 6 "permeable, cold (a new SNI each time: minting)" candidate "$(hwm_kib "$CAND_PID")" "$r" "\"minted\":${minted:-0}"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  r=$(load "${hs[@]}" --target "127.0.0.1:$GW_TLS" --sni x.com --cacert "$GWCA")
  minted=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk '/^permeable_certificates_minted_total/ {print $2}')
  record 6 "permeable, warm (one SNI: cached)" ref "$(hwm_kib "$CAND_PID")" "$r" "\"minted\":${minted:-0}"
  stop "$CAND_PID"
  start_nginx_proxy
  r=$(load "${hs[@]}" --target "127.0.0.1:$NGX_TLS" --sni x.com --cacert "$PKI/ca.crt")
  record 6 "nginx (static ECDSA P-256 certificate)" info "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  stop_upstream
fi

# --- 7. steady traffic alongside many idle connections (issue 8) ----------------------
# Small GETs at a fixed rate through the transparent HTTP listener, first alone, then while
# BENCH_IDLE keep-alive connections (each answered once) sit idle on the same listener.
if want 7; then
  say "scenario 7: ${RATE} req/s of small GETs alongside ${IDLE} idle keep-alive connections"
  start_upstream
  paced=(--path / --host x.com -c 8 -d "$DUR" --warmup "$WARM" --rate "$RATE")
  start_permeable "$ROOT/rules"
  r=$(load "${paced[@]}" --target "127.0.0.1:$GW_HTTP")
  record 7 "permeable, no idle connections" ref "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  r=$(load "${paced[@]}" --target "127.0.0.1:$GW_HTTP" --idle "$IDLE")
  record 7 "permeable, ${IDLE} idle connections" candidate "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_nginx_proxy
  r=$(load "${paced[@]}" --target "127.0.0.1:$NGX_HTTP" --idle "$IDLE")
  record 7 "nginx proxy_pass, ${IDLE} idle connections" info "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  stop_upstream
fi

# --- 8. intercepted HTTPS on the transparent listener, HTTP/1.1 and HTTP/2 -------------
# What an organisation's traffic to a catalogue site is: TLS intercepted by SNI (split-
# horizon DNS or a redirect sends x.com to the gateway), small GETs on keep-alive
# connections, against nginx doing the same job without inspection: terminating TLS for
# x.com and proxying over verified, kept-alive TLS to the same upstream.
if want 8; then
  say "scenario 8: intercepted HTTPS on the transparent TLS listener, HTTP/1.1 and HTTP/2 (h2load, $CONNS connections)"
  start_upstream
  start_nginx_proxy
  r=$(h2load_run "$NGX_TLS" --h1)
  record 8 "nginx terminating TLS, HTTP/1.1" ref "$(hwm_kib "$CAND_PID")" "$r"
  r=$(h2load_run "$NGX_TLS")
  record 8 "nginx terminating TLS, HTTP/2" ref2 "$(hwm_kib "$CAND_PID")" "$r"
  stop "$CAND_PID"
  start_permeable "$ROOT/rules"
  r=$(h2load_run "$GW_TLS" --h1)
  record 8 "permeable (transparent TLS, x.com), HTTP/1.1" candidate "$(hwm_kib "$CAND_PID")" "$r"
  r=$(h2load_run "$GW_TLS")
  record 8 "permeable (transparent TLS, x.com), HTTP/2" candidate2 "$(hwm_kib "$CAND_PID")" "$r"
  intercepted=$(curl -s "http://127.0.0.1:$GW_ADMIN/metrics" | awk '/^permeable_tunnels_total\{.*intercept/ {print $2}')
  [ -n "$intercepted" ] || say "warning: no intercepted connection counted"
  stop "$CAND_PID"
  # The floor under both: a Pingora proxy with no logic of its own (examples/pingora_floor.rs),
  # the same TLS termination, upstream and verification; what any proxy on Pingora pays.
  FLOOR=$TARGET_DIR/release/examples/pingora_floor
  if [ -x "$FLOOR" ]; then
    "${SRV[@]}" "$FLOOR" "127.0.0.1:$FLOOR_TLS" "$PKI/site.crt" "$PKI/site.key" \
      "127.0.0.1:$UP_HTTPS" x.com "$PKI/ca.crt" 2>"$WORK/floor.log" &
    CAND_PID=$!
    PIDS+=("$CAND_PID")
    wait_port "$FLOOR_TLS"
    r=$(h2load_run "$FLOOR_TLS" --h1)
    record 8 "Pingora with no logic (the floor), HTTP/1.1" info "$(hwm_kib "$CAND_PID")" "$r"
    r=$(h2load_run "$FLOOR_TLS")
    record 8 "Pingora with no logic (the floor), HTTP/2" info2 "$(hwm_kib "$CAND_PID")" "$r"
    stop "$CAND_PID"
  fi
  stop_upstream
fi

# --- report ---------------------------------------------------------------------------------
python3 "$SUITE/report.py" "$RESULTS" "$OUT" \
  "$PLACEMENT" "$DUR" "$WARM" "$CONNS" "$UPLOAD_MIB" "$RATE" "$IDLE"
say "raw results and logs: $WORK"
