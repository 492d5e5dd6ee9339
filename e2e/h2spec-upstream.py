"""The upstream e2e/h2spec-check puts behind its route: it reads each request to its end
(Content-Length or chunked) before answering 200, so the proxy's answer always waits for
the client's END_STREAM. Usage: h2spec-upstream.py PORT (binds 127.0.0.1 only)."""

import socketserver
import sys


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = []
            while True:
                line = self.rfile.readline(65536)
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                head.append(line.decode("latin-1").strip())
            fields = {}
            for field in head[1:]:
                name, _, value = field.partition(":")
                fields[name.strip().lower()] = value.strip()
            if fields.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = self.rfile.readline(4096)
                    if not size_line:
                        return
                    size = int(size_line.split(b";")[0], 16)
                    if size == 0:
                        # Trailers, if any, end with an empty line.
                        while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    self.rfile.read(size + 2)
            else:
                self.rfile.read(int(fields.get("content-length", "0") or "0"))
            body = b"h2spec upstream: the request was read to its end\n"
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
