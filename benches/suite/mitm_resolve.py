"""mitmdump addon for the benchmark suite: `upstream.resolve` for mitmproxy.

BENCH_RESOLVE="x.com:443=127.0.0.1:18443,..." sends connections for a host:port to a
local address, as the gateway's `upstream.resolve` does; the TLS server name stays the
site's (the SNI the client sent), so the upstream certificate is verified for the site.
"""

import os

_MAP = {}
for item in os.environ.get("BENCH_RESOLVE", "").split(","):
    if "=" in item:
        key, addr = item.split("=", 1)
        host, port = addr.rsplit(":", 1)
        _MAP[key.strip().lower()] = (host, int(port))


def server_connect(data):
    address = data.server.address
    if not address:
        return
    target = _MAP.get(f"{address[0]}:{address[1]}".lower())
    if target:
        if not data.server.sni:
            data.server.sni = address[0]
        data.server.address = target
