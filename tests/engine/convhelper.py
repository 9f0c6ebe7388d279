#!/usr/bin/python3
"""Helper for tests/engine/host_convert_cli.sh and tests/engine/vm_convert.sh.

An independent check of what wrapctl wrote: the volume key comes straight
from the Vault double's Transit decrypt (the wrapped key and its context read
from `cryptsetup luksDump --dump-json-metadata`, not from wrapd), and the data
segment is decrypted with python3-cryptography's AES-XTS, IV = number of the
512-byte sector counted from the start of the data segment (dm-crypt's
plain64). Key material only goes to files the caller names (mode 0600).

  vk PATH OUT                 the VK of the volume (or header file) PATH, raw, into OUT
  token PATH FIELD            a field of PATH's wrapd-vault token
  xts-decrypt IMG OFF SS VK OUT [LEN]
                              decrypt IMG[OFF, OFF+LEN) (LEN: to the end) with
                              sector size SS into OUT
  interrupt SIG CMD...        run CMD (which must print --json progress on stdout)
                              with its stdout a full pipe, wait until it is blocked
                              writing its first line there (so it is mid-conversion
                              and cannot move on), send SIG, drain, exit with CMD's
                              status; exit 99 if CMD never blocked there
  seal | unseal               the double's control API
"""
import base64, fcntl, json, os, signal, subprocess, sys, time, urllib.request

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def http(method, path, body=None):
    addr = os.environ["VAULT_ADDR"]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(addr + path, data=data, method=method,
                                 headers={"X-Vault-Token": os.environ.get("VAULT_TOKEN", "root"),
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            txt = r.read()
    except urllib.error.HTTPError as e:
        sys.exit("%s %s: HTTP %d %s" % (method, path, e.code, e.read().decode(errors="replace")))
    return json.loads(txt) if txt else {}


def token(path):
    meta = json.loads(subprocess.check_output(["cryptsetup", "luksDump", "--dump-json-metadata", path]))
    for t in meta["tokens"].values():
        if t.get("type") == "wrapd-vault":
            return t
    sys.exit("no wrapd-vault token on " + path)


def write_secret(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)


def cmd_vk(path, out):
    t = token(path)
    mount = t.get("vault_mount") or "transit"
    key = t.get("vault_key") or "wrapd"
    d = http("POST", "/v1/%s/decrypt/%s" % (mount, key),
             {"ciphertext": t["ciphertext"], "context": t["context"]})
    vk = base64.b64decode(d["data"]["plaintext"])
    if len(vk) != 64:
        sys.exit("VK is %d bytes, want 64" % len(vk))
    write_secret(out, vk)


def cmd_xts_decrypt(img, off, ss, vkfile, out, length=None):
    off, ss = int(off), int(ss)
    vk = open(vkfile, "rb").read()
    size = os.path.getsize(img)
    if length is None:
        length = size - off
    length = int(length)
    if length % ss:
        sys.exit("length %d is not a multiple of the sector size %d" % (length, ss))
    aes = algorithms.AES(vk)
    step = 1 << 20
    with open(img, "rb") as f, open(out, "wb") as o:
        f.seek(off)
        pos = 0
        while pos < length:
            buf = f.read(min(step, length - pos))
            if not buf:
                sys.exit("short read at %d" % (off + pos))
            res = bytearray()
            for i in range(0, len(buf), ss):
                iv = ((pos + i) // 512).to_bytes(16, "little")
                d = Cipher(aes, modes.XTS(iv)).decryptor()
                res += d.update(buf[i:i + ss]) + d.finalize()
            o.write(res)
            pos += len(buf)


def blocked_in_write_to(pid, fd):
    try:
        tasks = os.listdir("/proc/%d/task" % pid)
    except FileNotFoundError:
        return False
    for t in tasks:
        try:
            sc = open("/proc/%d/task/%s/syscall" % (pid, t)).read().split()
        except OSError:
            continue
        # "NR arg0 ...": write(2) is 1 on x86_64, 64 on aarch64
        if len(sc) > 1 and sc[0] in ("1", "64") and int(sc[1], 16) == fd:
            return True
    return False


def cmd_interrupt(signame, argv):
    sig = getattr(signal, signame)
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, os.O_NONBLOCK)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"#" * 4096)
    except BlockingIOError:
        pass
    while True:  # top up byte by byte: not even one byte may fit
        try:
            filled += os.write(w, b"#")
        except BlockingIOError:
            break
    fcntl.fcntl(w, fcntl.F_SETFL, 0)
    p = subprocess.Popen(argv, stdout=w)
    os.close(w)
    blocked = False
    # A safety net only: the pass criterion is the state, never the clock.
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if p.poll() is not None:
            break
        if blocked_in_write_to(p.pid, 1):
            blocked = True
            break
        time.sleep(0.005)
    if blocked:
        p.send_signal(sig)
    rest = b""
    with os.fdopen(r, "rb") as rf:
        rf.read(filled)
        rest = rf.read()
    rc = p.wait()
    sys.stderr.write("convhelper: %s; %s sent; exit %d\n" % (
        "blocked writing progress" if blocked else "never blocked", signame if blocked else "no signal", rc))
    for line in rest.decode(errors="replace").splitlines():
        print(line)
    if not blocked:
        sys.exit(99)
    sys.exit(rc)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "vk":
        cmd_vk(*args)
    elif cmd == "token":
        print(token(args[0])[args[1]])
    elif cmd == "xts-decrypt":
        cmd_xts_decrypt(*args)
    elif cmd == "interrupt":
        cmd_interrupt(args[0], args[1:])
    elif cmd in ("seal", "unseal"):
        http("POST", "/_double/" + cmd, {})
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
