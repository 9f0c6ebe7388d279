#!/usr/bin/python3
"""Test helper: the agent's HTTP endpoint, read with an independent parser
(python3-prometheus-client's text_string_to_metric_families).

  metricsq.py BASE http METHOD PATH CODE [TEXT]   one request: exit 0 when the
        status is CODE (and the body holds TEXT); prints status and body
  metricsq.py BASE wait EXPR [SECONDS]            fetch /metrics until EXPR is
        true (default 60 s); prints the last page and EXPR's names on failure
  metricsq.py BASE page                           print /metrics

EXPR sees: fams (name -> family, as the parser names them: a counter's
family drops "_total"), val(sample_name, **labels) (the one sample's value,
None if absent), samples(sample_name, **labels) (matching samples), vlog
(the Vault double's /v1/ request log, when VAULT_ADDR is set), vop(path)
(the operation name a request path stands for) and text (the raw page).
"""
import json, os, sys, time, urllib.error, urllib.request
from prometheus_client.parser import text_string_to_metric_families


def request(base, method, path):
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def vop(path):
    p = path[len("/v1/"):] if path.startswith("/v1/") else path
    if p == "auth/token/lookup-self":
        return "lookup-self"
    if p == "auth/token/renew-self":
        return "renew"
    if p == "sys/health":
        return "health"
    if p.endswith("/login"):
        return "login"
    parts = p.split("/")
    if len(parts) >= 2 and parts[0] == "transit" and parts[1] in (
            "decrypt", "datakey", "rewrap", "keys", "encrypt"):
        return parts[1]
    return "other"


def scope(text):
    fams = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(name, **labels):
        return [s for f in fams.values() for s in f.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def val(name, **labels):
        m = [s for s in samples(name, **labels) if len(s.labels) == len(labels)]
        return m[0].value if m else None

    env = {"fams": fams, "samples": samples, "val": val, "text": text, "vop": vop}
    if os.environ.get("VAULT_ADDR"):
        with urllib.request.urlopen(os.environ["VAULT_ADDR"] + "/_double/log") as r:
            env["vlog"] = json.loads(r.read())["requests"]
    return env


def main():
    base, cmd = sys.argv[1], sys.argv[2]
    if cmd == "http":
        method, path, code = sys.argv[3], sys.argv[4], int(sys.argv[5])
        want = sys.argv[6] if len(sys.argv) > 6 else None
        st, body, hdrs = request(base, method, path)
        print(st, body.strip()[:500])
        sys.exit(0 if st == code and (want is None or want in body) else 1)
    if cmd == "page":
        print(request(base, "GET", "/metrics")[1], end="")
        return
    if cmd == "wait":
        expr = sys.argv[3]
        deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 60)
        while True:
            st, text, hdrs = request(base, "GET", "/metrics")
            err = None
            try:
                if st == 200 and eval(expr, scope(text)):
                    return
            except Exception as e:  # a page the parser refuses fails the test too
                err = repr(e)
            if time.monotonic() > deadline:
                print("not true:", expr)
                if err:
                    print("error:", err)
                print(text)
                sys.exit(1)
            time.sleep(0.3)
    sys.exit("unknown command " + cmd)


main()
