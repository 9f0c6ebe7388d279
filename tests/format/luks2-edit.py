#!/usr/bin/python3
"""Edit a LUKS2 header's JSON in place and fix both copies' checksums, the way
an attacker with write access to the raw disk would (for hostile-header tests).

  luks2-edit.py IMG 'STATEMENTS'

STATEMENTS is Python run with `j` bound to the parsed JSON area, e.g.
  'j["segments"]["0"]["encryption"] = "cipher_null-ecb"'
  'wtok(j)["vault_key"] = "../../sys/seal"'     (wtok: the wrapd-vault token)
Both copies get the same JSON; seqid, salts and everything else are kept.
"""
import hashlib, json, struct, sys


def wtok(j):
    for t in j["tokens"].values():
        if t.get("type") == "wrapd-vault":
            return t
    sys.exit("no wrapd-vault token")


def main():
    img, stmts = sys.argv[1], sys.argv[2]
    with open(img, "r+b") as f:
        f.seek(0)
        b = f.read(4096)
        if b[:6] != b"LUKS\xba\xbe":
            sys.exit("%s: no primary LUKS2 header" % img)
        hs = struct.unpack(">Q", b[8:16])[0]
        f.seek(4096)
        area = f.read(hs - 4096)
        j = json.loads(area.split(b"\0", 1)[0])
        exec(stmts, {"j": j, "wtok": wtok})
        text = json.dumps(j, separators=(",", ":")).encode()
        if len(text) >= hs - 4096:
            sys.exit("edited JSON does not fit")
        area = text + b"\0" * (hs - 4096 - len(text))
        for off in (0, hs):
            f.seek(off)
            binh = bytearray(f.read(4096))
            alg = binh[0x48:0x68].split(b"\0", 1)[0].decode()
            binh[0x1C0:0x200] = b"\0" * 64
            d = hashlib.new(alg, bytes(binh) + area).digest()
            binh[0x1C0:0x1C0 + len(d)] = d
            f.seek(off)
            f.write(binh)
            f.write(area)


main()
