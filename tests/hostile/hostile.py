"""Hostile clients of the L7 stage, one case at a time (tests/tests/l7_hostile.rs).

    hostile.py ADDRESS CA_FILE CASE...

For each case, one line: the case's name, then what the gateway did: the status of its answer
(`-` when none came; for TLS, the alert rustls sent; for HTTP/2, `goaway:CODE` or the frames of
the answer) and `closed` or `open` (whether the gateway closed the connection within the
case's time). Every case is bounded in time (CASE_SECONDS) and in bytes.
"""
import os
import socket
import ssl
import sys
import time

ADDR, CA = sys.argv[1], sys.argv[2]
CASE_SECONDS = 10
PLAIN = "plain.example"  # an Ingress without TLS: requests are proxied, not redirected
TLS_HOST = "foo.bar.com"


def read_all(s, limit=CASE_SECONDS):
    """Everything the gateway sends until it closes (True) or `limit` s pass (False)."""
    data, deadline = b"", time.monotonic() + limit
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def status_of(data):
    if data.startswith(b"HTTP/1.1 "):
        return data[9:12].decode()
    return "-" if not data else "junk"


def h1(payload, port=80):
    s = socket.create_connection((ADDR, port), timeout=CASE_SECONDS)
    try:
        s.sendall(payload)
    except OSError:
        pass
    data, closed = read_all(s)
    s.close()
    return f"{status_of(data)} {'closed' if closed else 'open'}"


def req(method, lines, body=b"", version=b"HTTP/1.1", path=b"/"):
    head = method + b" " + path + b" " + version + b"\r\n" + b"".join(l + b"\r\n" for l in lines) + b"\r\n"
    return head + body


H = b"Host: " + PLAIN.encode()
CHUNKED_HEAD = [H, b"Transfer-Encoding: chunked"]

# RFC 9112 §6.3 and §11.2: framing a proxy and its upstream could read two ways.
SMUGGLING = {
    "cl_te": req(b"POST", [H, b"Content-Length: 4", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "te_cl": req(b"POST", [H, b"Transfer-Encoding: chunked", b"Content-Length: 4"], b"0\r\n\r\n"),
    "te_chunked_identity": req(b"POST", [H, b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"),
    "te_identity": req(b"POST", [H, b"Transfer-Encoding: identity"], b"0\r\n\r\n"),
    "te_xchunked": req(b"POST", [H, b"Transfer-Encoding: xchunked"], b"0\r\n\r\n"),
    "te_chunked_twice": req(b"POST", [H, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"),
    "te_gzip_chunked": req(b"POST", [H, b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"),
    "te_space_before_colon": req(b"POST", [H, b"Transfer-Encoding : chunked"], b"0\r\n\r\n"),
    "te_obs_fold": req(b"POST", [H, b"Transfer-Encoding: identity", b" chunked"], b"0\r\n\r\n"),
    "te_http10": req(b"POST", [b"Transfer-Encoding: chunked"], b"0\r\n\r\n", b"HTTP/1.0"),
    "cl_differing_fields": req(b"POST", [H, b"Content-Length: 4", b"Content-Length: 5"], b"abcde"),
    "cl_differing_list": req(b"POST", [H, b"Content-Length: 4, 5"], b"abcde"),
    "cl_signed": req(b"POST", [H, b"Content-Length: +4"], b"abcd"),
    "cl_overflow": req(b"POST", [H, b"Content-Length: 18446744073709551616"], b"abcd"),
    "bare_cr": req(b"GET", [H, b"X-A: a\rb"]),
    "no_host": req(b"GET", [b"X-A: a"]),
    "two_hosts": req(b"GET", [H, b"Host: other.example"]),
    "nul_in_value": req(b"GET", [H, b"X-A: a\x00b"]),
    "chunk_size_overflow": req(b"POST", CHUNKED_HEAD, b"10000000000000000\r\nx\r\n0\r\n\r\n"),
    "chunk_size_not_hex": req(b"POST", CHUNKED_HEAD, b"zz\r\nhello\r\n0\r\n\r\n"),
    "chunk_size_0x": req(b"POST", CHUNKED_HEAD, b"0x5\r\nhello\r\n0\r\n\r\n"),
    "chunk_extension_bad": req(b"POST", CHUNKED_HEAD, b"5;a b\r\nhello\r\n0\r\n\r\n"),
    "chunk_bare_lf": req(b"POST", CHUNKED_HEAD, b"5\nhello\r\n0\r\n\r\n"),
    "chunk_data_overrun": req(b"POST", CHUNKED_HEAD, b"5\r\nhelloXX\r\n0\r\n\r\n"),
    "chunk_trailer_obs_fold": req(b"POST", CHUNKED_HEAD, b"0\r\nX-T: a\r\n b\r\n\r\n"),
}

LIMITS = {
    # 32 KiB head limit: 431; 8 KiB target: 414; 100 fields: 431.
    "oversized_head": req(b"GET", [H, b"X-Big: " + b"a" * 40000]),
    "oversized_target": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n\r\n",
    "too_many_fields": req(b"GET", [H] + [b"X-%d: x" % i for i in range(150)]),
}


def slow_head():
    """Slowloris: a head that never ends, a field every 0.5 s."""
    s = socket.create_connection((ADDR, 80), timeout=CASE_SECONDS)
    s.sendall(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    deadline = time.monotonic() + CASE_SECONDS
    data, closed = b"", False
    while time.monotonic() < deadline:
        try:
            s.sendall(b"X-Slow: x\r\n")
        except OSError:
            break
        data, closed = read_all(s, 0.5)
        if data or closed:
            break
    if data and not closed:
        more, closed = read_all(s)
        data += more
    s.close()
    return f"{status_of(data)} {'closed' if closed else 'open'}"


def silent():
    """A connection that sends nothing."""
    s = socket.create_connection((ADDR, 80), timeout=CASE_SECONDS)
    data, closed = read_all(s)
    s.close()
    return f"{status_of(data)} {'closed' if closed else 'open'}"


def slow_body():
    """Slowloris on a body: 10 of 100 bytes, then nothing (to /read, whose upstream waits for
    the whole body before it answers)."""
    return h1(req(b"POST", [H, b"Content-Length: 100"], b"0123456789", path=b"/read"))


def slow_tls_handshake():
    """A ClientHello that never ends."""
    s = socket.create_connection((ADDR, 443), timeout=CASE_SECONDS)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    data, closed = read_all(s)
    s.close()
    return f"{tls_alert(data)} {'closed' if closed else 'open'}"


def tls_alert(data):
    """The plaintext alert (`alert:DESCRIPTION`) a record stream starts with, `-` for none."""
    if len(data) >= 7 and data[0] == 0x15:
        return f"alert:{data[6]}"
    return "-" if not data else f"record:{data[0]}"


def tls_raw(payload):
    s = socket.create_connection((ADDR, 443), timeout=CASE_SECONDS)
    s.sendall(payload)
    data, closed = read_all(s)
    s.close()
    return f"{tls_alert(data)} {'closed' if closed else 'open'}"


def tls_garbage_after_handshake(version):
    """A full handshake (TLS 1.2 or 1.3), then an application-data record of random bytes."""
    ctx = ssl.create_default_context(cafile=CA)
    ctx.minimum_version = ctx.maximum_version = version
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=TLS_HOST)
    s = socket.create_connection((ADDR, 443), timeout=CASE_SECONDS)
    for _ in range(20):
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            s.sendall(out.read())
            chunk = s.recv(65536)
            if not chunk:
                return "handshake-failed closed"
            inc.write(chunk)
    s.sendall(out.read())
    s.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
    data, closed = read_all(s)
    s.close()
    inc.write(data)
    what = "-"
    try:
        obj.read(65536)
    except ssl.SSLError as e:
        what = (e.reason or e.__class__.__name__).lower()
    except Exception as e:  # noqa: BLE001 — the name is the answer
        what = e.__class__.__name__
    return f"{what} {'closed' if closed else 'open'}"


# HTTP/2 (prior knowledge, port 80): frames by hand.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# :method GET, :scheme http, :path /, :authority plain.example (literal, incremental indexing)
BLOCK = b"\x82\x86\x84\x41" + bytes([len(PLAIN)]) + PLAIN.encode()


def frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2(payload):
    """Sends the preface and `payload`; the gateway's answer: `goaway:CODE` or the frame types."""
    s = socket.create_connection((ADDR, 80), timeout=CASE_SECONDS)
    try:
        s.sendall(PREFACE + payload)
    except OSError:
        pass
    data, closed = read_all(s)
    s.close()
    kinds, goaway = [], None
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        kinds.append(data[3])
        if data[3] == 7 and len(data) >= 17:
            goaway = int.from_bytes(data[13:17], "big")
        data = data[9 + n:]
    what = f"goaway:{goaway if goaway is not None else '-'} frames:" + ",".join(map(str, kinds))
    return f"{what} {'closed' if closed else 'open'}"


def h2_continuation_flood():
    """One header block in a HEADERS and 50 CONTINUATIONs of 10 bytes, never ended."""
    block = BLOCK + b"\x40\x01x\x7f\xa1\x1e" + b"a" * 4000
    out = frame(1, 0x0, 1, block[:16])
    for i in range(50):
        out += frame(9, 0x0, 1, block[16 + 10 * i: 26 + 10 * i])
    return h2(out)


def h2_rapid_reset():
    """500 streams opened and reset at once (CVE-2023-44487)."""
    out = b""
    for i in range(500):
        sid = 2 * i + 1
        out += frame(1, 0x5, sid, BLOCK) + frame(3, 0, sid, b"\x00\x00\x00\x08")
    return h2(out)


def h2_settings_flood():
    return h2(frame(4, 0, 0, b"") * 100)


def h2_ping_flood():
    return h2(frame(6, 0, 0, b"12345678") * 2000)


def h2_hpack_bomb():
    """A 4 KB field put in the dynamic table, then named ten times: 40 KB of header list from
    4 KB of block (over the 32 KiB limit): the stream is answered 431, the connection goes on."""
    block = BLOCK + b"\x40\x01x\x7f\xa1\x1e" + b"a" * 4000 + b"\xbe" * 10
    return h2(frame(1, 0x5, 1, block))


CASES = {name: (lambda p=p: h1(p)) for name, p in {**SMUGGLING, **LIMITS}.items()}
CASES.update(
    slow_head=slow_head,
    silent=silent,
    slow_body=slow_body,
    slow_tls_handshake=slow_tls_handshake,
    tls_plaintext_http=lambda: tls_raw(b"GET / HTTP/1.1\r\nHost: foo.bar.com\r\n\r\n"),
    tls_garbage_client_hello=lambda: tls_raw(b"\x16\x03\x01\x00\x44\x01\x00\x00\x40" + os.urandom(64)),
    tls_bad_content_type=lambda: tls_raw(b"\x63\x03\x03\x00\x10" + os.urandom(16)),
    tls_oversized_record=lambda: tls_raw(b"\x16\x03\x03\xff\xff" + os.urandom(1024)),
    tls12_garbage_after_handshake=lambda: tls_garbage_after_handshake(ssl.TLSVersion.TLSv1_2),
    tls13_garbage_after_handshake=lambda: tls_garbage_after_handshake(ssl.TLSVersion.TLSv1_3),
    h2_continuation_flood=h2_continuation_flood,
    h2_rapid_reset=h2_rapid_reset,
    h2_settings_flood=h2_settings_flood,
    h2_ping_flood=h2_ping_flood,
    h2_hpack_bomb=h2_hpack_bomb,
)

if __name__ == "__main__":
    names = sys.argv[3:] if sys.argv[3:] != ["all"] else list(CASES)
    for name in names:
        try:
            result = CASES[name]()
        except Exception as e:  # noqa: BLE001 — a case that fails says how
            result = f"error:{e.__class__.__name__}:{e}"
        print(name, result, flush=True)
    print("done", flush=True)
