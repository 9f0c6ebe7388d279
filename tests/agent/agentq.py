#!/usr/bin/python3
"""Asks a wrapd agent's status socket, for the agent's tests.

  agentq.py SOCK get                    the JSON document
  agentq.py SOCK wait EXPR [SECONDS]    until EXPR (Python, over `s` = the document,
                                        `v` = {name: volume}) is true; exit 1 with
                                        the last document at the deadline (default 300 s)
  agentq.py SOCK as-nobody mode|peer    connect as uid/gid 65534: exit 0 when the
                                        socket's mode refuses the connect (mode), or
                                        when the agent answers only a refusal (peer)
"""
import json, os, socket, sys, time


def ask(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return json.loads(data)


def main():
    sock, cmd = sys.argv[1], sys.argv[2]
    if cmd == "get":
        print(json.dumps(ask(sock), indent=1))
    elif cmd == "wait":
        expr = sys.argv[3]
        deadline = time.monotonic() + (float(sys.argv[4]) if len(sys.argv) > 4 else 300)
        last = None
        while time.monotonic() < deadline:
            try:
                s = ask(sock)
                last = s
                v = {x["name"]: x for x in s["volumes"]}
                if eval(expr, {"s": s, "v": v}):
                    return 0
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        print("deadline passed waiting for:", expr)
        print(json.dumps(last, indent=1)[:4000])
        return 1
    elif cmd == "as-nobody":
        # as-nobody mode: the socket's mode must refuse the connect (EACCES)
        # as-nobody peer: the connect works; the agent must answer a refusal
        want = sys.argv[3]
        pid = os.fork()
        if pid == 0:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                d = ask(sock)
            except PermissionError as e:
                print("refused at connect:", e, flush=True)
                os._exit(0 if want == "mode" else 1)
            except (OSError, ValueError) as e:
                print("failed:", e, flush=True)
                os._exit(1)
            print("answer:", json.dumps(d)[:300], flush=True)
            os._exit(0 if want == "peer" and "volumes" not in d and "error" in d else 1)
        _, st = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(st)
    return 2


sys.exit(main())
