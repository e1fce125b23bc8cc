"""The Neo4j 5 test server (tools/neo4j/serve) as a context manager, for the test session,
and `empty_neo4j`, which gives a test the server's one database empty.

`serve` builds itself with Maven on first use, starts Neo4j 5.26 community on free
127.0.0.1 ports with auth on and prints one `ready bolt://... http://...` line. The server
runs in its own process group so that stopping it (SIGTERM, then SIGKILL after a grace
period) never leaves a JVM behind, whatever the test did.
"""
from __future__ import annotations

import os
import secrets
import selectors
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SERVE = Path(__file__).resolve().parent.parent / "tools" / "neo4j" / "serve"
START_TIMEOUT = 600.0  # the first start downloads Neo4j's jars (about 250 MB) into ~/.m2


def missing_tools() -> str | None:
    """Why this machine cannot start the server, or None."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            return f"{tool} is not on the PATH (tools/neo4j/serve needs Java 17+ and Maven)"
    return None


@contextmanager
def neo4j_server(work: Path, data: Path | None = None, timeout: float = START_TIMEOUT) -> Iterator[dict]:
    """Start a server under `work` (serving `data` if given); yields its URIs, password and pid."""
    password = "apd-test-" + secrets.token_hex(8)
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "serve.log", "w")
    args = [str(SERVE), str(work / "server"), *([str(data)] if data else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                            env={**os.environ, "APD_NEO4J_PASSWORD": password})
    try:
        line = _ready_line(proc, timeout, log.name)
        _, bolt, http = line.split()
        yield {"bolt": bolt, "http": http, "password": password, "pgid": proc.pid, "log": log.name}
    finally:
        stop(proc)
        log.close()


def stop(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """SIGTERM the server's process group (a clean shutdown), SIGKILL it if that hangs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group (a JVM whose parent died)
    except ProcessLookupError:
        pass
    proc.wait()


def _ready_line(proc: subprocess.Popen, timeout: float, log: str) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise RuntimeError(f"the Neo4j test server did not start within {timeout:.0f} s (see {log})")
    line = proc.stdout.readline()
    if not line.startswith("ready bolt://"):
        tail = Path(log).read_text()[-2000:]
        raise RuntimeError(f"the Neo4j test server did not start: {line!r}\n{tail}")
    return line


def empty_neo4j(uri: str) -> None:
    """Delete every node of the server at `uri`, in bounded transactions (the schema stays)."""
    import neo4j

    with neo4j.GraphDatabase.driver(uri, auth=(os.environ.get("APD_NEO4J_USER", "neo4j"),
                                               os.environ["APD_NEO4J_PASSWORD"])) as d, \
            d.session(database=os.environ.get("APD_NEO4J_DATABASE") or None) as s:
        s.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
