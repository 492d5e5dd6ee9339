#!/usr/bin/env python3
"""Opens N TLS keep-alive connections to a proxy, sends one request on each, and holds
them idle until stdin closes. Prints one JSON line when they are all open:
{"open": N, "failed": F, "seconds": S}.

Used by e2e/bench/run to measure the proxy's resident memory per idle connection.

usage: idle_conns.py PORT HOST N CA_FILE [PATH]
"""

import asyncio
import json
import resource
import ssl
import sys
import time

CONCURRENT_HANDSHAKES = 64


async def open_one(port, host, ctx, path, sem, held):
    async with sem:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
            w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
            await w.drain()
            head = await r.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await r.readexactly(length)
            if not head.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            held.append((r, w))
            return True
        except Exception as e:  # noqa: BLE001 - counted, reported once
            if not getattr(open_one, "reported", False):
                open_one.reported = True
                print(f"connection failed: {e!r}", file=sys.stderr)
            return False


async def main():
    port, host, n, ca = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    path = sys.argv[5] if len(sys.argv) > 5 else "/"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    sem = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    held = []
    started = time.monotonic()
    results = await asyncio.gather(*(open_one(port, host, ctx, path, sem, held) for _ in range(n)))
    ok = sum(results)
    print(json.dumps({"open": ok, "failed": n - ok, "seconds": round(time.monotonic() - started, 1)}),
          flush=True)
    # Hold until the caller closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    still = sum(1 for r, _ in held if not r.at_eof())
    print(json.dumps({"still_open": still}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
