#!/usr/bin/env python3
"""Checks the deployment files that cannot run here (no Docker engine, no
Kubernetes): they parse, and say what they must (probes, grace periods above
the drain timeout, peers, Secrets, labels). Prints SKIP for what this machine
cannot check.  static_files_check.py SOURCE_DIR"""
import os
import re
import sys

try:
    import yaml
except ImportError:
    print("SKIP: python3 yaml is not installed: compose and Kubernetes files not checked")
    sys.exit(0)

src = sys.argv[1]
DRAIN = 30  # CHAT_DRAIN_TIMEOUT's default; chatd allows itself 5 s more
failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def load_all(path):
    with open(os.path.join(src, path)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# ---- compose
compose = load_all("deploy/docker/compose.yaml")[0]
svc = compose["services"]
nodes = sorted(n for n in svc if re.fullmatch(r"chatd-\d", n))
check(nodes == ["chatd-1", "chatd-2", "chatd-3"], "compose: three chatd nodes")
for want in ("postgres", "mock-llm", "nginx", "certs", "migrate"):
    check(want in svc, f"compose: service {want}")
for n in nodes:
    env = svc[n]["environment"]
    others = sorted(f"{o}:7946" for o in nodes if o != n)
    check(sorted(env["CHAT_CLUSTER_PEERS"].split(",")) == others, f"compose: {n} peers are the others")
    check(env["CHAT_NODE_ID"] == n, f"compose: {n} CHAT_NODE_ID")
    check(env["CHAT_CLUSTER_TLS_CERT"] == f"/certs/{n}.pem"
          and env["CHAT_CLUSTER_TLS_KEY"] == f"/certs/{n}-key.pem"
          and env["CHAT_CLUSTER_TLS_CA"] == "/certs/ca.pem", f"compose: {n} TLS files")
    check(n in svc["certs"]["entrypoint"][-1], f"compose: a certificate is made for {n}")
    check("certs:/certs:ro" in svc[n]["volumes"], f"compose: {n} mounts the certificates read-only")
    grace = int(str(svc[n]["stop_grace_period"]).rstrip("s"))
    check(grace > DRAIN + 5, f"compose: {n} stop_grace_period {grace}s above the drain timeout")
    check(svc[n]["depends_on"]["migrate"]["condition"] == "service_completed_successfully",
          f"compose: {n} starts after migrate")
ups = svc["nginx"]["environment"]["CHAT_UPSTREAM_SERVERS"]
check(all(f"server {n}:8080" in ups for n in nodes), "compose: nginx balances the three nodes")

# ---- Kubernetes
docs = {}
for f in ("services.yaml", "statefulset.yaml", "pdb.yaml", "secrets.example.yaml"):
    for d in load_all(f"deploy/k8s/{f}"):
        docs[(d["kind"], d["metadata"]["name"])] = d
kust = load_all("deploy/k8s/kustomization.yaml")[0]
check(set(kust["resources"]) == {"services.yaml", "statefulset.yaml", "pdb.yaml"},
      "k8s: kustomization lists the manifests (not the example Secrets)")
sts = docs[("StatefulSet", "chatd")]
headless = docs[("Service", sts["spec"]["serviceName"])]
check(headless["spec"].get("clusterIP") == "None", "k8s: serviceName is a headless Service")
check(headless["spec"].get("publishNotReadyAddresses") is True, "k8s: peers resolvable before ready")
pod = sts["spec"]["template"]
labels = pod["metadata"]["labels"]
check(all(labels.get(k) == v for k, v in sts["spec"]["selector"]["matchLabels"].items()),
      "k8s: StatefulSet selector matches its pods")
client = docs[("Service", "chatd")]
check(client["spec"].get("clusterIP") != "None" and client["spec"]["selector"].items() <= labels.items(),
      "k8s: a client Service selects the pods")
pdb = docs[("PodDisruptionBudget", "chatd")]
check(pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), "k8s: the PDB selects the pods")
check(pdb["spec"].get("maxUnavailable") == 1, "k8s: PDB maxUnavailable 1")
spec = pod["spec"]
c = spec["containers"][0]
check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "k8s: readinessProbe on /readyz")
check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", "k8s: livenessProbe on /healthz")
env = {e["name"]: e for e in c["env"]}
drain = int(env["CHAT_DRAIN_TIMEOUT"]["value"])
pre = 5 if c.get("lifecycle", {}).get("preStop") else 0
check(spec["terminationGracePeriodSeconds"] > pre + drain + 5,
      f"k8s: terminationGracePeriodSeconds {spec['terminationGracePeriodSeconds']} above preStop + drain + 5")
for var, key in (("CHAT_JWT_SECRET", "jwt-secret"), ("DATABASE_URL", "database-url")):
    ref = env[var]["valueFrom"]["secretKeyRef"]
    check(ref["name"] == "chatd-secrets" and ref["key"] == key
          and key in docs[("Secret", "chatd-secrets")]["stringData"], f"k8s: {var} from Secret chatd-secrets/{key}")
tls_vol = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "chatd-cluster-tls"]
check(len(tls_vol) == 1, "k8s: cluster TLS from Secret chatd-cluster-tls")
mount = [m for m in c["volumeMounts"] if m["name"] == tls_vol[0]["name"]][0]["mountPath"]
for var, f in (("CHAT_CLUSTER_TLS_CERT", "tls.crt"), ("CHAT_CLUSTER_TLS_KEY", "tls.key"), ("CHAT_CLUSTER_TLS_CA", "ca.crt")):
    check(env[var]["value"] == f"{mount}/{f}", f"k8s: {var} is the mounted {f}")
script = c["command"][-1]
check("chatd-peers.$POD_NAMESPACE.svc.cluster.local:7946" in script and "CHAT_CLUSTER_PEERS" in script
      and "exec chatd" in script, "k8s: CHAT_CLUSTER_PEERS from the pods' stable DNS names")
check(env["CHAT_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "k8s: CHAT_NODE_ID is the pod name")
check(spec["securityContext"].get("runAsNonRoot") is True, "k8s: runs as non-root")

# ---- Dockerfile (no linter here: text checks)
with open(os.path.join(src, "deploy/docker/Dockerfile")) as f:
    df = f.read()
check(re.search(r"^FROM debian:12 AS build$", df, re.M) is not None, "Dockerfile: build stage on debian:12")
check("deploy/install-deps.sh" in df and "deploy/build.sh" in df, "Dockerfile: builds with install-deps.sh and build.sh")
last = df[df.rindex("\nFROM "):]
check(re.search(r"^USER 10001", last, re.M) is not None, "Dockerfile: runtime stage runs as a non-root user")
check("HEALTHCHECK" in last and "/healthz" in last, "Dockerfile: HEALTHCHECK on /healthz")
check("-dev" not in last and "g++" not in last, "Dockerfile: no compilers or -dev packages at runtime")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("static deployment files: ok")
