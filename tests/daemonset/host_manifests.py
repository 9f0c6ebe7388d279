#!/usr/bin/python3
"""The deployment (daemonset/, Containerfile) checked on this host.

- every manifest parses; kubectl accepts them (create --dry-run=client and a real create,
  against the API-server double: kubectl needs a server for discovery);
- the RBAC rules are exactly the verbs the agent uses;
- the DaemonSet's mounts, env, probes, image and account match the ConfigMap's wrapd.conf,
  the StorageClass and configure.ac's version;
- the ConfigMap's wrapd.conf passes the real parser (wrapd --check-config), and every key in it
  is documented in daemonset/README.md, whose defaults agree with examples/wrapd.conf;
- the seed example is SPEC.md's (when the design folder is beside the checkout) and binds to a
  PV shaped like the agent's once wrapd.yaml is in;
- the Vault policy grants exactly the Transit calls vault/transit.c makes, and vault-setup.sh
  against the Vault double yields a login whose token can do those and nothing else;
- the Containerfile is well formed and its runtime packages are exactly those owning the
  libraries wrapd and wrapctl link.
Run: /usr/bin/python3 tests/daemonset/host_manifests.py (WRAPD_SRCDIR, WRAPD_BUILDDIR from make
check). The last line is "N passed, M failed".
"""

import base64
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WRAPD_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("WRAPD_BUILDDIR") or SRC
PY = os.environ.get("WRAPD_PYTHON") or "/usr/bin/python3"
DS = os.path.join(SRC, "daemonset")
KUBECTL = shutil.which("kubectl")
sys.path.insert(0, os.path.join(SRC, "tests", "kube-double"))

MANIFEST = os.path.join(DS, "wrapd.yaml")
EXAMPLE = os.path.join(DS, "example", "my-database.yaml")

# The verbs the agent uses (issue 12 / KUBE-CONTRACT.md): nothing more, nothing less.
RBAC = {("", "persistentvolumes", v) for v in
        ("get", "list", "watch", "create", "delete", "update", "patch")} | \
    {("", "events", "create"), ("", "events", "patch"), ("", "nodes", "get")}


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def docs_by_kind():
    out = {}
    for d in load(MANIFEST):
        out.setdefault(d["kind"], []).append(d)
    return out


def conf_of(cm):
    """wrapd.conf's key = value lines -> dict (comments and blank lines skipped)."""
    out = {}
    for line in cm["data"]["wrapd.conf"].splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        k, sep, v = s.partition("=")
        assert sep, "not a key = value line: %r" % line
        k, v = k.strip(), v.strip()
        assert k not in out, "key %s twice" % k
        out[k] = v
    return out


def readme_table():
    """daemonset/README.md's configuration tables: key -> (default, the ConfigMap)."""
    rows = {}
    with open(os.path.join(DS, "README.md")) as f:
        for line in f:
            m = re.match(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)*) \| ([^|]*) \| ([^|]*) \|", line)
            if not m:
                continue
            keys = re.findall(r"`([a-z_]+)`", m.group(1))
            def split(col):
                col = col.strip()
                if len(keys) == 1 or not col.startswith("`"):
                    return [col] * len(keys)
                parts = [x.strip() for x in col.split(",")]
                assert len(parts) == len(keys), line
                return parts
            defs, cms = split(m.group(2)), split(m.group(3))
            for i, k in enumerate(keys):
                rows[k] = (defs[i].strip("`"), cms[i])
    return rows


def example_defaults():
    """examples/wrapd.conf's commented defaults: '#key = value' lines."""
    out = {}
    with open(os.path.join(SRC, "examples", "wrapd.conf")) as f:
        for line in f:
            m = re.match(r"^#([a-z_]+) =\s*(.*)$", line.rstrip("\n"))
            if m:
                out.setdefault(m.group(1), m.group(2).strip())
    return out


class Manifests(unittest.TestCase):
    def test_parse(self):
        for path in [MANIFEST, EXAMPLE]:
            docs = load(path)
            self.assertTrue(docs, path)
            for d in docs:
                self.assertTrue(d.get("apiVersion") and d.get("kind"), (path, d))
                self.assertTrue(d["metadata"]["name"], (path, d))
        kinds = [d["kind"] for d in load(MANIFEST)]
        self.assertEqual(kinds, ["Namespace", "ServiceAccount", "ClusterRole",
                                 "ClusterRoleBinding", "ConfigMap", "DaemonSet",
                                 "StorageClass"])
        self.assertEqual(sorted(glob.glob(os.path.join(DS, "*.yaml"))), [MANIFEST])

    def test_rbac(self):
        k = docs_by_kind()
        role = k["ClusterRole"][0]
        got = set()
        for r in role["rules"]:
            self.assertNotIn("*", r["verbs"] + r["resources"] + r["apiGroups"])
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    for v in r["verbs"]:
                        self.assertNotIn((g, res, v), got, "listed twice")
                        got.add((g, res, v))
        self.assertEqual(got, RBAC)
        b = k["ClusterRoleBinding"][0]
        sa = k["ServiceAccount"][0]
        ns = k["Namespace"][0]["metadata"]["name"]
        self.assertEqual(ns, "wrapd")
        self.assertEqual(b["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                        "kind": "ClusterRole",
                                        "name": role["metadata"]["name"]})
        self.assertEqual(b["subjects"], [{"kind": "ServiceAccount",
                                          "name": sa["metadata"]["name"], "namespace": ns}])
        ds = k["DaemonSet"][0]
        self.assertEqual(ds["spec"]["template"]["spec"]["serviceAccountName"],
                         sa["metadata"]["name"])
        for d in load(MANIFEST):
            if d["kind"] in ("ServiceAccount", "ConfigMap", "DaemonSet"):
                self.assertEqual(d["metadata"]["namespace"], ns, d["kind"])

    def test_daemonset_matches_config(self):
        k = docs_by_kind()
        conf = conf_of(k["ConfigMap"][0])
        ds = k["DaemonSet"][0]
        pod = ds["spec"]["template"]["spec"]
        self.assertEqual(ds["spec"]["selector"]["matchLabels"],
                         ds["spec"]["template"]["metadata"]["labels"])
        self.assertTrue(pod["hostPID"])
        self.assertTrue(pod["hostIPC"])
        self.assertNotIn("hostNetwork", pod)      # probes on the pod IP: see the README
        self.assertEqual(pod["priorityClassName"], "system-node-critical")
        (c,) = pod["containers"]
        self.assertIs(c["securityContext"]["privileged"], True)
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        self.assertEqual(len(mounts), len(c["volumeMounts"]))

        def host_mount(path, ro=None, prop=None):
            m = mounts.get(path)
            self.assertIsNotNone(m, "no mount at %s" % path)
            hp = vols[m["name"]].get("hostPath")
            self.assertIsNotNone(hp, path)
            self.assertEqual(hp["path"], path, "the host's own path")
            self.assertEqual(m.get("readOnly", False), bool(ro), path)
            self.assertEqual(m.get("mountPropagation"), prop, path)

        host_mount("/dev")
        host_mount("/sys")
        host_mount(conf["discovery_dir"], ro=True)
        host_mount(conf["kubelet_dir"], ro=True, prop="HostToContainer")
        host_mount(os.path.dirname(conf["status_socket"]))
        # the config file is the ConfigMap's key at the path the args name
        args = c["args"]
        cfg = args[args.index("--config") + 1]
        # by subPath: kubelet makes a ConfigMap's folder mode 0777, which wrapd refuses
        # (test_check_config shows both layouts)
        self.assertNotIn(os.path.dirname(cfg), mounts, "the ConfigMap's folder is mounted")
        cm_mount = mounts[cfg]
        self.assertEqual(vols[cm_mount["name"]]["configMap"]["name"],
                         k["ConfigMap"][0]["metadata"]["name"])
        self.assertEqual(cm_mount.get("subPath"), "wrapd.conf")
        self.assertEqual(os.path.basename(cfg), "wrapd.conf")
        self.assertTrue(cm_mount["readOnly"])
        # Vault's token: projected, audience vault, at vault_jwt_file
        jwt = conf["vault_jwt_file"]
        m = mounts[os.path.dirname(jwt)]
        (src,) = vols[m["name"]]["projected"]["sources"]
        sat = src["serviceAccountToken"]
        self.assertEqual((sat["audience"], sat["path"]), ("vault", os.path.basename(jwt)))
        self.assertEqual(conf["vault_auth"], "kubernetes")
        # the API token: the default service-account mount stays
        self.assertNotEqual(pod.get("automountServiceAccountToken"), False)
        self.assertNotIn("kube_token_file", conf)
        self.assertNotIn("kube_api_url", conf)
        # NODE_NAME from the downward API, node_name unset so it is used
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
                         "spec.nodeName")
        self.assertNotIn("node_name", conf)
        # probes and metrics on metrics_listen's port, on every address of the pod
        host, _, port = conf["metrics_listen"].rpartition(":")
        self.assertEqual(host, "0.0.0.0")
        self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": int(port)})
        self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": int(port)})
        self.assertEqual(c["ports"][0]["containerPort"], int(port))
        for kind in ("requests", "limits"):
            self.assertEqual(set(c["resources"][kind]), {"cpu", "memory"})
        # the image is this version's
        with open(os.path.join(SRC, "configure.ac")) as f:
            ver = re.search(r"AC_INIT\(\[wrapd\], \[([^]]+)\]", f.read()).group(1)
        self.assertEqual(c["image"], "wrapd:" + ver)
        # the StorageClass is the one the agent publishes into
        sc = k["StorageClass"][0]
        self.assertEqual(sc["metadata"]["name"], conf["storage_class"])
        self.assertEqual((sc["provisioner"], sc["volumeBindingMode"], sc["reclaimPolicy"]),
                         ("kubernetes.io/no-provisioner", "WaitForFirstConsumer",
                          conf["reclaim_policy"]))
        self.assertEqual(conf["kubernetes"], "yes")

    def test_config_keys_documented(self):
        conf = conf_of(docs_by_kind()["ConfigMap"][0])
        table = readme_table()
        for k in ("kubernetes", "discovery_dir", "kubelet_dir", "storage_class", "node_name",
                  "kube_api_url", "kube_token_file", "kube_ca_file", "convert_existing",
                  "volume_mode", "fs_type", "reclaim_policy", "event_namespace"):
            self.assertIn(k, table, "the contract key %s is not in daemonset/README.md" % k)
        ex = example_defaults()
        # examples/wrapd.conf shows an example path for vault_cacert, and the AppRole mount
        # for vault_auth_mount (whose default follows vault_auth): not defaults to compare
        for k, (default, in_cm) in table.items():
            self.assertIn(k, ex, "%s is not a key of examples/wrapd.conf" % k)
            if k not in ("vault_cacert", "vault_auth_mount"):
                self.assertEqual("" if default == "empty" else default, ex[k],
                                 "README default of %s" % k)
            if in_cm.startswith("`"):
                self.assertEqual(conf[k], in_cm.strip("`"), k)
            else:
                self.assertIn(in_cm, ("not set", "commented out"), k)
                self.assertNotIn(k, conf, "%s: the README says %r" % (k, in_cm))
        for k in conf:
            self.assertIn(k, table, "%s is set in the ConfigMap but not documented" % k)

    def test_check_config(self):
        wrapd = os.path.join(BUILD, "wrapd")
        if not os.access(wrapd, os.X_OK):
            self.fail("%s is not built (run through make check)" % wrapd)
        tmp = tempfile.mkdtemp()
        try:
            f = os.path.join(tmp, "wrapd.conf")
            with open(f, "w") as fh:
                fh.write(docs_by_kind()["ConfigMap"][0]["data"]["wrapd.conf"])
            os.chmod(f, 0o600)
            env = dict(os.environ, NODE_NAME="node-a",
                       ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
            p = subprocess.run([wrapd, "--config", f, "--check-config"], capture_output=True,
                               text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # kubelet's layout of a ConfigMap folder (pkg/volume/util/atomic_writer.go:
            # the folder 0777, a timestamped folder 0755, the ..data link, one link per key):
            # refused, naming the folder; which is why the DaemonSet mounts by subPath
            cm = os.path.join(tmp, "configmap")
            ts = os.path.join(cm, "..2026_11_30_08_00_00.123456789")
            os.makedirs(ts)
            os.chmod(cm, 0o777)
            shutil.copy(f, os.path.join(ts, "wrapd.conf"))
            os.chmod(os.path.join(ts, "wrapd.conf"), 0o400)
            os.symlink(os.path.basename(ts), os.path.join(cm, "..data"))
            os.symlink("..data/wrapd.conf", os.path.join(cm, "wrapd.conf"))
            p = subprocess.run([wrapd, "--config", os.path.join(cm, "wrapd.conf"), "--check-config"],
                               capture_output=True, text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("its directory %s is world-writable" % cm, p.stderr)
            # the parser is the real one: an unknown key fails it
            with open(f, "a") as fh:
                fh.write("kube_nonsense = 1\n")
            p = subprocess.run([wrapd, "--config", f, "--check-config"], capture_output=True,
                               text=True, env=env, timeout=60)
            self.assertEqual(p.returncode, 1)
            self.assertIn("unknown key 'kube_nonsense'", p.stderr)
        finally:
            shutil.rmtree(tmp)

    def test_example_is_the_seed(self):
        docs = load(EXAMPLE)
        self.assertEqual([d["kind"] for d in docs], ["PersistentVolumeClaim", "Pod"])
        self.assertEqual(docs[0]["spec"]["storageClassName"], "encrypted")
        spec = os.path.join(os.environ.get("WRAPD_TESTDATA", os.path.join(SRC, "..", "shared",
                                                                           "testdata")),
                            "..", "design", "SPEC.md")
        if not os.path.exists(spec):
            self.skipTest("no design folder beside the checkout")
        with open(spec) as f:
            block = re.search(r"```yaml\n(.*?)```", f.read(), re.S).group(1)
        self.assertEqual(docs, [d for d in yaml.safe_load_all(block) if d])


class Vault(unittest.TestCase):
    def test_policy_is_what_transit_calls(self):
        with open(os.path.join(SRC, "vault", "transit.c")) as f:
            src = f.read()
        ops = set(re.findall(r'transit_path\(vc, path, sizeof\(path\), "([a-z/]+)"\)', src))
        ops |= set(re.findall(r'batch\(vc, "([a-z]+)"', src))
        want = {("transit/%s/wrapd" % op): (["read"] if op == "keys" else ["update"])
                for op in ops}
        self.assertEqual(set(ops), {"keys", "datakey/plaintext", "decrypt", "rewrap"})
        with open(os.path.join(DS, "vault-policy.hcl")) as f:
            got = dict((m.group(1), json.loads(m.group(2))) for m in re.finditer(
                r'^path "([^"]+)"\s*\{\s*capabilities = (\[[^]]*\])\s*\}', f.read(), re.M))
        self.assertEqual(got, want)

    def test_setup_script_against_the_double(self):
        tmp = tempfile.mkdtemp()
        try:
            self._setup(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _setup(self, tmp):
        port_file = os.path.join(tmp, "port")
        # not --dev: nothing mounted, the script mounts transit and kubernetes auth itself
        p = subprocess.Popen([PY, os.path.join(SRC, "tests", "vault-double", "vault-double"),
                              "--listen", "127.0.0.1:0", "--port-file", port_file,
                              "--root-token", "root"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                if os.path.exists(port_file) or p.poll() is not None:
                    break
                subprocess.run(["sleep", "0.1"])
            addr = "http://127.0.0.1:%d" % int(open(port_file).read())
            env = dict(os.environ, VAULT_ADDR=addr, VAULT_TOKEN="root",
                       KUBERNETES_HOST="https://10.0.0.1:443")
            script = os.path.join(DS, "vault-setup.sh")
            for run in range(2):          # idempotent
                r = subprocess.run(["sh", script], capture_output=True, text=True, env=env,
                                   timeout=120)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("key transit/keys/wrapd exists (derived)", r.stdout)
            c = Client(addr)
            role = c.call("GET", "auth/kubernetes/role/wrapd", token="root")[1]["data"]
            self.assertEqual((role["bound_service_account_names"],
                              role["bound_service_account_namespaces"], role["audience"],
                              role["token_policies"]),
                             (["wrapd"], ["wrapd"], "vault", ["wrapd"]))
            for sa, ns in (("wrapd", "wrapd"), ("wrapd", "other"), ("other", "wrapd")):
                c.call("POST", "/_double/k8s/jwt", {"jwt": "jwt-%s-%s" % (sa, ns),
                                                    "service_account_name": sa,
                                                    "namespace": ns}, raw=True)
            st, js = c.call("POST", "auth/kubernetes/login", {"role": "wrapd",
                                                              "jwt": "jwt-wrapd-other"})
            self.assertEqual(st, 403, js)
            st, js = c.call("POST", "auth/kubernetes/login", {"role": "wrapd",
                                                              "jwt": "jwt-other-wrapd"})
            self.assertEqual(st, 403, js)
            st, js = c.call("POST", "auth/kubernetes/login", {"role": "wrapd",
                                                              "jwt": "jwt-wrapd-wrapd"})
            self.assertEqual(st, 200, js)
            tok = js["auth"]["client_token"]
            ctx = base64.b64encode(b"wrapd-test-context").decode()
            st, js = c.call("POST", "transit/datakey/plaintext/wrapd",
                            {"bits": 512, "context": ctx}, token=tok)
            self.assertEqual(st, 200, js)
            ct = js["data"]["ciphertext"]
            self.assertEqual(c.call("POST", "transit/decrypt/wrapd",
                                    {"ciphertext": ct, "context": ctx}, token=tok)[0], 200)
            self.assertEqual(c.call("POST", "transit/rewrap/wrapd",
                                    {"ciphertext": ct, "context": ctx}, token=tok)[0], 200)
            self.assertEqual(c.call("GET", "transit/keys/wrapd", token=tok)[0], 200)
            for method, path, body in (
                    ("POST", "transit/encrypt/wrapd", {"plaintext": ctx, "context": ctx}),
                    ("POST", "transit/keys/wrapd/rotate", {}),
                    ("POST", "transit/keys/wrapd/config", {"deletion_allowed": True}),
                    ("DELETE", "transit/keys/wrapd", None),
                    ("POST", "transit/keys/other", {"derived": True}),
                    ("POST", "transit/datakey/plaintext/other", {"bits": 512})):
                self.assertEqual(c.call(method, path, body, token=tok)[0], 403, path)
        finally:
            p.terminate()
            p.wait(10)


class Client:
    def __init__(self, addr):
        self.addr = addr

    def call(self, method, path, body=None, token=None, raw=False):
        import urllib.request
        import urllib.error
        url = self.addr + (path if raw else "/v1/" + path)
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(url, data=data, method=method)
        r.add_header("Content-Type", "application/json")
        if token:
            r.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(r, timeout=30) as resp:
                b = resp.read()
                return resp.status, json.loads(b) if b else None
        except urllib.error.HTTPError as e:
            b = e.read()
            return e.code, json.loads(b) if b else None


@unittest.skipIf(KUBECTL is None, "kubectl is not installed")
class Kubectl(unittest.TestCase):
    """kubectl accepts the manifests; against the API-server double (discovery needs a server)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        port_file = os.path.join(cls.tmp, "port")
        cls.proc = subprocess.Popen([PY, os.path.join(SRC, "tests", "kube-double",
                                                      "kube-double"),
                                     "--port-file", port_file, "--node", "node-a"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            if os.path.exists(port_file) or cls.proc.poll() is not None:
                break
            subprocess.run(["sleep", "0.1"])
        cls.url = "http://127.0.0.1:%d" % int(open(port_file).read())

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def kubectl(self, *args, check=True):
        env = dict(os.environ, HOME=self.home, KUBECONFIG=os.path.join(self.home, "none"))
        p = subprocess.run([KUBECTL, "--server", self.url, "--request-timeout=30s"] +
                           list(args), capture_output=True, text=True, env=env, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p

    def test_dry_run_and_create(self):
        p = self.kubectl("create", "--dry-run=client", "--validate=false", "-o", "json",
                         "-f", MANIFEST)
        objs, text, dec = [], p.stdout.strip(), json.JSONDecoder()
        while text:
            o, end = dec.raw_decode(text)
            objs.append(o)
            text = text[end:].strip()
        self.assertEqual(objs, load(MANIFEST))      # what kubectl would send: the files
        p = self.kubectl("create", "--validate=false", "-f", MANIFEST)
        self.assertEqual(p.stdout.splitlines(), [
            "namespace/wrapd created", "serviceaccount/wrapd created",
            "clusterrole.rbac.authorization.k8s.io/wrapd created",
            "clusterrolebinding.rbac.authorization.k8s.io/wrapd created",
            "configmap/wrapd-config created", "daemonset.apps/wrapd created",
            "storageclass.storage.k8s.io/encrypted created"])
        ds = json.loads(self.kubectl("get", "-n", "wrapd", "daemonset", "wrapd", "-o",
                                     "json").stdout)
        self.assertEqual(ds["spec"]["template"]["spec"]["containers"][0]["image"],
                         "wrapd:" + ds["spec"]["template"]["spec"]["containers"][0][
                             "image"].split(":")[1])
        # a PV shaped as the agent publishes it (KUBE-CONTRACT.md), then the seed example
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              "metadata": {"name": "wrapd-node-a-data0",
                           "labels": {"app.kubernetes.io/managed-by": "wrapd",
                                      "wrapd.io/node": "node-a"},
                           "annotations": {"pv.kubernetes.io/provisioned-by": "wrapd.io/wrapd",
                                           "wrapd.io/luks-uuid": str(uuid.uuid4())}},
              "spec": {"capacity": {"storage": "5Gi"}, "volumeMode": "Filesystem",
                       "accessModes": ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": "Delete",
                       "storageClassName": "encrypted",
                       "local": {"path": "/dev/mapper/data0", "fsType": "ext4"},
                       "nodeAffinity": {"required": {"nodeSelectorTerms": [{
                           "matchExpressions": [{"key": "kubernetes.io/hostname",
                                                 "operator": "In", "values": ["node-a"]}]}]}}}}
        pvf = os.path.join(self.tmp, "pv.json")
        with open(pvf, "w") as f:
            json.dump(pv, f)
        self.kubectl("create", "--validate=false", "-f", pvf)
        self.kubectl("create", "--validate=false", "-f", EXAMPLE)
        pvc = json.loads(self.kubectl("get", "pvc", "my-encrypted-volume-claim", "-o",
                                      "json").stdout)
        self.assertEqual((pvc["status"]["phase"], pvc["spec"]["volumeName"]),
                         ("Bound", "wrapd-node-a-data0"))
        self.kubectl("delete", "-f", EXAMPLE)
        pv = json.loads(self.kubectl("get", "pv", "wrapd-node-a-data0", "-o", "json").stdout)
        self.assertEqual(pv["status"]["phase"], "Released")     # wrapd's to erase, not Failed

    def test_apply(self):
        # the README's install command, twice (idempotent), then an edited manifest
        # (client-side apply: a strategic-merge patch of the changed DaemonSet)
        tmp = tempfile.mkdtemp(dir=self.tmp)
        port_file = os.path.join(tmp, "port")
        proc = subprocess.Popen([PY, os.path.join(SRC, "tests", "kube-double", "kube-double"),
                                 "--port-file", port_file], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        url = self.url
        try:
            for _ in range(600):
                if os.path.exists(port_file) or proc.poll() is not None:
                    break
                subprocess.run(["sleep", "0.1"])
            self.url = "http://127.0.0.1:%d" % int(open(port_file).read())
            first = self.kubectl("apply", "--validate=false", "-f", MANIFEST).stdout
            self.assertEqual([x.rsplit(" ", 1)[1] for x in first.splitlines()],
                             ["created"] * 7)
            # the folder form applies the same (example/ is not recursed into)
            again = self.kubectl("apply", "--validate=false", "-f", DS).stdout
            self.assertEqual([x.rsplit(" ", 1)[1] for x in again.splitlines()],
                             ["unchanged"] * 7)
            with open(MANIFEST) as f:
                text = f.read()
            self.assertIn("memory: 256Mi", text)
            edited = os.path.join(tmp, "wrapd.yaml")
            with open(edited, "w") as f:
                f.write(text.replace("memory: 256Mi", "memory: 300Mi"))
            out = self.kubectl("apply", "--validate=false", "-f", edited).stdout
            self.assertIn("daemonset.apps/wrapd configured", out)
            ds = json.loads(self.kubectl("get", "-n", "wrapd", "daemonset", "wrapd", "-o",
                                         "json").stdout)
            self.assertEqual(ds["spec"]["template"]["spec"]["containers"][0]["resources"][
                "limits"]["memory"], "300Mi")
        finally:
            self.url = url
            proc.terminate()
            proc.wait(10)

    def test_broken_manifest_is_refused(self):
        # the double's DaemonSet validation is live: a selector that misses the labels fails
        docs = load(MANIFEST)
        ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
        ds["metadata"]["name"] = "broken"
        ds["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": "other"}
        f = os.path.join(self.tmp, "broken.yaml")
        with open(f, "w") as fh:
            yaml.safe_dump(ds, fh)
        self.kubectl("create", "namespace", "wrapd", check=False)
        p = self.kubectl("create", "--validate=false", "-f", f, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("`selector` does not match template `labels`", p.stderr)


class Containerfile(unittest.TestCase):
    INSTR = {"FROM", "RUN", "COPY", "ADD", "WORKDIR", "ENV", "ARG", "LABEL", "ENTRYPOINT", "CMD",
             "USER", "EXPOSE", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD"}

    def instructions(self):
        with open(os.path.join(SRC, "Containerfile")) as f:
            text = f.read()
        lines, cur = [], ""
        for line in text.splitlines():
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            cur += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                lines.append(cur.strip())
                cur = ""
        self.assertEqual(cur, "", "a continuation line ends the file")
        out = []
        for line in lines:
            word, _, rest = line.partition(" ")
            self.assertIn(word, self.INSTR, line)
            out.append((word, rest.strip()))
        return out

    def test_structure(self):
        ins = self.instructions()
        stages = [r for w, r in ins if w == "FROM"]
        self.assertEqual(len(stages), 2)
        self.assertRegex(stages[0], r"debian:12 AS build$")
        self.assertRegex(stages[1], r"debian:12-slim$")
        names = {r.split(" AS ")[1] for r in stages if " AS " in r}
        for w, r in ins:
            if w == "COPY" and r.startswith("--from="):
                self.assertIn(r.split()[0][len("--from="):], names)
        ep = [json.loads(r) for w, r in ins if w == "ENTRYPOINT"]
        self.assertEqual(ep, [["/usr/sbin/wrapd"]])
        build = " ".join(r for w, r in ins[:[i for i, (w, _) in enumerate(ins)
                                               if w == "FROM"][1]] if w == "RUN")
        self.assertIn("/src/scripts/deps build", build)
        self.assertIn("/out/usr/sbin/wrapd", build)
        self.assertIn("/out/usr/sbin/wrapctl", build)
        # the .dockerignore keeps build trees out of the context, not the sources
        with open(os.path.join(SRC, ".dockerignore")) as f:
            ign = {x.strip() for x in f if x.strip() and not x.startswith("#")}
        for must_ship in ("configure.ac", "scripts", "examples", "Makefile.am"):
            self.assertNotIn(must_ship, ign)

    def runtime_packages(self):
        ins = self.instructions()
        last = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
        pkgs = set()
        for w, r in ins[last:]:
            if w == "RUN" and "apt-get install" in r:
                words = shlex.split(r.split("apt-get install", 1)[1].split("&&")[0])
                pkgs |= {x for x in words if not x.startswith("-")}
        return pkgs

    def test_runtime_packages_are_the_linked_libraries(self):
        if not shutil.which("dpkg") or not shutil.which("readelf"):
            self.skipTest("dpkg or readelf missing")
        want = set()
        for prog in ("wrapd", "wrapctl"):
            path = os.path.join(BUILD, prog)
            if not os.access(path, os.X_OK):
                self.fail("%s is not built (run through make check)" % path)
            out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                                 check=True).stdout
            for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out):
                if re.match(r"lib(asan|ubsan|lsan|tsan)\.", lib):
                    continue          # a sanitizer build's, not the image's
                for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib",
                          "/usr/lib", "/lib64"):
                    if os.path.exists(os.path.join(d, lib)):
                        f = os.path.join(d, lib)
                        break
                else:
                    self.fail("cannot find %s" % lib)
                q = subprocess.run(["dpkg", "-S", f], capture_output=True, text=True)
                if q.returncode != 0:     # /lib vs /usr/lib (merged /usr)
                    q = subprocess.run(["dpkg", "-S", os.path.realpath(f)],
                                       capture_output=True, text=True)
                self.assertEqual(q.returncode, 0, q.stderr)
                want.add(q.stdout.split(":")[0])
        want -= {"libc6"}                 # in every Debian image
        self.assertEqual(self.runtime_packages() - {"ca-certificates"}, want)


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = max(0, result.testsRun - failed - len(result.skipped))
    if result.skipped:
        print("%d skipped" % len(result.skipped))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
