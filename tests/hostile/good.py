"""A well-behaved client that loops requests while hostile ones run (tests/tests/l7_hostile.rs).

    good.py ADDRESS CA_FILE STOP_FILE MAX_SECONDS

Four kinds of request in turn, each must get its expected answer: HTTP/1.1 on a keep-alive
connection and on a new connection each (plain.example: 200 from the backend), HTTPS on a
keep-alive connection (foo.bar.com: 200 from the backend), HTTP/2 with prior knowledge on a new
connection (200). Stops when STOP_FILE exists, after MAX_SECONDS, or after 100,000 requests;
prints each failure (the first 20) and then `good ok=N failed=M`.
"""
import http.client
import os
import socket
import ssl
import sys
import time

ADDR, CA, STOP, MAX_SECONDS = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
BACKEND = b"petclinic-web-1"
TIMEOUT = 10


def tls_connection():
    ctx = ssl.create_default_context(cafile=CA)
    conn = http.client.HTTPSConnection("foo.bar.com", context=ctx, timeout=TIMEOUT)
    raw = socket.create_connection((ADDR, 443), timeout=TIMEOUT)
    conn.sock = ctx.wrap_socket(raw, server_hostname="foo.bar.com")
    return conn


def plain_connection():
    return http.client.HTTPConnection(ADDR, 80, timeout=TIMEOUT)


def h1(conn, host):
    conn.request("GET", "/", headers={"Host": host})
    r = conn.getresponse()
    body = r.read()
    if r.status != 200 or BACKEND not in body:
        raise RuntimeError(f"{host}: {r.status} {body[:80]!r}")
    if r.getheader("Connection", "").lower() == "close":
        conn.close()


def h2():
    """One GET over HTTP/2 with prior knowledge: its response must be :status 200 (HPACK static
    index 8, 0x88) with the backend's body, and no RST_STREAM or GOAWAY with an error."""
    block = b"\x82\x86\x84\x41\x0dplain.example"
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    out += len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block
    s = socket.create_connection((ADDR, 80), timeout=TIMEOUT)
    try:
        s.sendall(out)
        data, status, body, ended = b"", None, b"", False
        deadline = time.monotonic() + TIMEOUT
        while not ended and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
                n = int.from_bytes(data[:3], "big")
                kind, flags, sid = data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
                payload = data[9:9 + n]
                data = data[9 + n:]
                if kind == 1 and sid == 1:
                    status = payload[:1]
                    ended |= bool(flags & 1)
                elif kind == 0 and sid == 1:
                    body += payload
                    ended |= bool(flags & 1)
                elif kind == 3 or (kind == 7 and payload[4:8] != b"\x00\x00\x00\x00"):
                    raise RuntimeError(f"h2: frame {kind} {payload.hex()}")
        if status != b"\x88" or BACKEND not in body or not ended:
            raise RuntimeError(f"h2: status {status!r} body {body[:80]!r} ended {ended}")
    finally:
        s.close()


def main():
    ok = failed = 0
    start = time.monotonic()
    keep, tls = plain_connection(), None
    i = 0
    while i < 100_000 and time.monotonic() - start < MAX_SECONDS and not os.path.exists(STOP):
        kind = i % 4
        i += 1
        try:
            if kind == 0:
                h1(keep, "plain.example")
            elif kind == 1:
                c = plain_connection()
                h1(c, "plain.example")
                c.close()
            elif kind == 2:
                if tls is None or tls.sock is None:
                    tls = tls_connection()
                h1(tls, "foo.bar.com")
            else:
                h2()
            ok += 1
        except Exception as e:  # noqa: BLE001 — every failure counts and is shown
            failed += 1
            if failed <= 20:
                print(f"failed {kind} after {time.monotonic() - start:.2f} s: {e.__class__.__name__}: {e}", flush=True)
            # A failed connection is not reused.
            if kind == 0:
                keep.close()
                keep = plain_connection()
            elif kind == 2:
                tls = None
        time.sleep(0.005)
    print(f"good ok={ok} failed={failed}", flush=True)


main()
