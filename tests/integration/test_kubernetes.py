"""The Kubernetes manifests of contrib/kubernetes/ are valid objects of the Kubernetes API,
written as a cluster admin expects them.

No cluster is available here.  The manifests are checked against the Kubernetes OpenAPI
schemas that the npm kubernetes-models packages compile (the API's types, required fields
and formats such as quantities; as the API server without strict field validation, they
let unknown fields pass).  npm installs them once into the build tree (TETHER_BUILD/
k8s-validate), under a lock; a host without node and npm, or without the network for the
first install, skips."""
import fcntl
import glob
import json
import os
import shutil
import subprocess

from harness import SRC, Skip, case, eq, main

MANIFESTS = sorted(glob.glob(os.path.join(SRC, "contrib", "kubernetes", "*.yaml")))
VALIDATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "k8s_validate.js")
PACKAGES = ["kubernetes-models@4.5.1", "yaml@2.8.1"]
INSTALLER = os.path.join(SRC, "contrib", "kubernetes", "tether-node-install")


def validator_dir():
    if not shutil.which("node") or not shutil.which("npm"):
        raise Skip("node and npm are not installed (Debian packages nodejs, npm)")
    build = os.environ.get("TETHER_BUILD", os.path.join(SRC, "build"))
    d = os.path.join(build, "k8s-validate")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        have = os.path.join(d, "node_modules", ".tether-packages")
        if not os.path.exists(have) or open(have).read() != " ".join(PACKAGES):
            p = subprocess.run(["npm", "install", "--prefix", d, "--no-audit", "--no-fund",
                                "--no-save", *PACKAGES], capture_output=True, text=True,
                               timeout=600)
            if p.returncode != 0:
                last = (p.stderr.strip().splitlines() or ["?"])[-1]
                raise Skip("npm could not install %s: %s" % (" ".join(PACKAGES), last))
            with open(have, "w") as f:
                f.write(" ".join(PACKAGES))
    return d


def validate(d, *files):
    p = subprocess.run(["node", VALIDATOR, *files], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, NODE_PATH=os.path.join(d, "node_modules")))
    if p.stderr:
        raise AssertionError("the validator failed: %s" % p.stderr)
    return p.returncode, p.stdout.splitlines()


def objects(d):
    p = subprocess.run(["node", VALIDATOR, "--dump", *MANIFESTS], capture_output=True,
                       text=True, timeout=120, check=True,
                       env=dict(os.environ, NODE_PATH=os.path.join(d, "node_modules")))
    return [o["object"] for o in json.loads(p.stdout) if o["object"] is not None]


@case
def manifests_validate(ws):
    d = validator_dir()
    rc, lines = validate(d, *MANIFESTS)
    print("\n".join(lines))
    eq(rc, 0, "validator exit status")
    kinds = {o["kind"] for o in objects(d)}
    for want in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                 "ConfigMap", "DaemonSet", "Deployment", "Service", "PodDisruptionBudget"):
        if want not in kinds:
            raise AssertionError("no %s among the manifests (%s)" % (want, sorted(kinds)))


@case
def broken_manifest_fails(ws):
    # The validator can fail: the DaemonSet without its selector, a boolean given as a
    # string and a memory limit that is no quantity are each reported by name.
    d = validator_dir()
    text = open(os.path.join(SRC, "contrib", "kubernetes", "installer.yaml")).read()
    broken = text.replace("  selector:\n    matchLabels:\n      app.kubernetes.io/name: "
                          "tether-installer\n", "", 1)
    broken = broken.replace("serviceAccountName: tether-installer\n",
                            "serviceAccountName: tether-installer\n      hostPID: \"yes\"\n", 1)
    broken = broken.replace("memory: 64Mi", "memory: plenty", 1)
    if broken.count("selector:") != text.count("selector:") - 1 or 'hostPID: "yes"' not in broken \
            or "plenty" not in broken:
        raise AssertionError("the test's edits did not apply to installer.yaml")
    path = ws.write("broken.yaml", broken)
    rc, lines = validate(d, path)
    eq(rc, 1, "validator exit status for a broken manifest")
    said = "\n".join(lines)
    for what in ("spec must have required property selector", "hostPID must be boolean",
                 "limits/memory"):
        if what not in said:
            raise AssertionError("%r not reported:\n%s" % (what, said))
    for line in lines:
        if "DaemonSet" not in line and not line.endswith(": valid"):
            raise AssertionError("an intact object was reported: " + line)


def pod_specs(objs):
    for o in objs:
        if o["kind"] in ("DaemonSet", "Deployment"):
            yield o, o["spec"]["template"]["spec"]


@case
def manifests_as_admins_expect(ws):
    objs = objects(validator_dir())
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for o in objs:
        name = "%s %s" % (o["kind"], o["metadata"]["name"])
        if o["kind"] not in cluster_scoped and not o["metadata"].get("namespace"):
            raise AssertionError("%s has no namespace" % name)
    for o, spec in pod_specs(objs):
        name = "%s %s" % (o["kind"], o["metadata"]["name"])
        for key in ("hostPID", "hostNetwork", "hostIPC"):
            if spec.get(key):
                raise AssertionError("%s sets %s, which no part of tether needs" % (name, key))
        if not spec.get("serviceAccountName"):
            raise AssertionError("%s runs as the default service account" % name)
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                raise AssertionError("%s: container %s lacks requests or a memory limit"
                                     % (name, c["name"]))
            sc = c.get("securityContext", {})
            if sc.get("privileged") or sc.get("allowPrivilegeEscalation") is not False:
                raise AssertionError("%s: container %s may gain privileges" % (name, c["name"]))
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                raise AssertionError("%s: container %s keeps its capabilities" % (name, c["name"]))
        for c in spec["containers"]:
            if "livenessProbe" not in c or "readinessProbe" not in c:
                raise AssertionError("%s: container %s lacks a probe" % (name, c["name"]))


@case
def node_configuration_loads_and_reaches_opa(ws):
    # The ConfigMap's node configuration, with the labels the installer adds, is one that
    # tether accepts, and it names the OPA Service's fixed cluster IP.
    objs = objects(validator_dir())
    cm = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] ==
          "tether-node-config"][0]
    cfg = json.loads(cm["data"]["tether.json"])
    cfg["labels"].update(region="eu-de", zone="eu-de-1", node="n1")
    cfg["audit"]["path"] = ws.audit
    path = ws.write("node.json", json.dumps(cfg))
    p = ws.tether("measure", "--config", path, check_rc=0)
    eq(json.loads(p.stdout)["host"]["labels"],
       {"cluster": "prod-1", "region": "eu-de", "zone": "eu-de-1", "node": "n1"}, "host.labels")
    svc = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "opa"][0]
    port = svc["spec"]["ports"][0]["port"]
    eq(cfg["opa"]["url"], "https://%s:%d" % (svc["spec"]["clusterIP"], port), "opa.url")


@case
def installer_script_lints(ws):
    subprocess.run(["sh", "-n", INSTALLER], check=True)
    if not shutil.which("shellcheck"):
        raise Skip("shellcheck is not installed; `sh -n` passed")
    p = subprocess.run(["shellcheck", "-s", "sh", INSTALLER], capture_output=True, text=True)
    eq((p.returncode, p.stdout), (0, ""), "shellcheck " + INSTALLER)


main()
