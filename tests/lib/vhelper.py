#!/usr/bin/python3
"""Test helper for the volume kernel suite and bench: talks to the Vault
double's HTTP API and reads wrapd tokens out of `cryptsetup luksDump
--dump-json-metadata`. Key material only goes to files the caller names."""
import base64, json, os, subprocess, sys, urllib.request

ADDR = os.environ["VAULT_ADDR"]
TOKEN = os.environ.get("VAULT_TOKEN", "root")


def http(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(ADDR + path, data=data, method=method,
                                 headers={"X-Vault-Token": TOKEN, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            txt = r.read()
    except urllib.error.HTTPError as e:
        txt = e.read()
    return json.loads(txt) if txt else {}


def token(dev):
    meta = json.loads(subprocess.check_output(["cryptsetup", "luksDump", "--dump-json-metadata", dev]))
    for tid, t in meta["tokens"].items():
        if t.get("type") == "wrapd-vault":
            return tid, t
    sys.exit("no wrapd-vault token on " + dev)


def main():
    cmd = sys.argv[1]
    if cmd == "decrypt-to":       # DEV FILE: the VK, raw, into FILE (mode 0600)
        _, t = token(sys.argv[2])
        d = http("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": t["ciphertext"], "context": t["context"]})
        fd = os.open(sys.argv[3], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, base64.b64decode(d["data"]["plaintext"]))
        os.close(fd)
    elif cmd == "keyhex-grep":    # DEV TEXTFILE: exit 0 if the VK hex occurs in TEXTFILE
        _, t = token(sys.argv[2])
        d = http("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": t["ciphertext"], "context": t["context"]})
        hexkey = base64.b64decode(d["data"]["plaintext"]).hex()
        text = open(sys.argv[3]).read().lower()
        sys.exit(0 if hexkey in text or hexkey[:32] in text or hexkey[32:] in text else 1)
    elif cmd == "token":          # DEV FIELD
        print(token(sys.argv[2])[1][sys.argv[3]])
    elif cmd == "token-export":   # DEV: the token JSON
        print(json.dumps(token(sys.argv[2])[1]))
    elif cmd == "token-id":
        print(token(sys.argv[2])[0])
    elif cmd == "rewrap-foreign":  # SRC DST: SRC's VK wrapped with DST's context, as DST's token JSON
        _, ts = token(sys.argv[2])
        _, td = token(sys.argv[3])
        p = http("POST", "/v1/transit/decrypt/wrapd", {"ciphertext": ts["ciphertext"], "context": ts["context"]})
        e = http("POST", "/v1/transit/encrypt/wrapd", {"plaintext": p["data"]["plaintext"], "context": td["context"]})
        td["ciphertext"] = e["data"]["ciphertext"]
        print(json.dumps(td))
    elif cmd == "rotate":
        print(http("POST", "/v1/transit/keys/wrapd/rotate", {})["data"]["latest_version"])
    elif cmd == "min-decrypt":    # N
        http("POST", "/v1/transit/keys/wrapd/config", {"min_decryption_version": int(sys.argv[2])})
    elif cmd == "count-decrypt":  # number of decrypt requests, and the last batch size
        reqs = http("GET", "/_double/log")["requests"]
        ds = [r for r in reqs if r["path"].endswith("/transit/decrypt/wrapd")]
        print(len(ds), (ds[-1].get("batch_size") or 1) if ds else 0)
    elif cmd in ("seal", "unseal"):
        http("POST", "/_double/" + cmd, {})
    else:
        sys.exit("unknown command " + cmd)


main()
