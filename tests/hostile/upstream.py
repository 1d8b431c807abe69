"""An upstream that reads a request's whole body before it answers (nginx's `return` answers at
once): what a slow body must hold up. `upstream.py ADDRESS PORT`."""
import http.server
import socketserver
import sys


class Reader(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        answer = b"read %d\n" % len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # Not HTTPServer's: it looks the address's name up, and the namespace has no resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "reader", self.server_address[1]


server = Server((sys.argv[1], int(sys.argv[2])), Reader)
print("listening", flush=True)
server.serve_forever()
