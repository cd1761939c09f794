#!/usr/bin/env python3
"""Checks on the rendered Kubernetes manifests that a schema cannot express.

    check-manifests.py RENDERED.yaml

- the ServiceMonitor (a CRD, absent from the Kubernetes schemas) is well formed and
  actually selects the admin Service, by an existing port name, with job "permeable"
  (the label the dashboards and alerts select on);
- the Deployment keeps its hardening and probes (non-root, read-only root, no
  capabilities, readiness /readyz and liveness /healthz on the admin port), and gives a
  stopping pod its time (terminationGracePeriodSeconds above the preStop pause plus the
  gateway's grace_period_seconds);
- the rules ConfigMap is updated in place (fixed name, mounted without subPath, every
  key mounted back at a path) and fits in a ConfigMap and in the annotation that
  `kubectl apply -k` (client-side apply) keeps; the config ConfigMap is
  hash-named so that a config change rolls the pods.
Prints nothing and exits 0 when all hold; one line per problem otherwise.
"""
import json
import sys

import yaml

CONFIGMAP_LIMIT = 1024 * 1024           # etcd object size limit (bytes)
CLIENT_APPLY_LIMIT = 256 * 1024         # last-applied annotation limit (client-side apply)

problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)

    def one(kind, name=None):
        items = [d for d in by_kind.get(kind, []) if name is None or d["metadata"]["name"] == name]
        need(len(items) == 1, f"expected one {kind} {name or ''}, found {len(items)}")
        return items[0] if items else None

    services = by_kind.get("Service", [])

    # ServiceMonitor.
    sm = one("ServiceMonitor")
    if sm:
        need(sm.get("apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor: apiVersion must be monitoring.coreos.com/v1")
        spec = sm.get("spec") or {}
        known = {"selector", "endpoints", "jobLabel", "namespaceSelector", "targetLabels", "podTargetLabels", "sampleLimit"}
        need(set(spec) <= known, f"ServiceMonitor: unexpected spec keys {sorted(set(spec) - known)}")
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        need(sel, "ServiceMonitor: spec.selector.matchLabels is empty")
        matched = [s for s in services if sel and all(s["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        need(len(matched) == 1, f"ServiceMonitor: selector {sel} matches {len(matched)} Services (want the admin one)")
        eps = spec.get("endpoints") or []
        need(eps, "ServiceMonitor: no endpoints")
        for ep in eps:
            known_ep = {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings", "metricRelabelings", "honorLabels"}
            need(set(ep) <= known_ep, f"ServiceMonitor endpoint: unexpected keys {sorted(set(ep) - known_ep)}")
            need(isinstance(ep.get("port"), str), "ServiceMonitor endpoint: port must be a Service port name")
            for s in matched:
                names = [p.get("name") for p in s["spec"].get("ports", [])]
                need(ep.get("port") in names, f"ServiceMonitor endpoint port {ep.get('port')!r} not in Service {s['metadata']['name']} ports {names}")
        job_label = spec.get("jobLabel")
        for s in matched:
            job = s["metadata"].get("labels", {}).get(job_label) if job_label else s["metadata"]["name"]
            need(job == "permeable", f"ServiceMonitor: scrape job would be {job!r}; dashboards and alerts need 'permeable'")

    # Deployment.
    dep = one("Deployment", "permeable")
    if dep:
        pod = dep["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        need(psc.get("runAsNonRoot") is True, "Deployment: pod runAsNonRoot must be true")
        need("replicas" not in dep["spec"], "Deployment: spec.replicas must be left to the HorizontalPodAutoscaler")
        (c,) = pod["containers"]
        sc = c.get("securityContext", {})
        need(sc.get("readOnlyRootFilesystem") is True, "Deployment: readOnlyRootFilesystem must be true")
        need(sc.get("allowPrivilegeEscalation") is False, "Deployment: allowPrivilegeEscalation must be false")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], "Deployment: capabilities must drop ALL")
        need(not sc.get("capabilities", {}).get("add"), "Deployment: no capability may be added")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        need(ports.get("admin") == 9180 and ports.get("proxy") == 8080, f"Deployment: ports {ports}")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            g = (c.get(probe) or {}).get("httpGet") or {}
            need(g.get("path") == path and g.get("port") == "admin", f"Deployment: {probe} must GET {path} on the admin port")
        need(c.get("resources", {}).get("requests") and c.get("resources", {}).get("limits"), "Deployment: resources requests and limits")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        rules_vol = vols.get("rules", {}).get("configMap", {})
        need(rules_vol.get("name") == "permeable-rules", "Deployment: rules volume must mount ConfigMap permeable-rules (no hash suffix)")
        need("subPath" not in mounts.get("rules", {}), "Deployment: the rules mount must not use subPath (no updates)")
        need("emptyDir" in vols.get("state", {}), "Deployment: state must be an emptyDir")
        need(vols.get("ca-secret", {}).get("secret", {}).get("secretName") == "permeable-ca", "Deployment: CA from Secret permeable-ca")
        need(vols.get("ca", {}).get("emptyDir", {}).get("medium") == "Memory", "Deployment: the CA key copy must stay in memory")
        need("ca-secret" not in mounts, "Deployment: the gateway must read the 0600 copy, not the Secret volume")
        need(vols.get("keys", {}).get("secret", {}).get("secretName") == "permeable-keys", "Deployment: shared keys from Secret permeable-keys")
        need("keys" in mounts, "Deployment: the gateway mounts the shared keys")
        inits = pod.get("initContainers") or []
        need(any(m["name"] == "ca-secret" for i in inits for m in i.get("volumeMounts", [])), "Deployment: an init container copies the CA")
        for i in inits:
            isc = i.get("securityContext", {})
            need(isc.get("readOnlyRootFilesystem") is True and isc.get("capabilities", {}).get("drop") == ["ALL"]
                 and isc.get("allowPrivilegeEscalation") is False, f"init container {i['name']}: same hardening as the gateway")
        cfg = vols.get("config", {}).get("configMap", {}).get("name", "")
        need(cfg.startswith("permeable-config-"), f"Deployment: config ConfigMap should be hash-named, got {cfg!r}")

        cms = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
        need(cfg in cms, f"Deployment: config ConfigMap {cfg!r} is not rendered")

        # A stopping pod keeps serving through the preStop pause, then the gateway takes
        # up to grace_period_seconds: the kubelet must not kill it before.
        pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command") or []
        pause = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] and len(pre_stop) == 2 and pre_stop[1].isdigit() else 0
        gw_cfg = yaml.safe_load(((cms.get(cfg) or {}).get("data") or {}).get("permeable.yaml", "") or "{}") or {}
        grace = int(gw_cfg.get("grace_period_seconds", 30))
        termination = pod.get("terminationGracePeriodSeconds", 30)
        need(termination > pause + grace,
             f"Deployment: terminationGracePeriodSeconds {termination} must exceed the preStop pause ({pause} s)"
             f" + grace_period_seconds ({grace} s)")
        rules_cm = cms.get("permeable-rules")
        need(rules_cm is not None, "ConfigMap permeable-rules is not rendered")
        if rules_cm:
            keys = set((rules_cm.get("data") or {})) | set((rules_cm.get("binaryData") or {}))
            items = rules_vol.get("items") or []
            if keys:
                need({i["key"] for i in items} == keys, "rules volume items do not cover exactly the ConfigMap keys")
            size = len(yaml.safe_dump(rules_cm).encode())
            need(size < CONFIGMAP_LIMIT - 16 * 1024, f"ConfigMap permeable-rules is {size} bytes; the limit is {CONFIGMAP_LIMIT}")
            # `kubectl apply -k` (client-side) keeps the whole object, as JSON, in the
            # last-applied annotation, which may hold at most 256 KiB.
            applied = len(json.dumps(rules_cm, separators=(",", ":")).encode())
            need(applied < CLIENT_APPLY_LIMIT - 16 * 1024,
                 f"ConfigMap permeable-rules is {applied} bytes as JSON: `kubectl apply -k` keeps it in an annotation of at most {CLIENT_APPLY_LIMIT}; "
                 "split the rules or document `kubectl apply --server-side -k`")

    hpa = one("HorizontalPodAutoscaler", "permeable")
    if hpa:
        need(hpa["apiVersion"] == "autoscaling/v2", "HPA must be autoscaling/v2")
        need(hpa["spec"]["scaleTargetRef"]["name"] == "permeable", "HPA must target Deployment permeable")
    one("PodDisruptionBudget", "permeable")
    one("NetworkPolicy", "permeable")

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
