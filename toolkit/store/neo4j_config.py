"""How we reach a Neo4j server: its URI checked before any connection, and the driver's timeouts.

The driver takes `bolt://127.0.0.1:99999` as port 34463 (99999 mod 65536) and connects
there, so a port is checked here first. A port that accepts TCP but never speaks Bolt (an
HTTP server, a silent listener) made the driver wait for its handshake for the connection
acquisition timeout (60 s by default): both timeouts are a few seconds instead, overridable
with APD_NEO4J_TIMEOUT.
"""
from __future__ import annotations

import math
import os
from urllib.parse import urlsplit

from toolkit.store.base import StoreError

DEFAULT_TIMEOUT = 5.0  # seconds: a Bolt server on a reachable host answers in milliseconds


def checked_uri(uri: str) -> str:
    """`uri` if it names a host and a port in 1..65535 (the scheme's default port when none)."""
    try:
        parts = urlsplit(uri)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise StoreError(f"store URI {uri} does not parse: {exc}") from None
    tail = parts.netloc.rpartition("@")[2].rpartition("]")[2]  # after any user@ and IPv6 [...]
    if not parts.hostname:
        raise StoreError(f"store URI {uri} names no host: use e.g. {parts.scheme}://localhost:7687")
    if ":" in tail:
        port = tail.rpartition(":")[2]
        if not port.isdigit():
            raise StoreError(f"store URI {uri}: port {port!r} is not a number in 1-65535")
        if not 1 <= int(port) <= 65535:
            raise StoreError(f"store URI {uri}: port {port} is outside 1-65535")
    return uri


def timeout() -> float:
    """Seconds to wait for a connection and its Bolt handshake: APD_NEO4J_TIMEOUT, default 5."""
    raw = os.environ.get("APD_NEO4J_TIMEOUT", "")
    if raw == "":
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise StoreError(f"APD_NEO4J_TIMEOUT must be a positive number of seconds (got {raw!r})")
    return value


def driver_config(seconds: float) -> dict:
    """Keyword arguments for `GraphDatabase.driver`: the handshake is bounded by the acquisition
    timeout, the TCP connect by the connection timeout."""
    return {"connection_timeout": seconds, "connection_acquisition_timeout": seconds}
