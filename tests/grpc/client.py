#!/usr/bin/python3
"""A tiny gRPC client for Sluice's tests: raw bytes (no protoc), against server.py's service.

    client.py ADDRESS:PORT AUTHORITY [COUNT]

Makes COUNT (default 3) unary calls, one bidirectional stream of COUNT messages and one call
that fails, checks every answer, and prints one line per check; exits non-zero on the first
wrong answer.
"""
import sys

import grpc


def main():
    target, authority = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    options = [("grpc.default_authority", authority), ("grpc.enable_retries", 0)]
    with grpc.insecure_channel(target, options=options) as channel:
        unary = channel.unary_unary("/echo.Echo/Unary")
        for i in range(count):
            body = b"hello %d" % i
            answer, call = unary.with_call(body, timeout=10)
            assert answer == b"echo:" + body, answer
            trailing = dict(call.trailing_metadata())
            assert trailing.get("x-trailer") == "yes", trailing
            assert call.code() == grpc.StatusCode.OK, call.code()
        print("unary ok", count, flush=True)

        stream = channel.stream_stream("/echo.Echo/Stream")
        messages = [b"m%d" % i for i in range(count)]
        answers = list(stream(iter(messages), timeout=10))
        assert answers == [b"s:" + m for m in messages], answers
        print("stream ok", len(answers), flush=True)

        fail = channel.unary_unary("/echo.Echo/Fail")
        try:
            fail(b"x", timeout=10)
            raise AssertionError("Fail did not fail")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()
            assert e.details() == "nope", e.details()
        print("status ok NOT_FOUND", flush=True)


if __name__ == "__main__":
    main()
