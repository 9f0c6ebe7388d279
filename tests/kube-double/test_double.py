#!/usr/bin/python3
"""Tests of the Kubernetes API-server double itself.

Run: /usr/bin/python3 tests/kube-double/test_double.py
Starts the double on ephemeral loopback ports and talks HTTP(S) to it, and checks the
client-visible behaviour with the real kubectl where kubectl is installed (skipped, and
said so, where it is not).  The last line of output is "N passed, M failed"; the exit
status is non-zero on any failure.
"""

import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLE = os.path.join(HERE, "kube-double")
MAKE_CA = os.path.join(HERE, "..", "vault-double", "make-test-ca")
HELPER = os.path.join(HERE, "..", "lib", "kube-double.sh")
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
KUBECTL = shutil.which("kubectl")
PY = os.environ.get("WRAPD_PYTHON") or "/usr/bin/python3"


class DoubleProc:
    """A running kube-double subprocess."""

    def __init__(self, tmp, extra=(), tls=None, token="tok-" + uuid.uuid4().hex):
        self.tmp = tmp
        tag = uuid.uuid4().hex[:8]
        self.port_file = os.path.join(tmp, "port-" + tag)
        self.log_file = os.path.join(tmp, "log-" + tag)
        self.token = token
        self.token_file = os.path.join(tmp, "token-" + tag)
        cmd = [PY, DOUBLE, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
               "--log", self.log_file]
        if token:
            with open(self.token_file, "w") as f:
                f.write(token + "\n")
            cmd += ["--token-file", self.token_file]
        self.tls = tls
        if tls:
            cmd += ["--tls-cert", os.path.join(tls, "server.crt"),
                    "--tls-key", os.path.join(tls, "server.key")]
        cmd += list(extra)
        self.out = open(os.path.join(tmp, "out-" + tag), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)
        for _ in range(400):
            if os.path.exists(self.port_file):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("kube-double exited: %s" % self.read_out())
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("kube-double did not start")
        self.port = int(open(self.port_file).read())
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)

    def read_out(self):
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.out.close()
        return self.proc.returncode

    def conn(self, timeout=30):
        if self.tls:
            ctx = ssl.create_default_context(cafile=os.path.join(self.tls, "ca.crt"))
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def req(self, method, path, body=None, token=..., ctype=None, headers=None):
        """-> (status, json-or-text, headers)."""
        token = self.token if token is ... else token
        c = self.conn()
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = ctype or "application/json"
        if token:
            h["Authorization"] = "Bearer " + token
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            js = json.loads(raw) if raw else None
        except ValueError:
            js = raw.decode()
        return r.status, js, r.headers

    def ok(self, method, path, body=None, want=(200, 201), **kw):
        st, js, _ = self.req(method, path, body, **kw)
        if st not in want:
            raise AssertionError("%s %s -> %s %s" % (method, path, st, js))
        return js

    def ctl(self, method, path, body=None):
        st, js, _ = self.req(method, "/_double/" + path, body if body is not None else
                             ({} if method == "POST" else None), token=None)
        if st != 200:
            raise AssertionError("control %s %s -> %s %s" % (method, path, st, js))
        return js

    def watch(self, path, timeout=20):
        return WatchStream(self, path, timeout)

    def log(self):
        with open(self.log_file) as f:
            return [json.loads(x) for x in f if x.strip()]


class WatchStream:
    def __init__(self, d, path, timeout):
        self.c = d.conn(timeout)
        h = {"Authorization": "Bearer " + d.token} if d.token else {}
        self.c.request("GET", path, headers=h)
        self.r = self.c.getresponse()
        self.status = self.r.status
        self.headers = self.r.headers

    def next(self):
        """The next event, or None at a clean end of stream."""
        line = self.r.readline()
        if not line:
            return None
        return json.loads(line)

    def take(self, n):
        return [self.next() for _ in range(n)]

    def rest(self):
        out = []
        while True:
            e = self.next()
            if e is None:
                return out
            out.append(e)

    def close(self):
        self.c.close()


TMP = None
D = None
CA = None


def setUpModule():
    global TMP, D, CA
    TMP = tempfile.mkdtemp(prefix="kube-double-test-")
    CA = os.path.join(TMP, "ca")
    subprocess.run(["sh", MAKE_CA, CA], check=True, stdout=subprocess.DEVNULL)
    D = DoubleProc(TMP, extra=["--node", "node-a", "--node", "node-b:zone=z2"])


def tearDownModule():
    if D is not None:
        D.stop()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def uniq(prefix="t"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def pv_body(name, node="node-a", size="5Gi", cls="encrypted", policy="Delete",
            mode="Filesystem", labels=None, annotations=None, access=("ReadWriteOnce",)):
    md = {"name": name, "labels": dict(labels or {"app.kubernetes.io/managed-by": "wrapd"})}
    if annotations is not None:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": md,
            "spec": {"capacity": {"storage": size}, "volumeMode": mode,
                     "accessModes": list(access), "persistentVolumeReclaimPolicy": policy,
                     "storageClassName": cls,
                     "local": {"path": "/dev/mapper/" + name, "fsType": "ext4"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In",
                          "values": [node]}]}]}}}}


def pvc_body(name, size="4Gi", cls="encrypted", mode=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
            "storageClassName": cls}
    if mode:
        spec["volumeMode"] = mode
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": spec}


def pod_body(name, claim):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "postgres", "volumeMounts": [
                {"mountPath": "/data", "name": "v"}]}],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}}


PV = "/api/v1/persistentvolumes"


def ns_path(ns, res):
    return "/api/v1/namespaces/%s/%s" % (ns, res)


def make_ns(d=None):
    d = d or D
    ns = uniq("ns")
    d.ok("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    return ns


def ensure_class(d, name="encrypted", mode="WaitForFirstConsumer"):
    st, _, _ = d.req("GET", "/apis/storage.k8s.io/v1/storageclasses/" + name)
    if st == 404:
        d.ok("POST", "/apis/storage.k8s.io/v1/storageclasses",
             {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": name}, "provisioner": "kubernetes.io/no-provisioner",
              "volumeBindingMode": mode, "reclaimPolicy": "Delete"})


class Base(unittest.TestCase):
    def setUp(self):
        D.ctl("DELETE", "fault")
        D.ctl("POST", "settings", {"expired_watch_start": "event", "controllers": True,
                                   "rbac_rules": None, "bookmark_interval": 60})
        with open(D.token_file, "w") as f:
            f.write(D.token + "\n")

    def assertStatus(self, resp, code, reason):
        st, js, _ = resp
        self.assertEqual(st, code, js)
        self.assertEqual(js["kind"], "Status", js)
        self.assertEqual(js["apiVersion"], "v1")
        self.assertEqual(js["status"], "Failure")
        self.assertEqual(js["code"], code)
        self.assertEqual(js.get("reason", ""), reason)
        return js


class TestDiscoveryAuth(Base):
    def test_discovery(self):
        v = D.ok("GET", "/version")
        self.assertEqual((v["major"], v["minor"]), ("1", "32"))
        api = D.ok("GET", "/api")
        self.assertEqual(api["kind"], "APIVersions")
        self.assertEqual(api["versions"], ["v1"])
        core = D.ok("GET", "/api/v1")
        names = {r["name"]: r for r in core["resources"]}
        for n in ("persistentvolumes", "persistentvolumes/status", "persistentvolumeclaims",
                  "pods", "nodes", "events", "namespaces"):
            self.assertIn(n, names)
        self.assertFalse(names["persistentvolumes"]["namespaced"])
        self.assertTrue(names["events"]["namespaced"])
        self.assertIn("watch", names["persistentvolumes"]["verbs"])
        self.assertEqual(names["persistentvolumes/status"]["verbs"], ["get", "patch", "update"])
        groups = D.ok("GET", "/apis")
        self.assertIn("storage.k8s.io", [g["name"] for g in groups["groups"]])
        sv = D.ok("GET", "/apis/storage.k8s.io/v1")
        self.assertEqual(sv["groupVersion"], "storage.k8s.io/v1")
        self.assertEqual([r["name"] for r in sv["resources"]], ["storageclasses"])
        self.assertEqual(D.ok("GET", "/apis/storage.k8s.io")["kind"], "APIGroup")
        self.assertEqual(D.req("GET", "/openapi/v2")[0], 404)
        self.assertStatus(D.req("GET", "/api/v1/widgets"), 404, "NotFound")

    def test_auth(self):
        self.assertStatus(D.req("GET", PV, token=None), 401, "Unauthorized")
        self.assertStatus(D.req("GET", PV, token="wrong"), 401, "Unauthorized")
        self.assertStatus(D.req("GET", "/api", token=None), 401, "Unauthorized")
        self.assertEqual(D.req("GET", "/version", token=None)[0], 200)
        self.assertEqual(D.req("GET", "/healthz", token=None)[1], "ok")
        self.assertStatus(D.req("GET", "/version", token="wrong"), 401, "Unauthorized")
        self.assertEqual(D.req("GET", PV)[0], 200)
        # rotation: the file is reread at each request
        with open(D.token_file, "w") as f:
            f.write("rotated\n")
        self.assertStatus(D.req("GET", PV), 401, "Unauthorized")
        self.assertEqual(D.req("GET", PV, token="rotated")[0], 200)
        log = D.log()
        self.assertTrue(any(e["code"] == 401 and e["path"] == PV for e in log))

    def test_rbac(self):
        D.ctl("POST", "settings", {"rbac_rules": [
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["get", "list", "watch"]}]})
        self.assertEqual(D.req("GET", PV)[0], 200)
        js = self.assertStatus(D.req("POST", PV, pv_body(uniq("pv"))), 403, "Forbidden")
        self.assertIn('cannot create resource "persistentvolumes"', js["message"])
        self.assertStatus(D.req("GET", "/api/v1/nodes"), 403, "Forbidden")
        self.assertStatus(D.req("PATCH", PV + "/x/status", {}, ctype="application/merge-patch"
                                "+json"), 403, "Forbidden")
        D.ctl("POST", "settings", {"rbac_rules": None})
        self.assertEqual(D.req("GET", "/api/v1/nodes")[0], 200)


class TestObjects(Base):
    def test_create_get_conflicts(self):
        name = uniq("pv")
        st, pv, _ = D.req("POST", PV, pv_body(name))
        self.assertEqual(st, 201, pv)
        self.assertEqual(pv["kind"], "PersistentVolume")
        md = pv["metadata"]
        self.assertTrue(md["uid"] and md["creationTimestamp"])
        self.assertIn("kubernetes.io/pv-protection", md["finalizers"])
        self.assertEqual(pv["status"]["phase"], "Pending")
        got = D.ok("GET", PV + "/" + name)
        self.assertEqual(got["status"]["phase"], "Available")     # the PV controller
        self.assertGreater(int(got["metadata"]["resourceVersion"]), int(md["resourceVersion"]))
        js = self.assertStatus(D.req("POST", PV, pv_body(name)), 409, "AlreadyExists")
        self.assertEqual(js["message"], 'persistentvolumes "%s" already exists' % name)
        self.assertEqual(js["details"], {"name": name, "kind": "persistentvolumes"})
        js = self.assertStatus(D.req("GET", PV + "/nope"), 404, "NotFound")
        self.assertEqual(js["message"], 'persistentvolumes "nope" not found')
        self.assertEqual(js["details"]["name"], "nope")

    def test_validation(self):
        js = self.assertStatus(D.req("POST", PV, pv_body("Bad_Name")), 422, "Invalid")
        self.assertEqual(js["details"]["kind"], "PersistentVolume")
        self.assertEqual(js["details"]["causes"][0]["field"], "metadata.name")
        self.assertIn("RFC 1123 subdomain", js["message"])
        b = pv_body(uniq("pv"))
        del b["spec"]["capacity"]
        del b["spec"]["nodeAffinity"]
        js = self.assertStatus(D.req("POST", PV, b), 422, "Invalid")
        fields = {c["field"] for c in js["details"]["causes"]}
        self.assertEqual(fields, {"spec.capacity", "spec.nodeAffinity"})
        b = pv_body(uniq("pv"))
        b["spec"]["capacity"]["storage"] = "lots"
        self.assertStatus(D.req("POST", PV, b), 422, "Invalid")
        b = pv_body(uniq("pv"), labels={"wrapd.io/node": "x" * 64})
        js = self.assertStatus(D.req("POST", PV, b), 422, "Invalid")
        self.assertEqual(js["details"]["causes"][0]["field"], "metadata.labels")
        b = pv_body("a" * 254)
        self.assertStatus(D.req("POST", PV, b), 422, "Invalid")
        self.assertEqual(D.req("POST", PV, pv_body("a" * 253))[0], 201)
        self.assertStatus(D.req("POST", PV, b"{not json"), 400, "BadRequest")
        ns = make_ns()
        js = self.assertStatus(D.req("POST", ns_path(ns, "persistentvolumeclaims"),
                                     {"metadata": {"name": "c"}, "spec": {}}), 422, "Invalid")
        self.assertIn("spec.accessModes", {c["field"] for c in js["details"]["causes"]})
        self.assertStatus(D.req("POST", ns_path("no-such-ns", "configmaps"),
                                {"metadata": {"name": "e"}}), 404, "NotFound")
        self.assertStatus(D.req("POST", ns_path(ns, "pods"), dict(
            pod_body("p", "c"), metadata={"name": "p", "namespace": "other"})),
            400, "BadRequest")

    def test_update_conflict_and_status(self):
        name = uniq("pv")
        D.ok("POST", PV, pv_body(name))
        cur = D.ok("GET", PV + "/" + name)
        stale = json.loads(json.dumps(cur))
        cur["metadata"]["labels"]["x"] = "1"
        cur["status"] = {"phase": "Failed"}                # ignored on the main resource
        new = D.ok("PUT", PV + "/" + name, cur)
        self.assertEqual(new["metadata"]["labels"]["x"], "1")
        self.assertEqual(new["status"]["phase"], "Available")
        self.assertGreater(int(new["metadata"]["resourceVersion"]),
                           int(stale["metadata"]["resourceVersion"]))
        stale["metadata"]["labels"]["y"] = "2"
        js = self.assertStatus(D.req("PUT", PV + "/" + name, stale), 409, "Conflict")
        self.assertIn("the object has been modified", js["message"])
        # no resourceVersion: unconditional
        del stale["metadata"]["resourceVersion"]
        self.assertEqual(D.req("PUT", PV + "/" + name, stale)[0], 200)
        # a no-op update keeps the resourceVersion
        cur = D.ok("GET", PV + "/" + name)
        self.assertEqual(D.ok("PUT", PV + "/" + name, cur)["metadata"]["resourceVersion"],
                         cur["metadata"]["resourceVersion"])
        # the status subresource changes status only
        cur["status"]["phase"] = "Failed"
        cur["spec"]["storageClassName"] = "other"
        out = D.ok("PUT", PV + "/" + name + "/status", cur)
        self.assertEqual(out["status"]["phase"], "Failed")
        self.assertEqual(out["spec"]["storageClassName"], "encrypted")
        # immutable volume source
        cur = D.ok("GET", PV + "/" + name)
        cur["spec"]["local"]["path"] = "/dev/other"
        js = self.assertStatus(D.req("PUT", PV + "/" + name, cur), 422, "Invalid")
        self.assertEqual(js["details"]["causes"][0]["field"], "spec.persistentvolumesource")
        self.assertStatus(D.req("PUT", PV + "/nope", cur), 404, "NotFound")
        self.assertStatus(D.req("PUT", PV + "/" + name, dict(cur, metadata=dict(
            cur["metadata"], name="other"))), 400, "BadRequest")

    def test_patches(self):
        name = uniq("pv")
        D.ok("POST", PV, pv_body(name))
        mp = "application/merge-patch+json"
        out = D.ok("PATCH", PV + "/" + name, {"metadata": {"labels": {"a": "1",
                   "app.kubernetes.io/managed-by": None}}}, ctype=mp)
        self.assertEqual(out["metadata"]["labels"], {"a": "1"})
        out = D.ok("PATCH", PV + "/" + name, {"metadata": {"finalizers": ["x.io/f"]}},
                   ctype="application/strategic-merge-patch+json")
        self.assertEqual(out["metadata"]["finalizers"], ["kubernetes.io/pv-protection",
                                                          "x.io/f"])
        out = D.ok("PATCH", PV + "/" + name,
                   {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x.io/f"]}},
                   ctype="application/strategic-merge-patch+json")
        self.assertEqual(out["metadata"]["finalizers"], ["kubernetes.io/pv-protection"])
        out = D.ok("PATCH", PV + "/" + name, [
            {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
            {"op": "replace", "path": "/spec/capacity/storage", "value": "6Gi"}],
            ctype="application/json-patch+json")
        self.assertEqual(out["metadata"]["annotations"], {"k": "v"})
        self.assertEqual(out["spec"]["capacity"]["storage"], "6Gi")
        self.assertStatus(D.req("PATCH", PV + "/" + name, [
            {"op": "test", "path": "/spec/capacity/storage", "value": "1Gi"}],
            ctype="application/json-patch+json"), 422, "Invalid")
        out = D.ok("PATCH", PV + "/" + name + "/status", {"status": {"phase": "Released"},
                   "spec": {"storageClassName": "x"}}, ctype=mp)
        self.assertEqual(out["status"]["phase"], "Released")
        self.assertEqual(out["spec"]["storageClassName"], "encrypted")
        rv = out["metadata"]["resourceVersion"]
        self.assertStatus(D.req("PATCH", PV + "/" + name, {"metadata": {
            "resourceVersion": str(int(rv) - 1), "labels": {"b": "2"}}}, ctype=mp),
            409, "Conflict")
        self.assertStatus(D.req("PATCH", PV + "/" + name, {"metadata": {}},
                                ctype="application/xml"), 415, "UnsupportedMediaType")
        self.assertStatus(D.req("PATCH", PV + "/nope", {}, ctype=mp), 404, "NotFound")

    def test_delete_finalizers(self):
        name = uniq("pv")
        D.ok("POST", PV, pv_body(name))
        D.ok("PATCH", PV + "/" + name, {"metadata": {"finalizers": ["kubernetes.io/pv-protection",
                                                                    "wrapd.io/test"]}},
             ctype="application/merge-patch+json")
        out = D.ok("DELETE", PV + "/" + name)
        self.assertTrue(out["metadata"]["deletionTimestamp"])
        # pv-protection goes (the PV is not Bound), the other finalizer keeps it
        got = D.ok("GET", PV + "/" + name)
        self.assertEqual(got["metadata"]["finalizers"], ["wrapd.io/test"])
        self.assertTrue(got["metadata"]["deletionTimestamp"])
        js = self.assertStatus(D.req("PATCH", PV + "/" + name, {"metadata": {
            "finalizers": ["wrapd.io/test", "new.io/f"]}},
            ctype="application/merge-patch+json"), 422, "Invalid")
        self.assertIn("no new finalizers", js["message"])
        w = D.watch(PV + "?watch=true&fieldSelector=metadata.name%3D" + name +
                    "&resourceVersion=" + got["metadata"]["resourceVersion"])
        D.ok("PATCH", PV + "/" + name, {"metadata": {"finalizers": None}},
             ctype="application/merge-patch+json")
        ev = w.next()
        w.close()
        self.assertEqual(ev["type"], "DELETED")
        self.assertStatus(D.req("GET", PV + "/" + name), 404, "NotFound")
        # without finalizers: gone at once, a Success Status
        name2 = uniq("ns")
        D.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name2}})
        D.ok("POST", ns_path(name2, "configmaps"), {"metadata": {"name": "c"}})
        st = D.ok("DELETE", ns_path(name2, "configmaps") + "/c")
        self.assertEqual((st["kind"], st["status"]), ("Status", "Success"))
        self.assertStatus(D.req("DELETE", ns_path(name2, "configmaps") + "/c"), 404,
                          "NotFound")
        D.ok("POST", ns_path(name2, "configmaps"), {"metadata": {"name": "d"}})
        cm = D.ok("GET", ns_path(name2, "configmaps") + "/d")
        self.assertStatus(D.req("DELETE", ns_path(name2, "configmaps") + "/d", {
            "preconditions": {"resourceVersion": "1"}}), 409, "Conflict")
        self.assertEqual(D.req("DELETE", ns_path(name2, "configmaps") + "/d", {
            "preconditions": {"uid": cm["metadata"]["uid"]}})[0], 200)

    def test_events(self):
        ns = make_ns()
        ev = {"metadata": {"name": "pv1.abc"}, "involvedObject": {
            "kind": "PersistentVolume", "name": "pv1", "apiVersion": "v1"},
            "reason": "VolumePublished", "message": "m", "type": "Normal",
            "source": {"component": "wrapd"}, "count": 1}
        self.assertEqual(D.req("POST", ns_path("default", "events"), ev)[0], 201)
        js = self.assertStatus(D.req("POST", ns_path(ns, "events"), ev), 422, "Invalid")
        self.assertEqual(js["details"]["causes"][0]["field"], "involvedObject.namespace")
        out = D.ok("PATCH", ns_path("default", "events") + "/pv1.abc", {"count": 2},
                   ctype="application/strategic-merge-patch+json")
        self.assertEqual(out["count"], 2)
        lst = D.ok("GET", ns_path("default", "events") +
                   "?fieldSelector=involvedObject.name%3Dpv1,reason%3DVolumePublished")
        self.assertEqual([e["metadata"]["name"] for e in lst["items"]], ["pv1.abc"])
        self.assertStatus(D.req("POST", ns_path("default", "events"), dict(
            ev, type="Bad", metadata={"name": "x"})), 422, "Invalid")


class TestList(Base):
    def test_selectors(self):
        tag = uniq("s")
        names = {}
        for i, lab in enumerate([{"t": tag, "a": "1"}, {"t": tag, "a": "2"},
                                 {"t": tag, "b": "x"}]):
            n = "%s-%d" % (tag, i)
            names[i] = n
            D.ok("POST", PV, pv_body(n, labels=lab))

        def sel(s, extra=""):
            from urllib.parse import quote
            lst = D.ok("GET", PV + "?labelSelector=" + quote("t=%s%s" % (tag, s)) + extra)
            return sorted(int(p["metadata"]["name"].rsplit("-", 1)[1]) for p in lst["items"])
        self.assertEqual(sel(""), [0, 1, 2])
        self.assertEqual(sel(",a=1"), [0])
        self.assertEqual(sel(",a==1"), [0])
        self.assertEqual(sel(",a!=1"), [1, 2])
        self.assertEqual(sel(",a in (1,2)"), [0, 1])
        self.assertEqual(sel(",a notin (1)"), [1, 2])
        self.assertEqual(sel(",a"), [0, 1])
        self.assertEqual(sel(",!a"), [2])
        self.assertEqual(sel("", "&fieldSelector=metadata.name%3D" + names[1]), [1])
        self.assertEqual(sel("", "&fieldSelector=metadata.name!%3D" + names[1]), [0, 2])
        self.assertStatus(D.req("GET", PV + "?labelSelector=a%20in%20(x"), 400, "BadRequest")
        self.assertStatus(D.req("GET", PV + "?fieldSelector=spec.nope%3Dx"), 400, "BadRequest")
        lst = D.ok("GET", PV + "?labelSelector=t%3D" + tag)
        self.assertEqual(lst["kind"], "PersistentVolumeList")
        self.assertEqual(lst["apiVersion"], "v1")
        self.assertTrue(int(lst["metadata"]["resourceVersion"]) > 0)
        self.assertNotIn("kind", lst["items"][0])        # list items carry no kind

    def test_namespaced(self):
        a, b = make_ns(), make_ns()
        D.ok("POST", ns_path(a, "configmaps"), {"metadata": {"name": "x"}})
        D.ok("POST", ns_path(b, "configmaps"), {"metadata": {"name": "x"}})
        self.assertEqual(len(D.ok("GET", ns_path(a, "configmaps"))["items"]), 1)
        all_ = D.ok("GET", "/api/v1/configmaps?fieldSelector=metadata.namespace%3D" + b)
        self.assertEqual([(c["metadata"]["namespace"]) for c in all_["items"]], [b])

    def test_limit_continue_and_rv(self):
        tag = uniq("l")
        for i in range(5):
            D.ok("POST", PV, pv_body("%s-%d" % (tag, i), labels={"t": tag}))
        first = D.ok("GET", PV + "?labelSelector=t%3D" + tag + "&limit=2")
        self.assertEqual(len(first["items"]), 2)
        self.assertEqual(first["metadata"]["remainingItemCount"], 3)
        at = first["metadata"]["resourceVersion"]
        D.ok("POST", PV, pv_body(tag + "-9", labels={"t": tag}))      # after the snapshot
        seen = [p["metadata"]["name"] for p in first["items"]]
        cont = first["metadata"]["continue"]
        while cont:
            page = D.ok("GET", PV + "?labelSelector=t%3D" + tag + "&limit=2&continue=" + cont)
            self.assertEqual(page["metadata"]["resourceVersion"], at)
            seen += [p["metadata"]["name"] for p in page["items"]]
            cont = page["metadata"].get("continue")
        self.assertEqual(seen, ["%s-%d" % (tag, i) for i in range(5)])
        # Exact: the list as it was
        old = D.ok("GET", PV + "?labelSelector=t%3D" + tag + "&resourceVersion=" + at +
                   "&resourceVersionMatch=Exact")
        self.assertEqual(len(old["items"]), 5)
        self.assertEqual(len(D.ok("GET", PV + "?labelSelector=t%3D" + tag)["items"]), 6)
        js = self.assertStatus(D.req("GET", PV + "?resourceVersion=99999999"), 504, "Timeout")
        self.assertIn("Too large resource version", js["message"])
        self.assertStatus(D.req("GET", PV + "?resourceVersionMatch=Exact"), 422, "Invalid")
        D.ctl("POST", "compact")
        self.assertStatus(D.req("GET", PV + "?labelSelector=t%3D" + tag + "&limit=2&continue=" +
                                first["metadata"]["continue"]), 410, "Expired")
        js = self.assertStatus(D.req("GET", PV + "?resourceVersion=" + at +
                                     "&resourceVersionMatch=Exact"), 410, "Expired")
        self.assertIn("too old resource version: %s" % at, js["message"])


def rv_of(o):
    return int(o["metadata"]["resourceVersion"])


class TestWatch(Base):
    def test_events_in_order_and_selector_transitions(self):
        tag = uniq("w")
        lst = D.ok("GET", PV + "?labelSelector=t%3D" + tag)
        w = D.watch(PV + "?watch=true&labelSelector=t%3D" + tag + "&resourceVersion=" +
                    lst["metadata"]["resourceVersion"])
        self.assertEqual(w.status, 200)
        self.assertEqual(w.headers["Content-Type"], "application/json")
        self.assertEqual(w.headers["Transfer-Encoding"], "chunked")
        name = tag + "-a"
        D.ok("POST", PV, pv_body(name, labels={"t": tag}))
        D.ok("POST", PV, pv_body(tag + "-other", labels={"t": "nope"}))
        D.ok("PATCH", PV + "/" + name, {"metadata": {"labels": {"t": "gone"}}},
             ctype="application/merge-patch+json")
        D.ok("PATCH", PV + "/" + name, {"metadata": {"labels": {"t": tag}}},
             ctype="application/merge-patch+json")
        evs = w.take(4)
        w.close()
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED", "DELETED", "ADDED"])
        self.assertEqual(evs[0]["object"]["kind"], "PersistentVolume")
        self.assertEqual(evs[0]["object"]["apiVersion"], "v1")
        self.assertEqual(evs[1]["object"]["status"]["phase"], "Available")
        rvs = [rv_of(e["object"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))
        self.assertTrue(all(e["object"]["metadata"]["name"] == name for e in evs))

    def test_resume_and_initial_state(self):
        tag = uniq("r")
        a = D.ok("POST", PV, pv_body(tag + "-a", labels={"t": tag}))
        D.ok("POST", PV, pv_body(tag + "-b", labels={"t": tag}))
        # from the create's RV: the controller's MODIFIED of a, then b's events
        w = D.watch(PV + "?watch=1&labelSelector=t%3D" + tag + "&resourceVersion=" +
                    a["metadata"]["resourceVersion"] + "&timeoutSeconds=1")
        evs = w.rest()
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"][-1]) for e in evs],
                         [("MODIFIED", "a"), ("ADDED", "b"), ("MODIFIED", "b")])
        # no RV: synthetic ADDED of the current state; ends cleanly at timeoutSeconds
        w = D.watch(PV + "?watch=1&labelSelector=t%3D" + tag + "&timeoutSeconds=1")
        t0 = time.monotonic()
        evs = w.rest()
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual([e["type"] for e in evs], ["ADDED", "ADDED"])
        self.assertEqual(evs[0]["object"]["status"]["phase"], "Available")
        # legacy /watch/ path for one object
        w = D.watch("/api/v1/watch/persistentvolumes/" + tag + "-a?timeoutSeconds=1")
        self.assertEqual([e["object"]["metadata"]["name"] for e in w.rest()], [tag + "-a"])
        # sendInitialEvents: the state, then a bookmark marking its end (after a write
        # these objects do not see, so the snapshot's RV is newer than theirs)
        D.ok("POST", PV, pv_body(tag + "-z", labels={"t": "other"}))
        w = D.watch(PV + "?watch=1&labelSelector=t%3D" + tag + "&sendInitialEvents=true&"
                    "allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&"
                    "timeoutSeconds=1")
        evs = w.rest()
        self.assertEqual([e["type"] for e in evs], ["ADDED", "ADDED", "BOOKMARK"])
        self.assertEqual(evs[2]["object"]["metadata"]["annotations"],
                         {"k8s.io/initial-events-end": "true"})
        # the bookmark's RV is the snapshot's, newer than each object's
        self.assertGreater(rv_of(evs[2]["object"]), max(rv_of(e["object"]) for e in evs[:2]))

    def test_bookmarks(self):
        tag = uniq("b")
        lst = D.ok("GET", PV + "?labelSelector=t%3D" + tag)
        w = D.watch(PV + "?watch=1&allowWatchBookmarks=true&labelSelector=t%3D" + tag +
                    "&resourceVersion=" + lst["metadata"]["resourceVersion"])
        D.ok("POST", PV, pv_body(tag + "-x", labels={"u": tag}))    # not for this watcher
        self.assertEqual(D.ctl("POST", "bookmark")["signalled"] >= 1, True)
        ev = w.next()
        self.assertEqual(ev["type"], "BOOKMARK")
        self.assertEqual(ev["object"]["kind"], "PersistentVolume")
        self.assertEqual(set(ev["object"]["metadata"]), {"resourceVersion",
                                                         "creationTimestamp"})
        self.assertGreaterEqual(rv_of(ev["object"]), int(lst["metadata"]["resourceVersion"]))
        w.close()
        # by interval
        D.ctl("POST", "settings", {"bookmark_interval": 0.2})
        w = D.watch(PV + "?watch=1&allowWatchBookmarks=true&labelSelector=t%3D" + tag +
                    "&resourceVersion=" + lst["metadata"]["resourceVersion"] +
                    "&timeoutSeconds=2")
        evs = w.rest()
        self.assertGreaterEqual(len(evs), 2)
        self.assertTrue(all(e["type"] == "BOOKMARK" for e in evs))
        # none without allowWatchBookmarks
        w = D.watch(PV + "?watch=1&labelSelector=t%3D" + tag + "&resourceVersion=" +
                    lst["metadata"]["resourceVersion"] + "&timeoutSeconds=1")
        D.ctl("POST", "bookmark")
        self.assertEqual(w.rest(), [])

    def test_expired(self):
        lst = D.ok("GET", PV)
        rv = lst["metadata"]["resourceVersion"]
        D.ok("POST", PV, pv_body(uniq("e")))
        D.ctl("POST", "compact")
        # too old at the start: 200 and an ERROR event (what a real server does) ...
        w = D.watch(PV + "?watch=1&resourceVersion=" + rv)
        self.assertEqual(w.status, 200)
        evs = w.rest()
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "ERROR")
        st = evs[0]["object"]
        self.assertEqual((st["kind"], st["status"], st["reason"], st["code"]),
                         ("Status", "Failure", "Expired", 410))
        self.assertRegex(st["message"], r"^too old resource version: %s \(\d+\)$" % rv)
        # ... or an HTTP 410 when switched
        D.ctl("POST", "settings", {"expired_watch_start": "http"})
        self.assertStatus(D.req("GET", PV + "?watch=1&resourceVersion=" + rv), 410, "Expired")
        D.ctl("POST", "settings", {"expired_watch_start": "event"})
        # mid-watch: compaction with expire_watches sends ERROR 410 and ends the stream
        lst = D.ok("GET", PV)
        w = D.watch(PV + "?watch=1&resourceVersion=" + lst["metadata"]["resourceVersion"])
        self._wait_watches(1)
        D.ctl("POST", "compact", {"expire_watches": True})
        evs = w.rest()
        self.assertEqual([(e["type"], e["object"]["code"]) for e in evs], [("ERROR", 410)])
        # and a watch from the compacted-to RV still works
        st2 = D.ctl("GET", "state")
        w = D.watch(PV + "?watch=1&timeoutSeconds=1&resourceVersion=" + st2["resourceVersion"])
        self.assertEqual(w.rest(), [])

    def _wait_watches(self, n):
        for _ in range(200):
            if D.ctl("GET", "state")["watches"] >= n:
                return
            time.sleep(0.02)
        self.fail("watch not registered")

    def test_history_bound(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp, extra=["--history", "3"])
        try:
            rv = d.ok("GET", PV)["metadata"]["resourceVersion"]
            for i in range(3):
                d.ok("POST", PV, pv_body("h-%d" % i))      # 2 writes each
            w = d.watch(PV + "?watch=1&resourceVersion=" + rv)
            self.assertEqual(w.next()["object"]["reason"], "Expired")
            w.close()
        finally:
            d.stop()

    def test_restart_and_drop(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp)
        try:
            d.ok("POST", PV, pv_body("keep"))
            rv = d.ok("GET", PV)["metadata"]["resourceVersion"]
            w = d.watch(PV + "?watch=1&resourceVersion=" + rv)
            for _ in range(200):
                if d.ctl("GET", "state")["watches"]:
                    break
                time.sleep(0.02)
            out = d.ctl("POST", "restart", {"rv_jump": 100000})
            self.assertEqual(out["epoch"], 1)
            self.assertGreaterEqual(int(out["resourceVersion"]), int(rv) + 100000)
            with self.assertRaises((http.client.IncompleteRead, ConnectionError,
                                    http.client.HTTPException, OSError)):
                e = w.next()
                if e is None:
                    raise ConnectionError("closed")
            w = d.watch(PV + "?watch=1&resourceVersion=" + rv)
            self.assertEqual(w.next()["object"]["code"], 410)
            lst = d.ok("GET", PV)
            self.assertEqual([p["metadata"]["name"] for p in lst["items"]], ["keep"])
            self.assertEqual(lst["metadata"]["resourceVersion"], out["resourceVersion"])
            # drop: open watches end abruptly, a graceful drop ends them cleanly
            w = d.watch(PV + "?watch=1&resourceVersion=" + lst["metadata"]["resourceVersion"])
            for _ in range(200):
                if d.ctl("GET", "state")["watches"]:
                    break
                time.sleep(0.02)
            self.assertEqual(d.ctl("POST", "watches/drop", {"graceful": True})["closed"], 1)
            self.assertIsNone(w.next())
            self.assertEqual(d.ctl("GET", "watches")["watches"], [])
            out = d.ctl("POST", "restart", {"keep_objects": False})
            self.assertEqual(d.ok("GET", PV)["items"], [])
        finally:
            d.stop()


class TestTable(Base):
    ACCEPT = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}

    def test_table(self):
        name = uniq("tb")
        D.ok("POST", PV, pv_body(name, labels={"t": name}))
        t = D.ok("GET", PV + "?labelSelector=t%3D" + name, headers=self.ACCEPT)
        self.assertEqual((t["kind"], t["apiVersion"]), ("Table", "meta.k8s.io/v1"))
        cols = [c["name"] for c in t["columnDefinitions"]]
        self.assertEqual(cols[:6], ["Name", "Capacity", "Access Modes", "Reclaim Policy",
                                    "Status", "Claim"])
        (row,) = t["rows"]
        self.assertEqual(row["cells"][:6], [name, "5Gi", "RWO", "Delete", "Available", ""])
        self.assertEqual(row["object"]["kind"], "PartialObjectMetadata")
        self.assertEqual(row["object"]["metadata"]["name"], name)
        t = D.ok("GET", PV + "/" + name + "?includeObject=Object", headers=self.ACCEPT)
        self.assertEqual(t["rows"][0]["object"]["spec"]["capacity"]["storage"], "5Gi")
        # plain JSON unless the Table is asked for
        self.assertEqual(D.ok("GET", PV + "/" + name)["kind"], "PersistentVolume")
        # a watch of Tables: columns in the first event only
        rv = t["metadata"]["resourceVersion"]
        w = D.conn()
        w.request("GET", PV + "?watch=1&timeoutSeconds=1&labelSelector=t%3D" + name,
                  headers=dict(self.ACCEPT, Authorization="Bearer " + D.token))
        r = w.getresponse()
        D.ok("PATCH", PV + "/" + name, {"metadata": {"labels": {"x": "1"}}},
             ctype="application/merge-patch+json")
        evs = [json.loads(x) for x in r.read().splitlines() if x.strip()]
        w.close()
        self.assertEqual([e["type"] for e in evs], ["ADDED", "MODIFIED"])
        self.assertIn("columnDefinitions", evs[0]["object"])
        self.assertNotIn("columnDefinitions", evs[1]["object"])
        self.assertGreater(int(evs[1]["object"]["metadata"]["resourceVersion"]), int(rv))


class TestFaultsAndLog(Base):
    def test_faults(self):
        D.ctl("POST", "fault", {"status": 429, "count": 2, "path": PV, "retry_after": 1})
        D.ctl("POST", "fault", {"status": 500, "path": "/api/v1/nodes", "method": "GET"})
        st, js, h = D.req("GET", PV)
        self.assertEqual(st, 429)
        self.assertEqual(h["Retry-After"], "1")
        self.assertEqual((js["reason"], js["details"]["retryAfterSeconds"]),
                         ("TooManyRequests", 1))
        self.assertEqual(D.req("GET", "/api/v1/nodes")[1]["reason"], "InternalError")
        self.assertEqual(D.req("GET", PV)[0], 429)
        self.assertEqual(D.req("GET", PV)[0], 200)
        self.assertEqual(D.ctl("GET", "fault")["faults"], [])
        D.ctl("POST", "fault", {"drop": True, "path": PV})
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            D.req("GET", PV)
        self.assertEqual(D.req("GET", PV)[0], 200)
        D.ctl("POST", "fault", {"status": 503, "watch": True})
        self.assertEqual(D.req("GET", PV)[0], 200)                  # not a watch
        self.assertEqual(D.req("GET", PV + "?watch=1")[0], 503)
        st, js, _ = D.req("POST", "/_double/fault", {"count": 1}, token=None)
        self.assertEqual(st, 400)

    def test_retry_after(self):
        # The API server's rules (k8s.io/apiserver): the priority-and-fairness
        # filter answers 429 with Retry-After and a plain-text body;
        # ErrorNegotiated adds Retry-After to any Status whose details carry
        # retryAfterSeconds (here the 504 "Too large resource version").
        D.ctl("POST", "fault", {"apf": True, "path": PV})
        st, body, h = D.req("GET", PV)
        self.assertEqual((st, h["Retry-After"], h["Content-Type"].split(";")[0]),
                         (429, "1", "text/plain"))
        self.assertIn("Too many requests", body)
        D.ctl("POST", "fault", {"apf": True, "path": PV, "retry_after": 7, "watch": True})
        st, body, h = D.req("GET", PV + "?watch=1")
        self.assertEqual((st, h["Retry-After"]), (429, "7"))
        st, js, h = D.req("GET", PV + "?resourceVersion=99999999")
        self.assertEqual((st, js["details"]["retryAfterSeconds"], h["Retry-After"]), (504, 1, "1"))
        st, js, h = D.req("GET", PV + "/nope")
        self.assertEqual(st, 404)
        self.assertNotIn("Retry-After", h)
        st, js, _ = D.req("POST", "/_double/fault", {"apf": True, "status": 503}, token=None)
        self.assertEqual(st, 400)

    def test_log(self):
        D.ctl("POST", "log/clear")
        D.req("GET", PV + "?labelSelector=a%3Db")
        D.req("GET", PV + "/nope")
        w = D.watch(PV + "?watch=1&timeoutSeconds=1")
        w.rest()
        log = D.ctl("GET", "log")["requests"]
        self.assertEqual([(e["method"], e["path"], e["code"], e["watch"]) for e in log],
                         [("GET", PV, 200, False), ("GET", PV + "/nope", 404, False),
                          ("GET", PV, 200, True)])
        self.assertEqual(log[0]["query"], "labelSelector=a%3Db")
        self.assertTrue(all(isinstance(e["time"], float) for e in log))
        file_log = D.log()
        self.assertEqual(file_log[-1]["seq"], log[-1]["seq"])
        self.assertEqual(file_log[-1]["query"], "watch=1&timeoutSeconds=1")


class TestControllers(Base):
    """The scheduler's volume binding, the PV controller, the protection finalizers."""

    def setUp(self):
        super().setUp()
        ensure_class(D)
        self.ns = make_ns()
        self.cls = uniq("cls")          # a class of its own: other tests' PVs stay out
        D.ok("POST", "/apis/storage.k8s.io/v1/storageclasses",
             {"metadata": {"name": self.cls}, "provisioner": "kubernetes.io/no-provisioner",
              "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"})

    def pv(self, name, **kw):
        kw.setdefault("annotations", {"pv.kubernetes.io/provisioned-by": "wrapd.io/wrapd"})
        D.ok("POST", PV, pv_body(name, cls=self.cls, **kw))
        return name

    def claim(self, name, size="4Gi", mode=None):
        D.ok("POST", ns_path(self.ns, "persistentvolumeclaims"),
             pvc_body(name, size, self.cls, mode))

    def pod(self, name, claim):
        D.ok("POST", ns_path(self.ns, "pods"), pod_body(name, claim))

    def get(self, res, name):
        if res == "pv":
            return D.ok("GET", PV + "/" + name)
        return D.ok("GET", ns_path(self.ns, res) + "/" + name)

    def test_seed_flow(self):
        small, fit, other = uniq("pv"), uniq("pv"), uniq("pv")
        self.pv(small, size="1Gi")
        self.pv(fit, size="8Gi")
        self.pv(other, size="5Gi", node="node-b")
        self.pv(uniq("pv"), size="20Gi")
        self.claim("data")
        c = self.get("persistentvolumeclaims", "data")
        self.assertEqual(c["status"]["phase"], "Pending")      # WaitForFirstConsumer
        self.assertIn("kubernetes.io/pvc-protection", c["metadata"]["finalizers"])
        evs = D.ok("GET", ns_path(self.ns, "events"))["items"]
        self.assertEqual([e["reason"] for e in evs], ["WaitForFirstConsumer"])
        self.pod("db", "data")
        pod = self.get("pods", "db")
        # node-a sorts first and has a fitting PV: the smallest that fits there
        self.assertEqual(pod["spec"]["nodeName"], "node-a")
        c = self.get("persistentvolumeclaims", "data")
        self.assertEqual(c["spec"]["volumeName"], fit)
        self.assertEqual(c["status"]["phase"], "Bound")
        self.assertEqual(c["status"]["capacity"], {"storage": "8Gi"})
        self.assertEqual(c["metadata"]["annotations"],
                         {"pv.kubernetes.io/bind-completed": "yes",
                          "pv.kubernetes.io/bound-by-controller": "yes"})
        pv = self.get("pv", fit)
        self.assertEqual(pv["status"]["phase"], "Bound")
        cr = pv["spec"]["claimRef"]
        self.assertEqual((cr["kind"], cr["namespace"], cr["name"], cr["uid"]),
                         ("PersistentVolumeClaim", self.ns, "data", c["metadata"]["uid"]))
        self.assertEqual(pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"],
                         "yes")
        self.assertNotIn("volume.kubernetes.io/selected-node", c["metadata"]["annotations"])
        for n in (small, other):
            self.assertEqual(self.get("pv", n)["status"]["phase"], "Available")
        # the claim is in use: deleting it leaves it Terminating until the pod goes
        D.ok("DELETE", ns_path(self.ns, "persistentvolumeclaims") + "/data")
        c = self.get("persistentvolumeclaims", "data")
        self.assertTrue(c["metadata"]["deletionTimestamp"])
        self.assertEqual(self.get("pv", fit)["status"]["phase"], "Bound")
        # a Bound PV is kept by pv-protection
        D.ok("DELETE", PV + "/" + fit)
        self.assertTrue(self.get("pv", fit)["metadata"]["deletionTimestamp"])
        D.ok("DELETE", ns_path(self.ns, "pods") + "/db")
        self.assertStatus(D.req("GET", ns_path(self.ns, "persistentvolumeclaims") + "/data"),
                          404, "NotFound")
        # Released, the claimRef kept; then pv-protection lets it go
        self.assertStatus(D.req("GET", PV + "/" + fit), 404, "NotFound")

    def test_release_phases(self):
        cases = {"wrapd": ({"pv.kubernetes.io/provisioned-by": "wrapd.io/wrapd"}, "Delete",
                           "Released"),
                 "none": ({}, "Delete", "Failed"),
                 "intree": ({"pv.kubernetes.io/provisioned-by": "kubernetes.io/no-provisioner"},
                            "Delete", "Failed"),
                 "retain": ({}, "Retain", "Released")}
        for tag, (ann, policy, want) in cases.items():
            with self.subTest(tag):
                name = self.pv(uniq(tag), annotations=ann, policy=policy)
                self.claim("c-" + tag)
                self.pod("p-" + tag, "c-" + tag)
                self.assertEqual(self.get("pv", name)["status"]["phase"], "Bound")
                D.ok("DELETE", ns_path(self.ns, "pods") + "/p-" + tag)
                D.ok("DELETE", ns_path(self.ns, "persistentvolumeclaims") + "/c-" + tag)
                pv = self.get("pv", name)
                self.assertEqual(pv["status"]["phase"], want)
                self.assertEqual(pv["spec"]["claimRef"]["name"], "c-" + tag)
                if want == "Failed":
                    self.assertEqual(pv["status"]["message"],
                                     'error getting deleter volume plugin for volume "%s": no '
                                     'deletable volume plugin matched' % name)
                    evs = D.ok("GET", "/api/v1/namespaces/default/events?fieldSelector="
                               "involvedObject.name%3D" + name)["items"]
                    self.assertEqual([e["reason"] for e in evs], ["VolumeFailedDelete"])
        # an admin (or wrapd) clearing the claimRef makes a Released PV Available again
        name = self.pv(uniq("reuse"))
        self.claim("c-reuse")
        self.pod("p-reuse", "c-reuse")
        D.ok("DELETE", ns_path(self.ns, "pods") + "/p-reuse")
        D.ok("DELETE", ns_path(self.ns, "persistentvolumeclaims") + "/c-reuse")
        self.assertEqual(self.get("pv", name)["status"]["phase"], "Released")
        out = D.ok("PATCH", PV + "/" + name, {"spec": {"claimRef": None}},
                   ctype="application/merge-patch+json")
        self.assertNotIn("claimRef", out["spec"])
        self.assertEqual(self.get("pv", name)["status"]["phase"], "Available")
        # a Released PV is deleted at once (pv-protection only holds Bound ones)
        D.ok("DELETE", PV + "/" + self.pv(uniq("del")))
        name = self.pv(uniq("rel"))
        self.claim("c-rel")
        self.pod("p-rel", "c-rel")
        D.ok("DELETE", ns_path(self.ns, "pods") + "/p-rel")
        D.ok("DELETE", ns_path(self.ns, "persistentvolumeclaims") + "/c-rel")
        D.ok("DELETE", PV + "/" + name)
        self.assertStatus(D.req("GET", PV + "/" + name), 404, "NotFound")

    def test_unschedulable_then_fits(self):
        self.pv(uniq("pv"), size="1Gi")
        self.pv(uniq("blk"), size="10Gi", mode="Block")
        self.claim("big", size="5Gi")
        self.pod("p", "big")
        pod = self.get("pods", "p")
        self.assertNotIn("nodeName", pod["spec"])
        cond = pod["status"]["conditions"][0]
        self.assertEqual((cond["type"], cond["status"], cond["reason"]),
                         ("PodScheduled", "False", "Unschedulable"))
        self.assertEqual(cond["message"], "0/2 nodes are available: 2 node(s) didn't find "
                                          "available persistent volumes to bind.")
        evs = D.ok("GET", ns_path(self.ns, "events") + "?fieldSelector=reason%3D"
                   "FailedScheduling")["items"]
        self.assertEqual(len(evs), 1)
        # the agent publishing a fitting PV (on node-b) lets the scheduler place the pod
        name = self.pv(uniq("pv"), size="6Gi", node="node-b")
        pod = self.get("pods", "p")
        self.assertEqual(pod["spec"]["nodeName"], "node-b")
        self.assertEqual(self.get("persistentvolumeclaims", "big")["spec"]["volumeName"], name)
        # Block claims get Block PVs
        self.claim("raw", size="1Gi", mode="Block")
        self.pod("q", "raw")
        self.assertEqual(self.get("pv", self.get("persistentvolumeclaims", "raw")["spec"][
            "volumeName"])["spec"]["volumeMode"], "Block")
        # a missing claim
        self.pod("r", "missing")
        self.assertIn('persistentvolumeclaim "missing" not found',
                      self.get("pods", "r")["status"]["conditions"][0]["message"])

    def test_nodes_from_pv_affinity(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp)              # no Node objects at all
        try:
            ensure_class(d)
            d.ok("POST", PV, pv_body("pv-x", node="worker-7"))
            d.ok("POST", ns_path("default", "persistentvolumeclaims"), pvc_body("c"))
            d.ok("POST", ns_path("default", "pods"), pod_body("p", "c"))
            self.assertEqual(d.ok("GET", ns_path("default", "pods") + "/p")["spec"]["nodeName"],
                             "worker-7")
            self.assertEqual(d.ok("GET", PV + "/pv-x")["status"]["phase"], "Bound")
        finally:
            d.stop()

    def test_no_controllers(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp, extra=["--no-controllers"])
        try:
            d.ok("POST", PV, pv_body("pv-x"))
            self.assertEqual(d.ok("GET", PV + "/pv-x")["status"]["phase"], "Pending")
            d.ctl("POST", "settings", {"controllers": True})
            self.assertEqual(d.ok("GET", PV + "/pv-x")["status"]["phase"], "Available")
        finally:
            d.stop()

    def test_immediate_binding_and_prebound(self):
        imm = uniq("imm")
        D.ok("POST", "/apis/storage.k8s.io/v1/storageclasses",
             {"metadata": {"name": imm}, "provisioner": "kubernetes.io/no-provisioner"})
        name = uniq("pv")
        D.ok("POST", PV, pv_body(name, cls=imm))
        D.ok("POST", ns_path(self.ns, "persistentvolumeclaims"), pvc_body("i", cls=imm))
        self.assertEqual(self.get("persistentvolumeclaims", "i")["spec"]["volumeName"], name)
        # a PV pre-bound by the user to a claim name binds to that claim only
        pre = uniq("pre")
        b = pv_body(pre, cls=self.cls)
        b["spec"]["claimRef"] = {"namespace": self.ns, "name": "mine"}
        D.ok("POST", PV, b)
        self.assertEqual(self.get("pv", pre)["status"]["phase"], "Available")
        self.claim("mine")
        c = self.get("persistentvolumeclaims", "mine")
        self.assertEqual(c["spec"]["volumeName"], pre)
        self.assertEqual(self.get("pv", pre)["spec"]["claimRef"]["uid"], c["metadata"]["uid"])


class TestTLS(Base):
    def test_https(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp, tls=CA)
        try:
            self.assertTrue(d.url.startswith("https://"))
            self.assertEqual(d.req("GET", PV)[0], 200)
            self.assertEqual(d.req("GET", PV, token=None)[0], 401)
            # a client that trusts another CA refuses the server
            ctx = ssl.create_default_context(cafile=os.path.join(CA, "other-ca.crt"))
            c = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=10, context=ctx)
            with self.assertRaises(ssl.SSLError):
                c.request("GET", "/version")
            c.close()
            # plain http to the TLS port gets no HTTP answer
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                c.request("GET", "/version")
                c.getresponse().read()
            c.close()
        finally:
            d.stop()

    def test_loopback_only(self):
        p = subprocess.run([PY, DOUBLE, "--listen", "0.0.0.0:0"], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("loopback only", p.stderr)


class TestShellHelper(Base):
    def test_helper(self):
        tmp = tempfile.mkdtemp(dir=TMP)
        script = r'''
. "$1"
kube_double_start "$2" "$3" kd --node n1 || exit 1
tok=$(cat "$kube_double_token_file")
[ ${#tok} -eq 48 ] || { echo "token: $tok"; exit 1; }
curl -sS -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $tok" "$kube_double_url/api/v1/nodes/n1"
curl -sS -o /dev/null -w '%{http_code}\n' "$kube_double_url/api/v1/nodes/n1"
kube_double_ctl POST compact >/dev/null || exit 1
kube_double_ctl GET nope >/dev/null && exit 1
echo "pid $kube_double_pid log $kube_double_log"
kube_double_stop
kill -0 "$kube_double_pid" 2>/dev/null && exit 1
echo stopped
# the DaemonSet's ClusterRole as the token's rights
kube_double_rbac_rules "$2" "$3/rbac.json" || exit 1
kube_double_start "$2" "$3" kd2 --rbac-rules "$3/rbac.json" || exit 1
tok=$(cat "$kube_double_token_file")
for p in /api/v1/persistentvolumes /api/v1/nodes/n1 /api/v1/nodes; do
	curl -sS -o /dev/null -w "$p %{http_code}\n" -H "Authorization: Bearer $tok" "$kube_double_url$p"
done
kube_double_stop
'''
        p = subprocess.run(["sh", "-c", script, "sh", HELPER, SRCDIR, tmp],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, WRAPD_PYTHON=PY))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(lines[:2], ["200", "401"])
        self.assertEqual(lines[-4], "stopped")
        # the ClusterRole grants PVs list and nodes get, not nodes list
        self.assertEqual(lines[-3:], ["/api/v1/persistentvolumes 200", "/api/v1/nodes/n1 404",
                                      "/api/v1/nodes 403"])
        log = [json.loads(x) for x in open(os.path.join(tmp, "kd.log"))]
        self.assertEqual([e["code"] for e in log], [200, 401])


@unittest.skipIf(KUBECTL is None, "kubectl is not installed")
class TestKubectl(Base):
    """The real client against the double."""

    def kubectl(self, *args, d=None, check=True, inp=None):
        d = d or D
        cmd = [KUBECTL, "--server", d.url, "--request-timeout=30s"]
        if d.token:
            cmd += ["--token", d.token]
        if d.tls:
            cmd += ["--certificate-authority", os.path.join(d.tls, "ca.crt")]
        env = dict(os.environ, HOME=self.home, KUBECONFIG=os.path.join(self.home, "none"))
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                           input=inp, env=env)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s: %s %s" % (" ".join(args), p.stdout, p.stderr))
        return p

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(dir=TMP)
        cls.home = os.path.join(cls.tmp, "home")
        os.makedirs(cls.home)
        cls.d = DoubleProc(cls.tmp, tls=CA, extra=["--node", "node-a"])

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def test_create_get_patch_delete(self):
        d = self.d
        f = os.path.join(self.tmp, "pv.json")
        with open(f, "w") as fh:
            json.dump(pv_body("kc-pv"), fh)
        p = self.kubectl("create", "-f", f, "--validate=false", d=d)
        self.assertEqual(p.stdout.strip(), "persistentvolume/kc-pv created")
        p = self.kubectl("create", "-f", f, "--validate=false", d=d, check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('persistentvolumes "kc-pv" already exists', p.stderr)
        js = json.loads(self.kubectl("get", "pv", "-o", "json", d=d).stdout)
        self.assertEqual([i["metadata"]["name"] for i in js["items"]], ["kc-pv"])
        self.assertEqual(js["items"][0]["status"]["phase"], "Available")
        p = self.kubectl("patch", "pv", "kc-pv", "--type=merge", "-p",
                         '{"metadata":{"labels":{"x":"y"}}}', d=d)
        self.assertIn("patched", p.stdout)
        js = json.loads(self.kubectl("get", "pv", "kc-pv", "-o", "json", d=d).stdout)
        self.assertEqual(js["metadata"]["labels"]["x"], "y")
        self.kubectl("label", "pv", "kc-pv", "z=1", d=d)            # a strategic-merge patch
        self.assertEqual(d.ok("GET", PV + "/kc-pv")["metadata"]["labels"]["z"], "1")
        self.assertEqual(self.kubectl("get", "pv", "-l", "x=y", "-o", "name", d=d).stdout,
                         "persistentvolume/kc-pv\n")
        p = self.kubectl("get", "pv", "nope", d=d, check=False)
        self.assertIn('persistentvolumes "nope" not found', p.stderr)
        p = self.kubectl("delete", "pv", "kc-pv", d=d)
        self.assertEqual(p.stdout.strip(), 'persistentvolume "kc-pv" deleted')
        self.assertEqual(d.req("GET", PV + "/kc-pv")[0], 404)
        p = self.kubectl("create", "-f", "-", "--validate=false", d=d, check=False,
                         inp=json.dumps(pv_body("Bad_Name")))
        self.assertIn("is invalid", p.stderr)

    def test_watch(self):
        d = self.d
        env = dict(os.environ, HOME=self.home, KUBECONFIG=os.path.join(self.home, "none"))
        cmd = [KUBECTL, "--server", d.url, "--token", d.token, "--certificate-authority",
               os.path.join(CA, "ca.crt"), "get", "pv", "-l", "t=kw", "-w", "--output-watch-events",
               "-o", "jsonpath={.type} {.object.metadata.name} {.object.status.phase}{\"\\n\"}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        try:
            for _ in range(300):
                if d.ctl("GET", "state")["watches"]:
                    break
                time.sleep(0.05)
            else:
                self.fail("kubectl did not start a watch")
            d.ok("POST", PV, pv_body("kw-pv", labels={"t": "kw"}))
            d.ok("DELETE", PV + "/kw-pv")
            lines = [proc.stdout.readline().strip() for _ in range(4)]
        finally:
            proc.terminate()
            proc.wait(10)
        self.assertEqual(lines, ["ADDED kw-pv Pending", "MODIFIED kw-pv Available",
                                 "MODIFIED kw-pv Available", "DELETED kw-pv Available"])
        log = [e for e in d.ctl("GET", "log")["requests"] if e["watch"]]
        self.assertTrue(log and "resourceVersion=" in log[-1]["query"])

    def test_plain_http_without_token(self):
        # kubectl never sends a bearer token over plain http (kubernetes/kubectl#744)
        tmp = tempfile.mkdtemp(dir=TMP)
        d = DoubleProc(tmp, token=None)
        try:
            p = self.kubectl("get", "nodes", "-o", "json", d=d)
            self.assertEqual(json.loads(p.stdout)["items"], [])
            p = self.kubectl("get", "pv", "-o", "json", d=d)
            self.assertEqual(json.loads(p.stdout)["kind"], "List")
        finally:
            d.stop()
        d = DoubleProc(tmp)
        try:
            p = self.kubectl("get", "pv", d=d, check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("provide credentials", p.stderr)
        finally:
            d.stop()

    def test_seed_example(self):
        d = self.d
        ensure_class(d)
        d.ok("POST", PV, pv_body("seed-pv", size="4Gi",
                                 annotations={"pv.kubernetes.io/provisioned-by":
                                              "wrapd.io/wrapd"}))
        seed = os.path.join(self.tmp, "seed.yaml")
        with open(seed, "w") as f:
            f.write(SEED)
        p = self.kubectl("create", "-f", seed, "--validate=false", d=d)
        self.assertEqual(p.stdout.split("\n")[:2],
                         ["persistentvolumeclaim/my-encrypted-volume-claim created",
                          "pod/my-database created"])
        js = json.loads(self.kubectl("get", "pvc", "my-encrypted-volume-claim", "-o", "json",
                                     d=d).stdout)
        self.assertEqual((js["status"]["phase"], js["spec"]["volumeName"]),
                         ("Bound", "seed-pv"))
        # the human output: the server's Table, as kubectl prints it
        lines = self.kubectl("get", "pvc", d=d).stdout.splitlines()
        self.assertEqual(lines[0].split()[:4], ["NAME", "STATUS", "VOLUME", "CAPACITY"])
        self.assertEqual(lines[1].split()[:4], ["my-encrypted-volume-claim", "Bound", "seed-pv",
                                                "4Gi"])
        row = [x for x in self.kubectl("get", "pv", d=d).stdout.splitlines()
               if x.startswith("seed-pv ")][0].split()
        self.assertEqual(row[1:6], ["4Gi", "RWO", "Delete", "Bound",
                                    "default/my-encrypted-volume-claim"])
        self.kubectl("delete", "-f", seed, d=d)
        pv = d.ok("GET", PV + "/seed-pv")
        self.assertEqual(pv["status"]["phase"], "Released")
        self.assertEqual(pv["spec"]["claimRef"]["name"], "my-encrypted-volume-claim")


SEED = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: my-encrypted-volume-claim}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 4Gi}}
  storageClassName: encrypted
---
apiVersion: v1
kind: Pod
metadata: {name: my-database}
spec:
  containers:
    - name: postgres
      image: postgres
      volumeMounts: [{mountPath: /var/lib/postgresql/data, name: my-encrypted-volume}]
  volumes:
    - name: my-encrypted-volume
      persistentVolumeClaim: {claimName: my-encrypted-volume-claim}
"""


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = max(0, result.testsRun - failed - len(result.skipped))
    if result.skipped:
        print("%d skipped" % len(result.skipped))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
