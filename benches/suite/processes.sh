# Sourced by the suite's scripts: the servers a script starts (PIDS) are stopped when it
# exits, and `port` names a free loopback port.
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until the gateway whose admin port is $1 is ready: $2 tries, $3 seconds apart.
wait_ready() {
  local _
  for _ in $(seq 1 "$2"); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep "$3"
  done
  return 1
}
