#!/usr/bin/env bash
# What keeping the system resolver's answers saves: small GETs (wrk, 32 connections, 8 s)
# through the transparent HTTP listener to `localhost:PORT`, a name the gateway resolves
# with getaddrinfo (here from /etc/hosts, the cheapest lookup there is; a DNS round trip
# costs more), with `upstream.dns_cache_seconds: 0` and then 30. nginx answers as the site.
# Servers on CPU 0, wrk on CPU 1, one gateway thread, as in run.sh.
#
#   bash benches/suite/dns.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(cd "$ROOT" && cargo build --release --locked -q)
WORK=$(mktemp -d /tmp/permeable-dns.XXXXXX)
# shellcheck source=benches/suite/processes.sh
source "$ROOT/benches/suite/processes.sh"
UP=$(port) GW=$(port) ADMIN=$(port)
mkdir -p "$WORK/up/tmp"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/up/tmp;
  proxy_temp_path $WORK/up/tmp;
  fastcgi_temp_path $WORK/up/tmp;
  uwsgi_temp_path $WORK/up/tmp;
  scgi_temp_path $WORK/up/tmp;
  server { listen 127.0.0.1:$UP; location / { return 200 "a small answer\n"; } }
}
EOF
taskset -c 0 nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" &
PIDS+=($!)
for ttl in 0 30; do
  cat >"$WORK/permeable-$ttl.yaml" <<EOF
transparent: { http_listen: ["127.0.0.1:$GW"] }
admin: { listen: "127.0.0.1:$ADMIN" }
rules: "$ROOT/rules"
state_dir: "$WORK/state"
audit: { output: "off" }
threads: 1
upstream: { allow_private: ["127.0.0.0/8", "::1/128"], dns_cache_seconds: $ttl }
EOF
  taskset -c 0 "$TARGET_DIR/release/permeable" run --config "$WORK/permeable-$ttl.yaml" \
    2>"$WORK/permeable-$ttl.log" &
  gw=$!
  PIDS+=("$gw")
  wait_ready "$ADMIN" 200 0.05 || true
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: localhost:$UP" "http://127.0.0.1:$GW/")
  [ "$status" = 200 ] || { echo "the gateway answered $status" >&2; exit 1; }
  echo "upstream.dns_cache_seconds: $ttl"
  taskset -c 1 wrk -t1 -c32 -d8s -H "Host: localhost:$UP" --latency "http://127.0.0.1:$GW/" |
    grep -E "Requests/sec|50%|99%"
  kill "$gw"
  wait "$gw" 2>/dev/null || true
done
echo "logs: $WORK"
