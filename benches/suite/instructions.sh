#!/usr/bin/env bash
# Instructions the gateway executes per request, under callgrind: stable where timings on a
# shared machine are not, so that a change to the proxy path can be judged by itself.
#
#   bash benches/suite/instructions.sh            # scenario 1's request: small GETs to x.com
#   N=20000 bash benches/suite/instructions.sh    # more requests counted
#   bash benches/suite/instructions.sh https      # intercepted HTTPS, HTTP/1.1 keep-alive
#   bash benches/suite/instructions.sh h2         # intercepted HTTPS, HTTP/2
#   bash benches/suite/instructions.sh post       # scenario 3's inspected 2 KiB posts, HTTP/1.1
#   bash benches/suite/instructions.sh https-floor   # `https` through a Pingora proxy with no
#   bash benches/suite/instructions.sh h2-floor      # logic (examples/pingora_floor.rs): the
#                                                 # floor any proxy on Pingora pays
#   RULES=empty bash benches/suite/instructions.sh post   # the same with no rules (what
#                                                 # inspection costs is the difference)
#
# The gateway (release build, default rule pack, one worker thread, transparent HTTP
# listener) runs under `valgrind --tool=callgrind` against the load generator's own
# upstream; 2,000 requests warm it up, then the counters are zeroed, N requests (10,000)
# are sent and the counters dumped. Prints the instructions per request and the functions
# that cost the most (exclusive); the full profile is kept for `callgrind_annotate`.
#
# `https` and `h2` (scenario 8's request): the transparent TLS listener intercepts x.com
# (by SNI) and the upstream is the load generator's TLS server, its certificate verified
# against a throwaway CA; h2load (apt `nghttp2-client`) sends the small GETs over C (4)
# keep-alive connections, one request at a time on each (HTTP/1.1 with `--h1`, or HTTP/2).
# The counted run opens its own C connections: their handshakes are in the figure (the
# gateway's certificate for x.com is minted during the warm-up).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SUITE=$ROOT/benches/suite
N=${N:-10000}
C=${C:-4}
MODE=${1:-http}
case $MODE in http | https | h2 | post | https-floor | h2-floor) ;; *) echo "usage: $0 [http|https|h2|post|https-floor|h2-floor]" >&2 && exit 2 ;; esac
FLOOR=""
if [[ $MODE == *-floor ]]; then
  FLOOR=1
  MODE=${MODE%-floor}
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v curl >/dev/null || missing+=(curl)
if [ "$MODE" != http ]; then
  command -v h2load >/dev/null || missing+=(nghttp2-client)
  command -v openssl >/dev/null || missing+=(openssl)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
(cd "$ROOT" && cargo build --release --locked -q)
[ -z "$FLOOR" ] || (cd "$ROOT" && cargo build --release --locked -q --example pingora_floor)
cargo build --release --locked -q --manifest-path "$SUITE/loadgen/Cargo.toml" \
  --target-dir "$TARGET_DIR/suite"
PERMEABLE=$TARGET_DIR/release/permeable
LOADGEN=$TARGET_DIR/suite/release/permeable-loadgen

WORK=$(mktemp -d /tmp/permeable-instructions.XXXXXX)
python3 "$SUITE/posts.py" "$WORK"
# shellcheck source=benches/suite/processes.sh
source "$SUITE/processes.sh"
UP=$(port)
HTTP=$(port)
TLS=$(port)
PROXY=$(port)
ADMIN=$(port)

if [ "$MODE" = http ]; then
  "$LOADGEN" serve --listen "127.0.0.1:$UP" &
  PIDS+=($!)
  tls_listen="" tls_upstream=""
else
  # A throwaway CA and its certificate for x.com (the upstream's), and the gateway's CA.
  (
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -out ca.crt -days 2 -subj "/CN=permeable instructions CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout site.key \
      -out site.csr -subj /CN=x.com 2>/dev/null
    printf 'subjectAltName=DNS:x.com\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >leaf.ext
    openssl x509 -req -in site.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile leaf.ext -out site.crt 2>/dev/null
  )
  "$PERMEABLE" ca init --out "$WORK/gwca" >/dev/null
  "$LOADGEN" serve --listen "127.0.0.1:$UP" --cert "$WORK/site.crt" --key "$WORK/site.key" &
  PIDS+=($!)
  tls_listen="  https_listen: [\"127.0.0.1:$TLS\"]
ca: { cert: \"$WORK/gwca/ca.crt\", key: \"$WORK/gwca/ca.key\" }"
  tls_upstream="  ca_file: \"$WORK/ca.crt\""
fi
RULES_DIR=$ROOT/rules
if [ "${RULES:-}" = empty ]; then
  # The same catalogue, no rules: nothing is inspected.
  RULES_DIR=$WORK/rules-empty
  mkdir -p "$RULES_DIR/detectors"
  cp -r "$ROOT/rules/sites" "$RULES_DIR/sites"
  echo "rules: []" >"$RULES_DIR/policy.yaml"
fi
cat >"$WORK/permeable.yaml" <<EOF
proxy:
  listen: ["127.0.0.1:$PROXY"]
transparent:
  http_listen: ["127.0.0.1:$HTTP"]
$tls_listen
admin:
  listen: "127.0.0.1:$ADMIN"
rules: "$RULES_DIR"
state_dir: "$WORK/state"
audit: { output: "off" }
threads: 1
upstream:
$tls_upstream
  resolve:
    "x.com:80": "127.0.0.1:$UP"
    "x.com:443": "127.0.0.1:$UP"
EOF
if [ -n "$FLOOR" ]; then
  # The same listener and upstream, no permeable: the upstream's own certificate serves
  # (h2load does not verify it).
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/callgrind.out" \
    "$TARGET_DIR/release/examples/pingora_floor" "127.0.0.1:$TLS" "$WORK/site.crt" \
    "$WORK/site.key" "127.0.0.1:$UP" x.com "$WORK/ca.crt" 2>"$WORK/valgrind.log" >/dev/null &
  GW=$!
  PIDS+=("$GW")
  for _ in $(seq 1 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$TLS") 2>/dev/null && break
    sleep 0.2
  done
else
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$WORK/callgrind.out" \
    "$PERMEABLE" run --config "$WORK/permeable.yaml" 2>"$WORK/valgrind.log" >/dev/null &
  GW=$!
  PIDS+=("$GW")
  wait_ready "$ADMIN" 600 0.2 || true
fi
run() {
  if [ "$MODE" = http ]; then
    "$LOADGEN" run --target "127.0.0.1:$HTTP" --host x.com --path / -c 8 -n "$1" -d 3600
    return
  fi
  local proto=() url=https://x.com/
  [ "$MODE" = h2 ] || proto=(--h1)
  if [ "$MODE" = post ]; then
    proto+=(-d "$WORK/post.json" -H "content-type: application/json")
    url=https://x.com/i/api/graphql/abc123/CreateTweet
  fi
  # From h2load's "requests: N total, N started, N done, N succeeded, N failed, ..." line.
  h2load "${proto[@]}" -n "$1" -c "$C" -m 1 --connect-to="127.0.0.1:$TLS" "$url" |
    awk '/^requests:/ {gsub(",", ""); printf "{\"ok\":%d,\"total\":%d}\n", $8, $2}'
}
run 2000 >/dev/null
callgrind_control -z "$GW" >/dev/null
result=$(run "$N")
callgrind_control -d "$GW" >/dev/null
sleep 1
# One profile per thread: the worker thread's is the one that served the requests (the
# others, such as Pingora's timer thread, cost instructions in proportion to the time the
# run takes, which valgrind stretches).
ok=$(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ok"])')
echo "requests: $result"
OUT=""
best=0
for f in "$WORK"/callgrind.out.1-*; do # the dump taken after the counted requests
  t=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
  [ -n "$t" ] || continue
  echo "  thread profile $(basename "$f"): $t instructions"
  if [ "$t" -gt "$best" ]; then best=$t; OUT=$f; fi
done
cp "$OUT" /tmp/permeable-callgrind.out
echo "instructions per request (worker thread): $((best / ok)) ($best for $ok requests)"
echo "most expensive functions (exclusive):"
callgrind_annotate --auto=no --threshold=100 "$OUT" 2>/dev/null | grep -E '^ *[0-9,]+ ' |
  sed -n '2,$p' | grep -v -E 'clone.S|pthread_create|thread_start|call_once|block_on|backtrace|enter_runtime|Scoped' |
  head -25 | cut -c1-160 || true
echo "profile: /tmp/permeable-callgrind.out (callgrind_annotate --inclusive=yes /tmp/permeable-callgrind.out)"
