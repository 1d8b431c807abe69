#!/usr/bin/python3
"""A tiny gRPC server for Sluice's tests: raw bytes in and out (generic handlers, no protoc).

    server.py ADDRESS:PORT [CERT KEY]

With CERT and KEY (PEM files), it serves over TLS only (what `backend-protocol: GRPCS` reaches;
grpcio's server insists on ALPN h2).

Service `echo.Echo`:
- `Unary`: answers `echo:` + the request, with trailing metadata `x-trailer: yes`;
- `Stream`: bidirectional, answers `s:` + each message, in order;
- `Fail`: aborts with NOT_FOUND "nope" (a trailers-only response).
Prints `listening` once it serves.
"""
import sys
from concurrent import futures

import grpc


def unary(request, context):
    context.set_trailing_metadata((("x-trailer", "yes"),))
    return b"echo:" + request


def stream(requests, context):
    for r in requests:
        yield b"s:" + r


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "nope")


def main():
    address = sys.argv[1]
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Stream": grpc.stream_stream_rpc_method_handler(stream),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("echo.Echo", handlers),))
    if len(sys.argv) > 3:
        with open(sys.argv[2], "rb") as f:
            cert = f.read()
        with open(sys.argv[3], "rb") as f:
            key = f.read()
        server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    else:
        server.add_insecure_port(address)
    server.start()
    print("listening", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
