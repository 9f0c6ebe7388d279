#!/usr/bin/python3
"""Tests of the Vault double itself.

Run: /usr/bin/python3 tests/vault-double/test_double.py
Starts the double on ephemeral loopback ports and talks HTTP to it.  The last line of
output is "N passed, M failed"; the exit status is non-zero on any failure.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
DOUBLE = os.path.join(HERE, "vault-double")
MAKE_CA = os.path.join(HERE, "make-test-ca")

DERIVED_MSG = ("missing 'context' for key derivation; the key was created using a derived key, "
               "which means additional, per-request information must be included in order to "
               "perform operations with the key")
TOO_OLD = "ciphertext or signature version is disallowed by policy (too old)"


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


class DoubleProc:
    """A running vault-double subprocess."""

    def __init__(self, tmp, extra=(), tls=None, redirect=True, redirect_tls=False):
        self.tmp = tmp
        tag = uuid.uuid4().hex[:8]
        self.port_file = os.path.join(tmp, "port-" + tag)
        self.rport_file = os.path.join(tmp, "rport-" + tag)
        self.log_file = os.path.join(tmp, "log-" + tag)
        cmd = [DOUBLE, "--dev", "--listen", "127.0.0.1:0", "--port-file", self.port_file,
               "--log", self.log_file]
        if redirect:
            cmd += ["--redirect-listen", "127.0.0.1:0", "--redirect-port-file", self.rport_file]
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        if redirect_tls:
            cmd += ["--redirect-tls"]
        cmd += list(extra)
        self.out = open(os.path.join(tmp, "out-" + tag), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT)
        # Bounded wait for the port file (written after the sockets listen).
        for _ in range(200):
            if os.path.exists(self.port_file):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("vault-double exited: %s" % self.read_out())
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError("vault-double did not start")
        self.port = int(open(self.port_file).read())
        self.rport = int(open(self.rport_file).read()) if redirect else None
        scheme = "https" if tls else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)
        # the banner is flushed right after the port file; wait for it, bounded
        for _ in range(200):
            if "Development mode should NOT" in self.read_out():
                break
            time.sleep(0.05)
        self.root = None
        for line in self.read_out().splitlines():
            if line.startswith("Root Token: "):
                self.root = line[len("Root Token: "):].strip()

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


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Client:
    def __init__(self, base, token=None, sslctx=None):
        self.base = base
        self.token = token
        handlers = [NoRedirect()]
        if sslctx is not None:
            handlers.append(urllib.request.HTTPSHandler(context=sslctx))
        self.opener = urllib.request.build_opener(*handlers)

    def req(self, method, path, body=None, token=..., headers=None):
        """Returns (status, json-or-None, headers)."""
        token = self.token if token is ... else token
        data = None if body is None else json.dumps(body).encode()
        r = urllib.request.Request(self.base + path, data=data, method=method)
        r.add_header("X-Vault-Request", "true")
        if data is not None:
            r.add_header("Content-Type", "application/json")
        if token:
            r.add_header("X-Vault-Token", token)
        for k, v in (headers or {}).items():
            r.add_header(k, v)
        try:
            with self.opener.open(r, timeout=30) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None), resp.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                js = json.loads(raw) if raw else None
            except ValueError:
                js = raw
            return e.code, js, e.headers

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body if body is not None else {}, **kw)

    def ok(self, method, path, body=None, **kw):
        st, js, _ = self.req(method, path, body, **kw)
        if st not in (200, 204):
            raise AssertionError("%s %s -> %s %s" % (method, path, st, js))
        return js


TMP = None
D = None       # the shared plain-HTTP double
C = None       # root client for D


def setUpModule():
    global TMP, D, C
    TMP = tempfile.mkdtemp(prefix="vault-double-test-")
    D = DoubleProc(TMP, extra=["--create-key", "wrapd", "--create-key", "plain:nonderived"])
    C = Client(D.url, D.root)


def tearDownModule():
    if D is not None:
        D.stop()
    if TMP:
        shutil.rmtree(TMP, ignore_errors=True)


def ctl(method, path, body=None, d=None):
    d = d or D
    c = Client("http://127.0.0.1:%d" % d.port) if not d.url.startswith("https") else None
    if c is None:
        ctx = ssl.create_default_context(cafile=os.path.join(d.tmp, "ca", "ca.crt"))
        c = Client(d.url, sslctx=ctx)
    st, js, _ = c.req(method, "/_double/" + path, body, token=None)
    if st != 200:
        raise AssertionError("control %s %s -> %s %s" % (method, path, st, js))
    return js


def new_key(name=None, derived=True):
    name = name or "k-" + uuid.uuid4().hex[:10]
    C.ok("POST", "/v1/transit/keys/" + name, {"type": "aes256-gcm96", "derived": derived})
    return name


class Base(unittest.TestCase):
    def setUp(self):
        ctl("DELETE", "fault")
        ctl("POST", "unseal")
        ctl("POST", "clock", {"freeze": True})

    def tearDown(self):
        ctl("POST", "clock", {"freeze": False})

    def assertErr(self, res, status, msg=None):
        st, js, _ = res
        self.assertEqual(st, status, js)
        if msg is not None:
            self.assertIn("errors", js)
            self.assertEqual(js["errors"], [msg])


class TestBasics(Base):
    def test_banner_and_root_token(self):
        self.assertTrue(D.root and D.root.startswith("hvs."))
        self.assertIn("export VAULT_ADDR='%s'" % D.url, D.read_out())
        js = C.ok("GET", "/v1/auth/token/lookup-self")
        self.assertEqual(js["data"]["policies"], ["root"])
        self.assertIsNone(js["data"]["expire_time"])

    def test_health(self):
        st, js, _ = C.get("/v1/sys/health", token=None)
        self.assertEqual(st, 200)
        for k in ("initialized", "sealed", "standby", "version", "cluster_name",
                  "server_time_utc"):
            self.assertIn(k, js)
        self.assertFalse(js["sealed"])
        st, js, _ = C.get("/v1/sys/health?activecode=299", token=None)
        self.assertEqual(st, 299)
        st, js, _ = C.req("HEAD", "/v1/sys/health", token=None)
        self.assertEqual(st, 200)

    def test_health_modes(self):
        try:
            for mode, plain, ok_q, ok_code in (("standby", 429, "standbyok=true", 200),
                                               ("perfstandby", 473, "perfstandbyok=true", 200),
                                               ("uninit", 501, "uninitcode=200", 200),
                                               ("drsecondary", 472, "drsecondarycode=299", 299)):
                ctl("POST", "health", {"mode": mode})
                self.assertEqual(C.get("/v1/sys/health", token=None)[0], plain, mode)
                self.assertEqual(C.get("/v1/sys/health?" + ok_q, token=None)[0], ok_code, mode)
            ctl("POST", "health", {"mode": "standby"})
            self.assertEqual(C.get("/v1/sys/health?standbycode=200", token=None)[0], 200)
            self.assertTrue(C.get("/v1/sys/health", token=None)[1]["standby"])
        finally:
            ctl("POST", "health", {"mode": "active"})

    def test_envelope(self):
        js = C.ok("GET", "/v1/transit/keys/wrapd")
        for k in ("request_id", "lease_id", "renewable", "lease_duration", "data",
                  "wrap_info", "warnings", "auth"):
            self.assertIn(k, js)

    def test_missing_and_bad_token(self):
        self.assertErr(C.get("/v1/transit/keys/wrapd", token=None), 403, "permission denied")
        self.assertErr(C.get("/v1/transit/keys/wrapd", token="hvs.nope"), 403,
                       "permission denied")
        self.assertErr(C.get("/v1/auth/token/lookup-self", token=None), 403,
                       "permission denied")

    def test_bearer_token_accepted(self):
        st, js, _ = C.get("/v1/transit/keys/wrapd", token=None,
                          headers={"Authorization": "Bearer " + D.root})
        self.assertEqual(st, 200)

    def test_put_equals_post(self):
        name = "k-" + uuid.uuid4().hex[:8]
        st, js, _ = C.req("PUT", "/v1/transit/keys/" + name, {"derived": True})
        self.assertEqual(st, 200)
        self.assertTrue(js["data"]["derived"])

    def test_unknown_route(self):
        st, js, _ = C.get("/v1/nothing/here")
        self.assertEqual(st, 404)

    def test_bad_json(self):
        st, js, _ = C.req("POST", "/v1/transit/encrypt/wrapd", None,
                          headers={"Content-Type": "application/json"})
        # empty body is fine (missing plaintext), invalid JSON is 400
        self.assertEqual(st, 400)
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
        c.request("POST", "/v1/transit/encrypt/wrapd", body=b"{nope",
                  headers={"X-Vault-Token": D.root})
        r = c.getresponse()
        self.assertEqual(r.status, 400)
        self.assertIn("failed to parse JSON input", json.loads(r.read())["errors"][0])
        c.close()

    def test_clock(self):
        a = ctl("GET", "clock")["now"]
        b = ctl("POST", "clock", {"advance": 0})["now"]
        self.assertGreaterEqual(b, a)
        self.assertLess(abs(a - time.time()), 10 * 365 * 86400 + 60)


class TestTransit(Base):
    def test_key_read(self):
        name = new_key()
        d = C.ok("GET", "/v1/transit/keys/" + name)["data"]
        self.assertEqual(d["latest_version"], 1)
        self.assertEqual(d["min_decryption_version"], 1)
        self.assertEqual(d["min_encryption_version"], 0)
        self.assertTrue(d["derived"])
        self.assertEqual(d["kdf"], "hkdf_sha256")
        self.assertEqual(d["type"], "aes256-gcm96")
        self.assertEqual(d["name"], name)
        self.assertEqual(list(d["keys"]), ["1"])
        self.assertIsInstance(d["keys"]["1"], int)
        self.assertFalse(d["deletion_allowed"])
        d2 = C.ok("GET", "/v1/transit/keys/plain")["data"]
        self.assertFalse(d2["derived"])
        self.assertNotIn("kdf", d2)

    def test_missing_key_404(self):
        st, js, _ = C.get("/v1/transit/keys/does-not-exist")
        self.assertEqual(st, 404)
        self.assertEqual(js, {"errors": []})

    def test_datakey_512(self):
        ctx = b64(b"volume-uuid-1")
        d = C.ok("POST", "/v1/transit/datakey/plaintext/wrapd",
                 {"bits": 512, "context": ctx})["data"]
        self.assertEqual(len(unb64(d["plaintext"])), 64)
        self.assertTrue(d["ciphertext"].startswith("vault:v1:"))
        blob = unb64(d["ciphertext"][len("vault:v1:"):])
        self.assertEqual(len(blob), 92)            # nonce 12 + 64 + tag 16
        self.assertEqual(d["key_version"], 1)
        # decrypt gives the same 64 bytes back
        p = C.ok("POST", "/v1/transit/decrypt/wrapd",
                 {"ciphertext": d["ciphertext"], "context": ctx})["data"]["plaintext"]
        self.assertEqual(p, d["plaintext"])
        # wrapped omits the plaintext
        d = C.ok("POST", "/v1/transit/datakey/wrapped/wrapd",
                 {"bits": 256, "context": ctx})["data"]
        self.assertNotIn("plaintext", d)
        self.assertEqual(len(unb64(d["ciphertext"][9:])), 12 + 32 + 16)
        d = C.ok("POST", "/v1/transit/datakey/plaintext/wrapd",
                 {"bits": 128, "context": ctx})["data"]
        self.assertEqual(len(unb64(d["plaintext"])), 16)

    def test_datakey_bad_bits(self):
        for bits in (100, 1024, 0):
            self.assertErr(C.post("/v1/transit/datakey/plaintext/wrapd",
                                  {"bits": bits, "context": b64(b"x")}), 400,
                           "invalid bit length")

    def test_derived_without_context(self):
        self.assertErr(C.post("/v1/transit/datakey/plaintext/wrapd", {"bits": 512}), 400,
                       DERIVED_MSG)
        self.assertErr(C.post("/v1/transit/encrypt/wrapd", {"plaintext": b64(b"hi")}), 400,
                       DERIVED_MSG)
        ct = C.ok("POST", "/v1/transit/encrypt/wrapd",
                  {"plaintext": b64(b"hi"), "context": b64(b"c")})["data"]["ciphertext"]
        self.assertErr(C.post("/v1/transit/decrypt/wrapd", {"ciphertext": ct}), 400,
                       DERIVED_MSG)

    def test_hkdf_context_binds(self):
        name = new_key()
        pt = b64(b"the same plaintext")
        ca, cb = b64(b"context-A"), b64(b"context-B")
        cta = C.ok("POST", "/v1/transit/encrypt/" + name,
                   {"plaintext": pt, "context": ca})["data"]["ciphertext"]
        ctb = C.ok("POST", "/v1/transit/encrypt/" + name,
                   {"plaintext": pt, "context": cb})["data"]["ciphertext"]
        self.assertNotEqual(cta, ctb)
        self.assertErr(C.post("/v1/transit/decrypt/" + name, {"ciphertext": cta, "context": cb}),
                       400, "cipher: message authentication failed")
        self.assertErr(C.post("/v1/transit/decrypt/" + name, {"ciphertext": ctb, "context": ca}),
                       400, "cipher: message authentication failed")
        for ct, cx in ((cta, ca), (ctb, cb)):
            d = C.ok("POST", "/v1/transit/decrypt/" + name, {"ciphertext": ct, "context": cx})
            self.assertEqual(d["data"]["plaintext"], pt)

    def test_ciphertext_layout(self):
        name = new_key()
        pt = os.urandom(37)
        cts = set()
        for _ in range(3):
            ct = C.ok("POST", "/v1/transit/encrypt/" + name,
                      {"plaintext": b64(pt), "context": b64(b"c")})["data"]["ciphertext"]
            self.assertTrue(ct.startswith("vault:v1:"))
            blob = unb64(ct.split(":", 2)[2])
            self.assertEqual(len(blob), 12 + len(pt) + 16)
            cts.add(blob[:12])
        self.assertEqual(len(cts), 3, "nonces must be fresh")
        # tampering with any part (nonce, body, tag) fails authentication
        for pos in (0, 12, 12 + len(pt) + 15):
            b = bytearray(blob)
            b[pos] ^= 1
            bad = "vault:v1:" + b64(bytes(b))
            self.assertErr(C.post("/v1/transit/decrypt/" + name,
                                  {"ciphertext": bad, "context": b64(b"c")}),
                           400, "cipher: message authentication failed")

    def test_nonderived_ignores_context(self):
        pt = b64(b"secret")
        ct = C.ok("POST", "/v1/transit/encrypt/plain",
                  {"plaintext": pt, "context": b64(b"A")})["data"]["ciphertext"]
        d = C.ok("POST", "/v1/transit/decrypt/plain", {"ciphertext": ct, "context": b64(b"B")})
        self.assertEqual(d["data"]["plaintext"], pt)
        d = C.ok("POST", "/v1/transit/decrypt/plain", {"ciphertext": ct})
        self.assertEqual(d["data"]["plaintext"], pt)

    def test_decrypt_errors(self):
        name = new_key()
        cx = b64(b"c")
        self.assertErr(C.post("/v1/transit/decrypt/" + name,
                              {"ciphertext": "abc", "context": cx}),
                       400, "invalid ciphertext: no prefix")
        self.assertErr(C.post("/v1/transit/decrypt/" + name,
                              {"ciphertext": "vault:v9:AAAA", "context": cx}),
                       400, "invalid ciphertext: version is too new")
        self.assertErr(C.post("/v1/transit/decrypt/nokey-" + name,
                              {"ciphertext": "vault:v1:AAAA", "context": cx}),
                       400, "encryption key not found")
        self.assertErr(C.post("/v1/transit/datakey/plaintext/nokey-" + name,
                              {"context": cx}), 400, "encryption key not found")
        self.assertErr(C.post("/v1/transit/rewrap/nokey-" + name,
                              {"ciphertext": "vault:v1:AAAA", "context": cx}),
                       400, "encryption key not found")

    def test_rotate_and_min_decryption_version(self):
        name = new_key()
        cx = b64(b"vol")
        ct1 = C.ok("POST", "/v1/transit/datakey/wrapped/" + name,
                   {"bits": 512, "context": cx})["data"]["ciphertext"]
        st, js, _ = C.post("/v1/transit/keys/%s/rotate" % name)
        self.assertEqual(st, 200)
        self.assertEqual(js["data"]["latest_version"], 2)
        self.assertEqual(sorted(js["data"]["keys"]), ["1", "2"])
        d = C.ok("POST", "/v1/transit/datakey/plaintext/" + name,
                 {"bits": 512, "context": cx})["data"]
        self.assertTrue(d["ciphertext"].startswith("vault:v2:"))
        self.assertEqual(d["key_version"], 2)
        # v1 still decrypts
        C.ok("POST", "/v1/transit/decrypt/" + name, {"ciphertext": ct1, "context": cx})
        # rewrap v1 -> v2, same plaintext
        rw = C.ok("POST", "/v1/transit/rewrap/" + name,
                  {"ciphertext": ct1, "context": cx})["data"]
        self.assertTrue(rw["ciphertext"].startswith("vault:v2:"))
        self.assertEqual(rw["key_version"], 2)
        p1 = C.ok("POST", "/v1/transit/decrypt/" + name,
                  {"ciphertext": ct1, "context": cx})["data"]["plaintext"]
        p2 = C.ok("POST", "/v1/transit/decrypt/" + name,
                  {"ciphertext": rw["ciphertext"], "context": cx})["data"]["plaintext"]
        self.assertEqual(p1, p2)
        # raise min_decryption_version: v1 is refused with Vault's message
        st, js, _ = C.post("/v1/transit/keys/%s/config" % name, {"min_decryption_version": 2})
        self.assertIn(st, (200, 204))
        self.assertEqual(C.ok("GET", "/v1/transit/keys/" + name)["data"]
                         ["min_decryption_version"], 2)
        self.assertErr(C.post("/v1/transit/decrypt/" + name, {"ciphertext": ct1, "context": cx}),
                       400, TOO_OLD)
        self.assertErr(C.post("/v1/transit/rewrap/" + name, {"ciphertext": ct1, "context": cx}),
                       400, TOO_OLD)
        C.ok("POST", "/v1/transit/decrypt/" + name, {"ciphertext": rw["ciphertext"],
                                                     "context": cx})
        self.assertErr(C.post("/v1/transit/keys/%s/config" % name, {"min_decryption_version": 5}),
                       400, "cannot set min decryption version of 5, latest key version is 2")

    def test_batch_decrypt(self):
        name = new_key()
        items, pts = [], []
        for i in range(3):
            pt = b64(os.urandom(64))
            cx = b64(("vol-%d" % i).encode())
            ct = C.ok("POST", "/v1/transit/encrypt/" + name,
                      {"plaintext": pt, "context": cx})["data"]["ciphertext"]
            items.append({"ciphertext": ct, "context": cx})
            pts.append(pt)
        st, js, _ = C.post("/v1/transit/decrypt/" + name, {"batch_input": items})
        self.assertEqual(st, 200)
        self.assertEqual([r["plaintext"] for r in js["data"]["batch_results"]], pts)
        bad = [dict(items[0]), {"ciphertext": items[1]["ciphertext"], "context": b64(b"x")},
               dict(items[2]), {"ciphertext": "garbage", "context": b64(b"y")}]
        st, js, _ = C.post("/v1/transit/decrypt/" + name, {"batch_input": bad})
        self.assertEqual(st, 400)
        res = js["data"]["batch_results"]
        self.assertEqual(len(res), 4)
        self.assertEqual(res[0], {"plaintext": pts[0]})
        self.assertEqual(res[1], {"error": "cipher: message authentication failed"})
        self.assertEqual(res[2], {"plaintext": pts[2]})
        self.assertEqual(res[3], {"error": "invalid ciphertext: no prefix"})
        self.assertNotIn("errors", js)
        st, js, _ = C.post("/v1/transit/decrypt/" + name,
                           {"batch_input": bad, "partial_failure_response_code": 207})
        self.assertEqual(st, 207)
        self.assertErr(C.post("/v1/transit/decrypt/" + name, {"batch_input": []}), 400,
                       "missing batch input to process")

    def test_batch_encrypt_and_rewrap(self):
        name = new_key()
        inp = [{"plaintext": b64(b"a"), "context": b64(b"1")},
               {"plaintext": b64(b"b")},
               {"plaintext": b64(b"c"), "context": b64(b"3"), "reference": "r3"}]
        st, js, _ = C.post("/v1/transit/encrypt/" + name, {"batch_input": inp})
        self.assertEqual(st, 400)
        res = js["data"]["batch_results"]
        self.assertEqual(res[0]["key_version"], 1)
        self.assertTrue(res[0]["ciphertext"].startswith("vault:v1:"))
        self.assertEqual(res[1], {"error": DERIVED_MSG})
        self.assertEqual(res[2]["reference"], "r3")
        C.ok("POST", "/v1/transit/keys/%s/rotate" % name)
        rw = [{"ciphertext": res[0]["ciphertext"], "context": b64(b"1")},
              {"ciphertext": res[2]["ciphertext"], "context": b64(b"3")}]
        st, js, _ = C.post("/v1/transit/rewrap/" + name, {"batch_input": rw})
        self.assertEqual(st, 200)
        for r in js["data"]["batch_results"]:
            self.assertTrue(r["ciphertext"].startswith("vault:v2:"))
            self.assertEqual(r["key_version"], 2)

    def test_delete_key(self):
        name = new_key()
        self.assertErr(C.req("DELETE", "/v1/transit/keys/" + name), 400,
                       "error deleting policy %s: deletion is not allowed for this key" % name)
        C.ok("POST", "/v1/transit/keys/%s/config" % name, {"deletion_allowed": True})
        st, _, _ = C.req("DELETE", "/v1/transit/keys/" + name)
        self.assertEqual(st, 204)
        self.assertEqual(C.get("/v1/transit/keys/" + name)[0], 404)
        self.assertErr(C.req("DELETE", "/v1/transit/keys/" + name), 400,
                       "error deleting policy %s: could not delete key; not found" % name)
        self.assertErr(C.post("/v1/transit/keys/%s/rotate" % name), 400, "key not found")
        self.assertErr(C.post("/v1/transit/keys/%s/config" % name, {}), 400,
                       "no existing key named %s could be found" % name)

    def test_create_existing_key_warns(self):
        st, js, _ = C.post("/v1/transit/keys/wrapd", {"derived": True})
        self.assertEqual(st, 200)
        self.assertEqual(js["warnings"], ["key wrapd already existed"])
        self.assertEqual(js["data"]["name"], "wrapd")

    def test_bad_base64(self):
        st, js, _ = C.post("/v1/transit/encrypt/wrapd", {"plaintext": "not base64!",
                                                         "context": b64(b"c")})
        self.assertEqual(st, 400)
        self.assertTrue(js["errors"][0].startswith("illegal base64 data at input byte"))

    def test_extra_transit_mount(self):
        st, _, _ = C.post("/v1/sys/mounts/transit2", {"type": "transit"})
        self.assertEqual(st, 204)
        C.ok("POST", "/v1/transit2/keys/wrapd", {"derived": True})
        d = C.ok("POST", "/v1/transit2/datakey/plaintext/wrapd",
                 {"bits": 512, "context": b64(b"c")})["data"]
        # a different mount is a different key
        self.assertErr(C.post("/v1/transit/decrypt/wrapd",
                              {"ciphertext": d["ciphertext"], "context": b64(b"c")}),
                       400, "cipher: message authentication failed")


LEAST_PRIV = '''
# wrapd agent, least privilege
path "transit/datakey/plaintext/wrapd" { capabilities = ["update"] }
path "transit/decrypt/wrapd"           { capabilities = ["update"] }
path "transit/rewrap/wrapd"            { capabilities = ["update"] }
path "transit/keys/wrapd"              { capabilities = ["read"] }
'''


class TestPolicies(Base):
    def make_token(self, policies, **kw):
        body = {"policies": policies}
        body.update(kw)
        js = C.ok("POST", "/v1/auth/token/create", body)
        return js["auth"]["client_token"], js

    def test_least_privilege(self):
        st, _, _ = C.req("PUT", "/v1/sys/policies/acl/wrapd-agent", {"policy": LEAST_PRIV})
        self.assertEqual(st, 204)
        got = C.ok("GET", "/v1/sys/policies/acl/wrapd-agent")["data"]
        self.assertEqual(got["policy"], LEAST_PRIV)
        tok, js = self.make_token(["wrapd-agent"])
        self.assertEqual(js["auth"]["policies"], ["default", "wrapd-agent"])
        u = Client(D.url, tok)
        cx = b64(b"c")
        d = u.ok("POST", "/v1/transit/datakey/plaintext/wrapd", {"bits": 512, "context": cx})
        u.ok("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": d["data"]["ciphertext"],
                                                   "context": cx})
        u.ok("POST", "/v1/transit/rewrap/wrapd", {"ciphertext": d["data"]["ciphertext"],
                                                  "context": cx})
        u.ok("GET", "/v1/transit/keys/wrapd")
        u.ok("GET", "/v1/auth/token/lookup-self")           # from the default policy
        for method, path, body in (
                ("POST", "/v1/transit/keys/wrapd/rotate", {}),
                ("POST", "/v1/transit/keys/wrapd", {}),
                ("POST", "/v1/transit/encrypt/wrapd", {"plaintext": "", "context": cx}),
                ("POST", "/v1/transit/datakey/wrapped/wrapd", {"context": cx}),
                ("POST", "/v1/transit/decrypt/plain", {"ciphertext": "x"}),
                ("GET", "/v1/transit/keys/plain", None),
                ("PUT", "/v1/sys/policies/acl/evil", {"policy": "path \"*\" {}"}),
                ("POST", "/v1/auth/token/create", {}),
                ("GET", "/v1/sys/policies/acl/wrapd-agent", None)):
            self.assertErr(u.req(method, path, body), 403, "permission denied")

    def test_globs_and_plus(self):
        C.ok("PUT", "/v1/sys/policy/globby", {"policy": '''
            path "transit/keys/*" { capabilities = ["read"] }
            path "transit/+/wrapd" { capabilities = ["update"] }
            path "transit/keys/secret" { capabilities = ["deny"] }
            /* comments */ // too
        '''})
        tok, _ = self.make_token(["globby"])
        u = Client(D.url, tok)
        u.ok("GET", "/v1/transit/keys/wrapd")
        u.ok("GET", "/v1/transit/keys/plain")
        self.assertErr(u.get("/v1/transit/keys/secret"), 403)
        u.ok("POST", "/v1/transit/decrypt/wrapd",
             {"ciphertext": C.ok("POST", "/v1/transit/encrypt/wrapd",
                                 {"plaintext": "", "context": "YQ=="})["data"]["ciphertext"],
              "context": "YQ=="})
        self.assertErr(u.post("/v1/transit/datakey/plaintext/wrapd", {"context": "YQ=="}), 403)
        self.assertErr(u.post("/v1/transit/decrypt/plain", {"ciphertext": "x"}), 403)

    def test_bad_policy_rejected(self):
        st, js, _ = C.req("PUT", "/v1/sys/policies/acl/bad",
                          {"policy": 'path "x" { capabilities = ["fly"] }'})
        self.assertEqual(st, 400)
        st, js, _ = C.req("PUT", "/v1/sys/policies/acl/bad", {"policy": 'path "x" {'})
        self.assertEqual(st, 400)

    def test_child_policies_subset(self):
        C.ok("PUT", "/v1/sys/policies/acl/creator", {"policy": '''
            path "auth/token/create" { capabilities = ["update"] }'''})
        tok, _ = self.make_token(["creator"])
        u = Client(D.url, tok)
        self.assertErr(u.post("/v1/auth/token/create", {"policies": ["root"]}), 400)
        self.assertErr(u.post("/v1/auth/token/create", {"policies": ["wrapd-agent"]}), 400)
        js = u.ok("POST", "/v1/auth/token/create", {"policies": ["creator"], "ttl": "1h"})
        self.assertEqual(js["auth"]["lease_duration"], 3600)

    def test_sys_auth_needs_sudo(self):
        C.ok("PUT", "/v1/sys/policies/acl/almost", {"policy": '''
            path "sys/auth/*" { capabilities = ["create", "update", "read"] }'''})
        tok, _ = self.make_token(["almost"])
        self.assertErr(Client(D.url, tok).post("/v1/sys/auth/foo", {"type": "approle"}), 403)


class TestTokens(Base):
    def test_expiry_and_renew(self):
        js = C.ok("POST", "/v1/auth/token/create",
                  {"policies": ["default"], "ttl": "60s", "renewable": True,
                   "display_name": "t1"})
        auth = js["auth"]
        self.assertEqual(auth["lease_duration"], 60)
        self.assertTrue(auth["renewable"])
        u = Client(D.url, auth["client_token"])
        d = u.ok("GET", "/v1/auth/token/lookup-self")["data"]
        self.assertEqual(d["ttl"], 60)
        self.assertTrue(d["renewable"])
        self.assertEqual(d["display_name"], "token-t1")
        self.assertIsNotNone(d["expire_time"])
        ctl("POST", "clock", {"advance": 50})
        d = u.ok("GET", "/v1/auth/token/lookup-self")["data"]
        self.assertLessEqual(d["ttl"], 10)
        r = u.ok("POST", "/v1/auth/token/renew-self", {})
        self.assertEqual(r["auth"]["lease_duration"], 60)
        self.assertEqual(r["auth"]["client_token"], auth["client_token"])
        ctl("POST", "clock", {"advance": 55})
        u.ok("GET", "/v1/auth/token/lookup-self")
        ctl("POST", "clock", {"advance": 10})
        self.assertErr(u.get("/v1/auth/token/lookup-self"), 403, "permission denied")
        self.assertErr(u.post("/v1/auth/token/renew-self"), 403, "permission denied")

    def test_explicit_max_ttl_caps_renew(self):
        js = C.ok("POST", "/v1/auth/token/create",
                  {"policies": ["default"], "ttl": 100, "explicit_max_ttl": 150})
        u = Client(D.url, js["auth"]["client_token"])
        ctl("POST", "clock", {"advance": 90})
        r = u.ok("POST", "/v1/auth/token/renew-self", {"increment": 100})
        self.assertEqual(r["auth"]["lease_duration"], 60, r)
        self.assertTrue(r["warnings"])
        ctl("POST", "clock", {"advance": 61})
        self.assertErr(u.get("/v1/auth/token/lookup-self"), 403)

    def test_non_renewable(self):
        js = C.ok("POST", "/v1/auth/token/create",
                  {"policies": ["default"], "ttl": 100, "renewable": False})
        u = Client(D.url, js["auth"]["client_token"])
        self.assertErr(u.post("/v1/auth/token/renew-self"), 400, "lease is not renewable")

    def test_revoke_self_and_children(self):
        C.ok("PUT", "/v1/sys/policies/acl/creator2", {"policy": '''
            path "auth/token/create" { capabilities = ["update"] }'''})
        js = C.ok("POST", "/v1/auth/token/create", {"policies": ["creator2"]})
        parent = Client(D.url, js["auth"]["client_token"])
        child = parent.ok("POST", "/v1/auth/token/create", {})["auth"]["client_token"]
        Client(D.url, child).ok("GET", "/v1/auth/token/lookup-self")
        st, _, _ = parent.post("/v1/auth/token/revoke-self")
        self.assertEqual(st, 204)
        self.assertErr(parent.get("/v1/auth/token/lookup-self"), 403)
        self.assertErr(Client(D.url, child).get("/v1/auth/token/lookup-self"), 403)


class TestAuthMethods(Base):
    def test_kubernetes(self):
        st, _, _ = C.post("/v1/auth/kubernetes/role/wrapd", {
            "bound_service_account_names": ["wrapd"],
            "bound_service_account_namespaces": "wrapd-system",
            "token_policies": ["wrapd-agent"], "token_ttl": "20m"})
        self.assertEqual(st, 204)
        ctl("POST", "k8s/jwt", {"jwt": "jwt-good", "service_account_name": "wrapd",
                                "namespace": "wrapd-system"})
        ctl("POST", "k8s/jwt", {"jwt": "jwt-other-sa", "service_account_name": "web",
                                "namespace": "wrapd-system"})
        ctl("POST", "k8s/jwt", {"jwt": "jwt-other-ns", "service_account_name": "wrapd",
                                "namespace": "default"})
        st, js, _ = C.post("/v1/auth/kubernetes/login", {"role": "wrapd", "jwt": "jwt-good"},
                           token=None)
        self.assertEqual(st, 200, js)
        a = js["auth"]
        self.assertEqual(a["lease_duration"], 1200)
        self.assertTrue(a["renewable"])
        self.assertEqual(a["policies"], ["default", "wrapd-agent"])
        self.assertEqual(a["metadata"]["service_account_namespace"], "wrapd-system")
        self.assertIsNone(js["data"])
        d = Client(D.url, a["client_token"]).ok("GET", "/v1/auth/token/lookup-self")["data"]
        self.assertEqual(d["path"], "auth/kubernetes/login")
        self.assertErr(C.post("/v1/auth/kubernetes/login", {"role": "x", "jwt": "jwt-good"},
                              token=None), 400, 'invalid role name "x"')
        self.assertErr(C.post("/v1/auth/kubernetes/login", {"role": "wrapd", "jwt": "forged"},
                              token=None), 403, "permission denied")
        self.assertErr(C.post("/v1/auth/kubernetes/login",
                              {"role": "wrapd", "jwt": "jwt-other-sa"}, token=None),
                       403, "service account name not authorized")
        self.assertErr(C.post("/v1/auth/kubernetes/login",
                              {"role": "wrapd", "jwt": "jwt-other-ns"}, token=None),
                       403, "namespace not authorized")

    def test_kubernetes_custom_mount(self):
        st, _, _ = C.post("/v1/sys/auth/k8s-east", {"type": "kubernetes"})
        self.assertEqual(st, 204)
        C.ok("POST", "/v1/auth/k8s-east/role/r", {
            "bound_service_account_names": "*", "bound_service_account_namespaces": "ns-*",
            "policies": "default", "ttl": 30})
        ctl("POST", "k8s/jwt", {"jwt": "jwt-east", "service_account_name": "any",
                                "namespace": "ns-1"})
        js = C.ok("POST", "/v1/auth/k8s-east/login", {"role": "r", "jwt": "jwt-east"},
                  token=None)
        self.assertEqual(js["auth"]["lease_duration"], 30)
        # the role does not exist on the default mount
        self.assertErr(C.post("/v1/auth/kubernetes/login", {"role": "r", "jwt": "jwt-east"},
                              token=None), 400, 'invalid role name "r"')

    def test_approle(self):
        C.ok("POST", "/v1/auth/approle/role/agent",
             {"token_policies": "wrapd-agent", "token_ttl": "1h", "secret_id_ttl": "10m"})
        rid = C.ok("GET", "/v1/auth/approle/role/agent/role-id")["data"]["role_id"]
        s = C.ok("POST", "/v1/auth/approle/role/agent/secret-id")["data"]
        self.assertIn("secret_id_accessor", s)
        js = C.ok("POST", "/v1/auth/approle/login", {"role_id": rid, "secret_id": s["secret_id"]},
                  token=None)
        self.assertEqual(js["auth"]["lease_duration"], 3600)
        self.assertIn("wrapd-agent", js["auth"]["policies"])
        self.assertEqual(js["auth"]["metadata"], {"role_name": "agent"})
        self.assertErr(C.post("/v1/auth/approle/login", {"role_id": rid, "secret_id": "nope"},
                              token=None), 400, "invalid role or secret ID")
        self.assertErr(C.post("/v1/auth/approle/login", {"role_id": "nope", "secret_id": "x"},
                              token=None), 400, "invalid role or secret ID")
        ctl("POST", "clock", {"advance": 601})
        self.assertErr(C.post("/v1/auth/approle/login",
                              {"role_id": rid, "secret_id": s["secret_id"]}, token=None),
                       400, "invalid role or secret ID")


class TestSeal(Base):
    def test_control_seal(self):
        ctl("POST", "seal")
        st, js, _ = C.get("/v1/sys/health", token=None)
        self.assertEqual(st, 503)
        self.assertTrue(js["sealed"])
        self.assertErr(C.get("/v1/transit/keys/wrapd"), 503, "Vault is sealed")
        self.assertErr(C.post("/v1/auth/kubernetes/login", {"role": "x", "jwt": "y"},
                              token=None), 503, "Vault is sealed")
        st, js, _ = C.get("/v1/sys/health?sealedcode=200", token=None)
        self.assertEqual(st, 200)
        ctl("POST", "unseal")
        self.assertEqual(C.get("/v1/sys/health", token=None)[0], 200)

    def test_api_seal_unseal(self):
        state = ctl("GET", "state")
        st, _, _ = C.post("/v1/sys/seal")
        self.assertEqual(st, 204)
        self.assertErr(C.get("/v1/transit/keys/wrapd"), 503, "Vault is sealed")
        self.assertErr(C.post("/v1/sys/unseal", {"key": "wrong"}, token=None), 400)
        st, js, _ = C.post("/v1/sys/unseal", {"key": state["unseal_key"]}, token=None)
        self.assertEqual(st, 200)
        self.assertFalse(js["sealed"])
        C.ok("GET", "/v1/transit/keys/wrapd")


class TestFaults(Base):
    def test_status_count_retry_after(self):
        ctl("POST", "fault", {"status": 503, "count": 2, "path": "/v1/transit/",
                              "retry_after": "1"})
        # another path is not affected
        self.assertEqual(C.get("/v1/sys/health", token=None)[0], 200)
        for _ in range(2):
            st, js, h = C.get("/v1/transit/keys/wrapd")
            self.assertEqual(st, 503)
            self.assertEqual(js, {"errors": ["Vault is sealed"]})
            self.assertEqual(h["Retry-After"], "1")
        st, js, h = C.get("/v1/transit/keys/wrapd")
        self.assertEqual(st, 200)
        self.assertIsNone(h.get("Retry-After"))

    def test_default_bodies_and_queue_order(self):
        ctl("POST", "fault", {"status": 429})
        ctl("POST", "fault", {"status": 412})
        ctl("POST", "fault", {"status": 500, "body": {"errors": ["custom"]}})
        st, js, _ = C.get("/v1/transit/keys/wrapd")
        self.assertEqual(st, 429)
        self.assertIn("rate limit quota exceeded", js["errors"][0])
        st, js, _ = C.get("/v1/transit/keys/wrapd")
        self.assertEqual((st, js), (412, {"errors": ["required index state not present"]}))
        st, js, _ = C.get("/v1/transit/keys/wrapd")
        self.assertEqual((st, js), (500, {"errors": ["custom"]}))
        self.assertEqual(C.get("/v1/transit/keys/wrapd")[0], 200)

    def test_clear(self):
        ctl("POST", "fault", {"status": 500, "count": 5})
        self.assertEqual(len(ctl("GET", "fault")["faults"]), 1)
        ctl("DELETE", "fault")
        self.assertEqual(C.get("/v1/transit/keys/wrapd")[0], 200)

    def test_drop(self):
        ctl("POST", "fault", {"drop": True, "count": 1})
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            c.request("GET", "/v1/transit/keys/wrapd", headers={"X-Vault-Token": D.root})
            c.getresponse()
        c.close()
        self.assertEqual(C.get("/v1/transit/keys/wrapd")[0], 200)
        log = ctl("GET", "log")["requests"]
        drops = [e for e in log if e["fault"] == "drop"]
        self.assertTrue(drops and drops[-1]["status"] is None)

    def test_redirect(self):
        ctl("POST", "fault", {"redirect": True, "count": 1, "path": "/v1/transit/decrypt/"})
        ctl("POST", "log/clear")
        ct = C.ok("POST", "/v1/transit/encrypt/wrapd",
                  {"plaintext": b64(b"x"), "context": b64(b"c")})["data"]["ciphertext"]
        st, js, h = C.post("/v1/transit/decrypt/wrapd?x=1", {"ciphertext": ct,
                                                             "context": b64(b"c")})
        self.assertEqual(st, 307)
        loc = h["Location"]
        self.assertEqual(loc, "http://127.0.0.1:%d/v1/transit/decrypt/wrapd?x=1" % D.rport)
        # follow by hand (urllib will not re-POST a 307): the redirect listener shares state
        r = Client("http://127.0.0.1:%d" % D.rport, D.root)
        d = r.ok("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": ct, "context": b64(b"c")})
        self.assertEqual(d["data"]["plaintext"], b64(b"x"))
        log = ctl("GET", "log")["requests"]
        self.assertEqual([(e["listener"], e["status"], e["fault"]) for e in log[-2:]],
                         [("main", 307, "redirect"), ("redirect", 200, None)])

    def test_redirect_to(self):
        ctl("POST", "log/clear")
        ctl("POST", "fault", {"redirect_to": "self", "count": 1, "path": "/v1/sys/health"})
        st, _, h = C.get("/v1/sys/health")
        self.assertEqual(st, 307)
        self.assertEqual(h["Location"], "http://127.0.0.1:%d/v1/sys/health" % D.port)
        self.assertEqual(C.get("/v1/sys/health")[0], 200)  # the fault is used up
        ctl("POST", "fault", {"redirect_to": "http://localhost:%d" % D.port, "count": 1,
                              "path": "/v1/sys/health"})
        st, _, h = C.get("/v1/sys/health?a=b")
        self.assertEqual((st, h["Location"]),
                         (307, "http://localhost:%d/v1/sys/health?a=b" % D.port))
        log = ctl("GET", "log")["requests"]
        self.assertEqual([e["fault"] for e in log[-3:]], ["redirect", None, "redirect"])
        c = Client("http://127.0.0.1:%d" % D.port)
        for bad in ("ftp://x", "http://x/path", "", 5, "http://a b"):
            self.assertEqual(c.post("/_double/fault", {"redirect_to": bad})[0], 400, bad)

    def test_escape_keys(self):
        ct = C.ok("POST", "/v1/transit/encrypt/wrapd",
                  {"plaintext": b64(b"x"), "context": b64(b"c")})["data"]["ciphertext"]
        ctl("POST", "fault", {"escape_keys": True, "count": 1, "path": "/v1/transit/decrypt/"})
        raw = urllib.request.Request("http://127.0.0.1:%d/v1/transit/decrypt/wrapd" % D.port,
                                     data=json.dumps({"ciphertext": ct,
                                                      "context": b64(b"c")}).encode(),
                                     method="POST", headers={"X-Vault-Token": D.root})
        with urllib.request.urlopen(raw, timeout=30) as r:
            text = r.read().decode()
        self.assertIn('"plaintex\\u0074": "%s"' % b64(b"x"), text)
        self.assertNotIn('"plaintext"', text)
        self.assertEqual(json.loads(text)["data"]["plaintext"], b64(b"x"))
        self.assertEqual(ctl("GET", "log")["requests"][-1]["fault"], "escape_keys")
        # used up: the next answer is spelt plainly again
        d = C.ok("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": ct, "context": b64(b"c")})
        self.assertEqual(d["data"]["plaintext"], b64(b"x"))

    def test_latency(self):
        ctl("POST", "fault", {"latency_ms": 50, "count": 1})
        self.assertEqual(C.get("/v1/transit/keys/wrapd")[0], 200)
        self.assertEqual(ctl("GET", "log")["requests"][-1]["fault"], "latency")

    def test_bad_fault_rejected(self):
        c = Client("http://127.0.0.1:%d" % D.port)
        self.assertEqual(c.post("/_double/fault", {"status": "x"})[0], 400)
        self.assertEqual(c.post("/_double/fault", {"count": 1})[0], 400)
        self.assertEqual(c.post("/_double/fault", {"status": 503, "count": 0})[0], 400)


class TestLogAndHTTP(Base):
    def test_log_fields_no_secrets(self):
        ctl("POST", "log/clear")
        secret = b64(b"super-secret-plaintext-" + os.urandom(8))
        ct = C.ok("POST", "/v1/transit/encrypt/wrapd",
                  {"plaintext": secret, "context": b64(b"c")})["data"]["ciphertext"]
        C.req("POST", "/v1/transit/decrypt/wrapd",
              {"batch_input": [{"ciphertext": ct, "context": b64(b"c")}] * 3},
              headers={"X-Vault-Namespace": "team-a"})
        C.get("/v1/sys/health", token=None)
        log = ctl("GET", "log")["requests"]
        self.assertEqual(len(log), 3)
        e0, e1, e2 = log
        self.assertEqual(e0["path"], "/v1/transit/encrypt/wrapd")
        self.assertEqual(e0["method"], "POST")
        self.assertEqual(e0["status"], 200)
        self.assertEqual(e0["token"], D.root[:8])
        self.assertTrue(e0["vault_request_header"])
        self.assertIsNone(e0["namespace"])
        self.assertIsNone(e0["batch_size"])
        self.assertEqual(e0["listener"], "main")
        self.assertLess(e0["seq"], e1["seq"])
        self.assertEqual(e1["namespace"], "team-a")
        self.assertEqual(e1["batch_size"], 3)
        self.assertIsNone(e2["token"])
        dump = json.dumps(log) + open(D.log_file).read()
        for s in (secret, ct, D.root):
            self.assertNotIn(s, dump)
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
        c.request("GET", "/v1/sys/health")   # no X-Vault-Request header
        c.getresponse().read()
        c.close()
        self.assertFalse(ctl("GET", "log")["requests"][-1]["vault_request_header"])

    def test_keepalive_and_expect_continue(self):
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
        c.connect()
        sock = c.sock
        items = [{"ciphertext": "vault:v1:AAAA", "context": b64(b"c" * 40)}] * 200
        body = json.dumps({"batch_input": items}).encode()
        for _ in range(3):
            c.request("POST", "/v1/transit/decrypt/wrapd", body=body,
                      headers={"X-Vault-Token": D.root, "Expect": "100-continue",
                               "Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read()
            self.assertEqual(int(r.getheader("Content-Length")), len(raw))
            self.assertEqual(r.status, 400)
            self.assertEqual(len(json.loads(raw)["data"]["batch_results"]), 200)
        self.assertIs(c.sock, sock, "connection was kept alive")
        c.close()

    def test_concurrent_clients(self):
        import threading
        errors = []

        def worker(i):
            try:
                cx = b64(("ctx-%d" % i).encode())
                for j in range(20):
                    pt = b64(("%d-%d" % (i, j)).encode())
                    ct = C.ok("POST", "/v1/transit/encrypt/wrapd",
                              {"plaintext": pt, "context": cx})["data"]["ciphertext"]
                    got = C.ok("POST", "/v1/transit/decrypt/wrapd",
                               {"ciphertext": ct, "context": cx})["data"]["plaintext"]
                    if got != pt:
                        errors.append((i, j))
            except Exception as e:  # collected and asserted below
                errors.append(repr(e))
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])

    def test_chunked_body(self):
        c = http.client.HTTPConnection("127.0.0.1", D.port, timeout=30)
        body = json.dumps({"plaintext": b64(b"chunk"), "context": b64(b"c")}).encode()
        c.request("POST", "/v1/transit/encrypt/wrapd", body=iter([body[:10], body[10:]]),
                  headers={"X-Vault-Token": D.root}, encode_chunked=True)
        r = c.getresponse()
        self.assertEqual(r.status, 200, r.read())
        c.close()


class TestProcess(unittest.TestCase):
    def test_tls_and_sigterm(self):
        tmp = tempfile.mkdtemp(prefix="vault-double-tls-", dir=TMP)
        ca = os.path.join(tmp, "ca")
        subprocess.run([MAKE_CA, ca], check=True, stdout=subprocess.DEVNULL, timeout=60)
        d = DoubleProc(tmp, tls=(os.path.join(ca, "server.crt"), os.path.join(ca, "server.key")),
                       extra=["--create-key", "wrapd"])
        try:
            self.assertTrue(d.url.startswith("https://127.0.0.1:"))
            good = ssl.create_default_context(cafile=os.path.join(ca, "ca.crt"))
            js = Client(d.url, d.root, good).ok("GET", "/v1/transit/keys/wrapd")
            self.assertTrue(js["data"]["derived"])
            # also by name
            c = Client("https://localhost:%d" % d.port, d.root, good)
            self.assertEqual(c.get("/v1/sys/health", token=None)[0], 200)
            wrong = ssl.create_default_context(cafile=os.path.join(ca, "other-ca.crt"))
            with self.assertRaises(urllib.error.URLError) as cm:
                Client(d.url, d.root, wrong).get("/v1/sys/health")
            self.assertIsInstance(cm.exception.reason, ssl.SSLCertVerificationError)
            # TLS < 1.2 is refused
            old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            old.load_verify_locations(os.path.join(ca, "ca.crt"))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    old.minimum_version = ssl.TLSVersion.TLSv1
                    old.maximum_version = ssl.TLSVersion.TLSv1_1
                refused = True
                try:
                    with socket.create_connection(("127.0.0.1", d.port), timeout=30) as s:
                        with old.wrap_socket(s, server_hostname="127.0.0.1"):
                            refused = False
                except (ssl.SSLError, OSError):
                    pass
                self.assertTrue(refused, "TLS 1.1 handshake must fail")
            except ValueError:
                pass    # this OpenSSL cannot even offer TLS 1.1
            # https main -> plain-http redirect listener
            ctl("POST", "fault", {"redirect": True}, d=d)
            st, _, h = Client(d.url, d.root, good).get("/v1/transit/keys/wrapd")
            self.assertEqual(st, 307)
            self.assertEqual(h["Location"],
                             "http://127.0.0.1:%d/v1/transit/keys/wrapd" % d.rport)
            r = Client("http://127.0.0.1:%d" % d.rport, d.root)
            self.assertEqual(r.get("/v1/transit/keys/wrapd")[0], 200)
        finally:
            rc = d.stop()
        self.assertEqual(rc, 0, "SIGTERM exits cleanly")

    def test_client_cert_required(self):
        tmp = tempfile.mkdtemp(prefix="vault-double-mtls-", dir=TMP)
        ca = os.path.join(tmp, "ca")
        subprocess.run([MAKE_CA, ca], check=True, stdout=subprocess.DEVNULL, timeout=60)
        d = DoubleProc(tmp, tls=(os.path.join(ca, "server.crt"), os.path.join(ca, "server.key")),
                       redirect=False, extra=["--tls-client-ca", os.path.join(ca, "ca.crt")])
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(ca, "ca.crt"))
            with self.assertRaises((urllib.error.URLError, ssl.SSLError, OSError)):
                Client(d.url, d.root, ctx).get("/v1/sys/health")
            ctx.load_cert_chain(os.path.join(ca, "client.crt"), os.path.join(ca, "client.key"))
            self.assertEqual(Client(d.url, d.root, ctx).get("/v1/sys/health")[0], 200)
        finally:
            d.stop()

    def test_non_dev_mode(self):
        tmp = tempfile.mkdtemp(prefix="vault-double-nodev-", dir=TMP)
        pf = os.path.join(tmp, "port")
        out = open(os.path.join(tmp, "out"), "w+")
        p = subprocess.Popen([DOUBLE, "--listen", "127.0.0.1:0", "--port-file", pf,
                              "--root-token", "r00t"], stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(200):
                if os.path.exists(pf):
                    break
                time.sleep(0.05)
            c = Client("http://127.0.0.1:%d" % int(open(pf).read()), "r00t")
            self.assertEqual(c.get("/v1/transit/keys/wrapd")[0], 404)   # nothing mounted
            self.assertEqual(c.post("/v1/sys/mounts/transit", {"type": "transit"})[0], 204)
            self.assertEqual(c.post("/v1/sys/auth/kubernetes", {"type": "kubernetes"})[0], 204)
            st, js, _ = c.post("/v1/sys/auth/kubernetes", {"type": "kubernetes"})
            self.assertEqual(st, 400)
            c.ok("POST", "/v1/transit/keys/wrapd", {"derived": True})
        finally:
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(10), 0)
            out.close()

    def test_require_request_header(self):
        tmp = tempfile.mkdtemp(prefix="vault-double-rrh-", dir=TMP)
        d = DoubleProc(tmp, redirect=False, extra=["--require-request-header"])
        try:
            c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
            c.request("GET", "/v1/sys/health")
            r = c.getresponse()
            self.assertEqual(r.status, 412)
            r.read()
            c.close()
            self.assertEqual(Client(d.url).get("/v1/sys/health")[0], 200)
        finally:
            d.stop()


if __name__ == "__main__":
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = max(0, result.testsRun - failed - len(result.skipped))
    if result.skipped:
        print("%d skipped" % len(result.skipped))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
