#!/usr/bin/env bash
# Exercise permeable-supervise's upgrade path against a stand-in gateway that speaks
# Pingora's hand-over (listening socket passed with SCM_RIGHTS over a unix socket on
# SIGQUIT to a process started with --upgrade), while a client keeps connecting.
# Passes when every connection is answered and both processes served. Loopback only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
sup=""
cleanup() { [[ -n "$sup" ]] && kill "$sup" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/gateway.py" <<'PY'
import os, signal, socket, sys, threading, time
sock_path, port_file = os.environ["UPGRADE_SOCK"], os.environ["PORT_FILE"]
upgrade = "--upgrade" in sys.argv
if upgrade:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sock_path): os.unlink(sock_path)
    srv.bind(sock_path); srv.listen(1); srv.settimeout(30)
    conn, _ = srv.accept()
    _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    lsn = socket.socket(fileno=fds[0]); conn.close(); srv.close()
else:
    lsn = socket.create_server(("127.0.0.1", 0))
    with open(port_file, "w") as f: f.write(str(lsn.getsockname()[1]))
accepting = True
def quit_(*_):
    global accepting
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(50):
        try: c.connect(sock_path); break
        except OSError: time.sleep(0.1)
    socket.send_fds(c, [b"fds"], [lsn.fileno()]); c.close()
    accepting = False
    threading.Timer(0.5, lambda: os._exit(0)).start()   # drain, then exit
signal.signal(signal.SIGQUIT, quit_)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
signal.signal(signal.SIGHUP, lambda *_: print("reloaded", os.getpid(), flush=True))
lsn.settimeout(0.05)
while True:
    if not accepting: time.sleep(0.05); continue
    try: c, _ = lsn.accept()
    except (socket.timeout, OSError): continue
    c.sendall(b"%d\n" % os.getpid()); c.close()
PY

export UPGRADE_SOCK="$work/upgrade.sock" PORT_FILE="$work/port" PERMEABLE_UPGRADE_SETTLE=0.5
"$here/permeable-supervise" python3 "$work/gateway.py" run >"$work/out" 2>"$work/log" &
sup=$!
for _ in $(seq 50); do [[ -s "$work/port" ]] && break; sleep 0.1; done
port="$(cat "$work/port")"

python3 - "$port" "$sup" >"$work/result" <<'PY'
import os, signal, socket, sys, time
port, sup = int(sys.argv[1]), int(sys.argv[2])
pids, fails, n = [], 0, 0
t0 = time.time(); sent = False; second = None
# Until the new process has served for a second (or 30 s: a loaded machine is slow).
while time.time() - t0 < 30 and (second is None or time.time() - second < 1):
    if not sent and time.time() - t0 > 1:
        os.kill(sup, signal.SIGUSR2); sent = True
    n += 1
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            p = s.recv(64).strip().decode()
            if p not in pids:
                pids.append(p)
                if len(pids) == 2: second = time.time()
    except OSError:
        fails += 1
    time.sleep(0.005)
print(n, fails, len(pids), pids[-1] if pids else '-')
PY
kill -HUP "$sup"
for _ in $(seq 50); do grep -q '^reloaded' "$work/out" && break; sleep 0.1; done
kill -TERM "$sup"; rc=0; wait "$sup" || rc=$?; sup=""
read -r n fails pids last <"$work/result"
reloaded="$(awk '/^reloaded/ {print $2}' "$work/out")"
if ((fails == 0 && pids == 2 && rc == 0)) && [[ "$reloaded" == "$last" ]]; then
  echo "upgrade hand-over: $n connections, 0 refused, served by 2 processes in turn; SIGHUP reached the new one; clean stop"
else
  echo "upgrade hand-over FAILED: $n connections, $fails refused, $pids processes, exit $rc, SIGHUP to [${reloaded}] (want $last)" >&2
  cat "$work/log" >&2
  exit 1
fi
