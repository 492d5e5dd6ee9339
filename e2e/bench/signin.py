#!/usr/bin/env python3
"""Signs in through a real OpenID Connect flow and prints the Cookie header to replay.

Used by e2e/bench/run: it opens URL like a browser (cookies kept, redirects followed),
fills the Okta-shaped provider's login form (e2e/oidc, `/login/...`) with USER and
PASSWORD, and ends on the protected page. It prints one line, `name=value; name=value`,
holding the cookies the browser would send to URL's host from then on — the session
cookie(s) of Portcullis or oauth2-proxy, from a real sign-in, never forged.

Host names are resolved to 127.0.0.1 inside this process (the system resolver does not
know the bench names), so TLS SNI and Host are the real names.

usage: signin.py URL USER PASSWORD CA_FILE
"""

import socket
import sys
from urllib.parse import urljoin, urlsplit

import requests

_getaddrinfo = socket.getaddrinfo


def _loopback(host, *args, **kwargs):
    # Every name resolves to loopback: the bench never leaves the machine.
    return _getaddrinfo("127.0.0.1", *args, **kwargs)


socket.getaddrinfo = _loopback


def main():
    url, user, password, ca = sys.argv[1:5]
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify`; no proxies either
    s.verify = ca
    s.headers["Accept"] = "text/html"
    hops = [url]
    r = s.get(url, allow_redirects=False, timeout=10)
    for _ in range(30):
        if r.is_redirect:
            nxt = urljoin(r.url, r.headers["location"])
            hops.append(nxt)
            r = s.get(nxt, allow_redirects=False, timeout=10)
            continue
        if r.status_code == 200 and "/login/" in urlsplit(r.url).path:
            hops.append("POST " + r.url)
            r = s.post(r.url, data={"username": user, "password": password},
                       allow_redirects=False, timeout=10)
            continue
        break
    if r.status_code != 200:
        sys.exit(f"sign-in ended with {r.status_code} at {r.url}\nhops:\n  " + "\n  ".join(hops))
    host = urlsplit(url).hostname
    # What a browser would send to this host: host-only and domain cookies that match.
    jar = [c for c in s.cookies if c.domain.lstrip(".") == host or host.endswith(c.domain)]
    if not jar:
        sys.exit(f"sign-in set no cookie for {host}; hops:\n  " + "\n  ".join(hops))
    path = urlsplit(url).path or "/"
    print("; ".join(f"{c.name}={c.value}" for c in jar if path.startswith(c.path)))


if __name__ == "__main__":
    main()
