"""Neo4j ingest and bulk import (DESIGN.md section 6, issue 15), printed as one table.

Targets: 60,000 instances x 4 hidden layers into Neo4j in <= 10 s with server and client on
one 2-core box; 1,000,000 instances with the server at -Xmx1g, bounded memory on both sides.

Parts (`--only 60k,1m,import,pack`, default all):
- 60k: the run of bench/bench_ingest.py (an untrained 784-64-64-64-64-10 ReLU MLP on uniform
  random inputs: nearly every instance has its own pattern, the worst case) written fresh
  into Neo4j and into LadybugDB, best of --repeats, for each of --batches (Neo4j rows per
  transaction, toolkit/store/neo4j.py BATCH).
- 1m: 1,000,000 synthetic instances (64 features read from a memmap, like
  bench/bench_stream.py, through a 64-32-32-32-32-10 ReLU MLP) into Neo4j at --heap.
- import: the same 1M run ingested into LadybugDB, `apd export --format neo4j-admin`, its
  import.sh running the real `neo4j-admin database import full` (tools/neo4j/admin) into a
  fresh database, a server started on it, and its node counts checked against LadybugDB's.

- pack: the 60k run's batches packed into Bolt messages by the driver, with neo4j-rust-ext
  and in pure Python (why the toolkit depends on the extension).

Every ingest runs in a client subprocess, so its peak RSS (getrusage) is the client's alone.
The server is tools/neo4j/serve; its heap is sampled from the JVM by one `jstat -gc PID 250`
(used = survivor + eden + old, every 250 ms) and its peak RSS is the kernel's VmHWM.

    python bench/bench_neo4j.py [--only 60k,1m,import,pack] [--batches 10000] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUN = "bench"
ADMIN = ROOT / "tools" / "neo4j" / "admin"


# -- the client: one ingest in its own process ----------------------------------------------

def recorded(shape: str, n: int, tmp: Path | None = None):
    """The synthetic run, recorded: (recording, labels). "60k" is bench_ingest's worst case
    (784 uniform features, 784-64-64-64-64-10); otherwise bench_stream's stream of 64
    features from a memmap under `tmp`, so the data never sits whole in memory."""
    import numpy as np
    import torch

    from loaders.models import build_mlp
    from loaders.record import record

    torch.manual_seed(0)
    if shape == "60k":
        x = np.random.default_rng(0).random((n, 784), dtype=np.float32)
        model = build_mlp(784, [64, 64, 64, 64], 10).eval()
    else:
        x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=(n, 64))
        rng = np.random.default_rng(0)
        for s in range(0, n, 100_000):
            x[s : s + 100_000] = rng.random((min(100_000, n - s), 64), dtype=np.float32)
        model = build_mlp(64, [32, 32, 32, 32], 10).eval()
    return record(model, x, batch_size=4096, device="cpu"), np.random.default_rng(1).integers(0, 10, n)


def client(store: str, shape: str, instances: int, batch: int | None, repeats: int) -> dict:
    """Record a synthetic run and write it fresh into `store`, best of `repeats`; seconds and peak RSS."""
    import numpy as np
    import pandas as pd
    import torch

    from loaders.ingest import build_frames, write_frames
    from toolkit.store import open_store
    import toolkit.store.neo4j as neo4j_store

    if batch:
        neo4j_store.BATCH = batch
    torch.set_num_threads(1)
    n = instances
    with tempfile.TemporaryDirectory() as tmp:
        rec, y = recorded(shape, n, Path(tmp))
        best_frames = best_write = float("inf")
        for k in range(repeats):
            target = store if store.startswith(("bolt://", "neo4j://")) else str(Path(store) / f"run{k}.lbug")
            t0 = time.perf_counter()
            frames = build_frames(RUN, rec, y, np.zeros(n, np.int64), np.zeros(n, bool), instances=shape == "60k")
            frames["nodes"]["Run"] = pd.DataFrame([{"uid": RUN, "run": RUN, "instances": n}])
            t1 = time.perf_counter()
            with open_store(target) as s:
                s.drop_run(RUN)  # a fresh write each time, also after an earlier client's (untimed)
                t2 = time.perf_counter()
                write_frames(s, RUN, frames)
                t3 = time.perf_counter()
                counts = {k: int(v) for k, v in s.counts(RUN).items()}
            best_frames, best_write = min(best_frames, t1 - t0), min(best_write, t3 - t2)
            del frames
    return {"instances": n, "frames_s": best_frames, "write_s": best_write, "client_peak_rss_mb": peak_rss_mb(),
            "patterns_per_layer": [layer.patterns for layer in rec.layers], "counts": counts,
            "batch": neo4j_store.BATCH, "rust_packing": rust_packing()}


def pack(packer: str) -> dict:
    """Seconds to pack every batch of the 60k run as the driver does, with `packer` ('rust' or
    'python': the extension hidden before the driver is imported)."""
    if packer == "python":
        sys.modules["neo4j._rust"] = None
    import io

    import numpy as np
    from neo4j._codec.packstream import v1

    from loaders.ingest import build_frames
    from toolkit.store import neo4j as neo4j_store
    from toolkit.store.schema import typed_nodes, typed_rels

    n = 60_000
    rec, y = recorded("60k", n)
    frames = build_frames(RUN, rec, y, np.zeros(n, np.int64), np.zeros(n, bool))
    steps = [("nodes", t, typed_nodes(t, f)) for t, f in frames["nodes"].items()]
    steps += [("rels", t, typed_rels(t, f)) for t, f in frames["rels"].items()]
    t0 = time.perf_counter()
    for _, _, params in neo4j_store._batches(steps):
        v1.Packer(io.BytesIO()).pack(params)
    return {"packer": packer, "pack_s": time.perf_counter() - t0, "rust_packing": rust_packing()}


def peak_rss_mb() -> float:
    """Peak RSS of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rust_packing() -> bool:
    """Whether the driver packs Bolt messages with neo4j-rust-ext (else in pure Python, ~20x slower)."""
    from neo4j._codec.packstream import v1

    return getattr(v1, "_rust_pack", None) is not None


def run_client(store: str, shape: str, instances: int, batch: int | None = None, repeats: int = 1) -> dict:
    args = [sys.executable, __file__, "--client", store, "--shape", shape, "--instances", str(instances),
            "--repeats", str(repeats), *(["--batch", str(batch)] if batch else [])]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"client failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the server and its memory ----------------------------------------------------------------

@contextmanager
def server(work: Path, heap: str, pagecache: str, data: Path | None = None) -> Iterator[dict]:
    """tools/neo4j/serve at this heap and page cache; yields its URIs and the JVM's pid."""
    from tests.neo4j_server import neo4j_server

    saved = {k: os.environ.get(k) for k in ("APD_NEO4J_HEAP", "APD_NEO4J_PAGECACHE", "APD_NEO4J_PASSWORD")}
    os.environ.update(APD_NEO4J_HEAP=heap, APD_NEO4J_PAGECACHE=pagecache)
    try:
        with neo4j_server(work, data=data) as srv:
            os.environ["APD_NEO4J_PASSWORD"] = srv["password"]
            pids = subprocess.run(["pgrep", "-P", str(srv["pgid"]), "java"], capture_output=True, text=True).stdout
            yield {**srv, "jvm": int(pids.split()[0])}
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


class HeapSampler:
    """Peak used and committed heap of a JVM, from one long-running `jstat -gc PID 250`."""

    def __init__(self, pid: int):
        self.peak_used = self.peak_committed = 0.0
        self.proc = subprocess.Popen(["jstat", "-gc", str(pid), "250"], stdout=subprocess.PIPE, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        header = None
        for line in self.proc.stdout:
            cols = line.split()
            if cols and cols[0] == "S0C":
                header = cols
                continue
            if header and len(cols) == len(header):
                v = dict(zip(header, map(float, cols)))
                self.peak_used = max(self.peak_used, (v["S0U"] + v["S1U"] + v["EU"] + v["OU"]) / 1024)
                self.peak_committed = max(self.peak_committed, (v["S0C"] + v["S1C"] + v["EC"] + v["OC"]) / 1024)

    def stop(self) -> dict:
        time.sleep(0.5)  # one more sample after the write
        self.proc.terminate()
        self.proc.wait()
        self.thread.join(5)
        return {"server_peak_heap_used_mb": self.peak_used, "server_peak_heap_committed_mb": self.peak_committed}


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM) so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- the parts --------------------------------------------------------------------------------

def part_60k(args, work: Path) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(dir=work) as lbug:
        before = load()
        got = run_client(lbug, "60k", args.instances, repeats=args.repeats)
        rows.append({"part": "60k", "backend": "LadybugDB", **got, "load_before": before, "load_after": load()})
    with server(work / "srv-60k", args.heap, args.pagecache) as srv:
        for batch in args.batches:
            before = load()
            heap = HeapSampler(srv["jvm"])
            got = run_client(srv["bolt"], "60k", args.instances, batch, args.repeats)
            rows.append({"part": "60k", "backend": "Neo4j", **got, **heap.stop(), "server_peak_rss_mb": vm_hwm_mb(srv["jvm"]),
                         "heap": args.heap, "pagecache": args.pagecache, "load_before": before, "load_after": load()})
    return rows


def part_1m(args, work: Path) -> list[dict]:
    with server(work / "srv-1m", args.heap, args.pagecache) as srv:
        before = load()
        heap = HeapSampler(srv["jvm"])
        got = run_client(srv["bolt"], "1m", args.big)
        return [{"part": "1m", "backend": "Neo4j", **got, **heap.stop(), "server_peak_rss_mb": vm_hwm_mb(srv["jvm"]),
                 "heap": args.heap, "pagecache": args.pagecache, "load_before": before, "load_after": load()}]


def part_import(args, work: Path) -> list[dict]:
    from toolkit.store import open_store

    lbug = work / "big-lbug"
    lbug.mkdir()
    before = load()
    got = run_client(str(lbug), "1m", args.big)
    store, export, home = lbug / "run0.lbug", work / "big-import", work / "big-home"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from toolkit.entry import main; main()", "export", "--run", RUN, "--format", "neo4j-admin",
                    "--out", str(export), "--store", str(store), "--json"], check=True, capture_output=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    t1 = time.perf_counter()
    done = subprocess.run([str(export / "import.sh"), "neo4j"], capture_output=True, text=True,
                          env={**os.environ, "NEO4J_ADMIN": f"{ADMIN} {home}", "APD_NEO4J_HEAP": args.heap})
    t2 = time.perf_counter()
    if done.returncode:
        raise RuntimeError(f"neo4j-admin import failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    t3 = time.perf_counter()
    with server(work / "srv-import", args.heap, args.pagecache, data=home / "data") as srv:
        started = time.perf_counter() - t3
        with open_store(srv["bolt"], read_only=True) as neo:
            imported = {k: int(v) for k, v in neo.counts(RUN).items()}
    summary = [ln.strip() for ln in done.stdout.splitlines() if "nodes" in ln or "relationships" in ln][-2:]
    return [{"part": "import", "backend": "Neo4j (neo4j-admin)", "instances": args.big, "ladybug_write_s": got["write_s"],
             "export_s": t1 - t0, "import_s": t2 - t1, "server_start_s": started, "imported": summary,
             "counts": imported, "counts_match": imported == got["counts"], "ladybug_counts": got["counts"],
             "load_before": before, "load_after": load()}]


def part_pack(args, work: Path) -> list[dict]:
    rows = []
    for packer in ("rust", "python"):
        before = load()
        done = subprocess.run([sys.executable, __file__, "--pack", packer], capture_output=True, text=True, check=True)
        rows.append({"part": "pack", **json.loads(done.stdout.strip().splitlines()[-1]), "load_before": before})
    return rows


def table(rows: list[dict]) -> list[tuple[str, str, str]]:
    out = []
    for r in rows:
        if r["part"] == "60k":
            what = f"{r['instances']:,} x 4 ingest, {r['backend']}" + (f", batch {r['batch']:,}" if r["backend"] == "Neo4j" else "")
            note = f"frames {r['frames_s']:.2f} s, client peak RSS {r['client_peak_rss_mb']:,.0f} MB"
            if r["backend"] == "Neo4j":
                note += (f", server heap peak {r['server_peak_heap_used_mb']:,.0f} MB used (-Xmx{r['heap']}), "
                         f"rust packing {r['rust_packing']}")
            out.append((what, f"{r['write_s']:.2f} s", f"{note}; load {r['load_before']} -> {r['load_after']}"))
        elif r["part"] == "1m":
            out.append((f"{r['instances']:,} x 4 ingest, Neo4j at -Xmx{r['heap']}, batch {r['batch']:,}", f"{r['write_s']:.1f} s",
                        f"patterns/layer {' / '.join(map(str, r['patterns_per_layer']))}; load {r['load_before']} -> {r['load_after']}"))
            out.append(("  server peak heap used / committed", f"{r['server_peak_heap_used_mb']:,.0f} MB",
                        f"{r['server_peak_heap_committed_mb']:,.0f} MB committed (jstat -gc, 250 ms)"))
            out.append(("  server peak RSS", f"{r['server_peak_rss_mb']:,.0f} MB", f"VmHWM; page cache {r['pagecache']}"))
            out.append(("  client peak RSS", f"{r['client_peak_rss_mb']:,.0f} MB", "getrusage of the client process"))
        elif r["part"] == "pack":
            out.append((f"60,000 x 4 run's batches packed to Bolt, {r['packer']}", f"{r['pack_s']:.2f} s",
                        f"columns built and packed (rust extension loaded: {r['rust_packing']}); load {r['load_before']}"))
        else:
            big = f"{r['instances']:,}"
            out.append((f"{big} LadybugDB ingest (the export's source)", f"{r['ladybug_write_s']:.1f} s", ""))
            out.append((f"{big} apd export --format neo4j-admin", f"{r['export_s']:.1f} s", ""))
            out.append((f"{big} neo4j-admin database import full", f"{r['import_s']:.1f} s", "; ".join(r["imported"])))
            out.append(("  server start on the imported data", f"{r['server_start_s']:.1f} s",
                        f"node counts equal LadybugDB's: {r['counts_match']}; load {r['load_before']} -> {r['load_after']}"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="60k,1m,import,pack", help="comma-separated parts: 60k, 1m, import, pack")
    ap.add_argument("--instances", type=int, default=60_000, help="instances of the 60k part")
    ap.add_argument("--big", type=int, default=1_000_000, help="instances of the 1m and import parts")
    ap.add_argument("--batches", default="", help="Neo4j rows per transaction to compare (default: BATCH)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--heap", default="1g", help="server -Xmx")
    ap.add_argument("--pagecache", default="512m", help="server page cache")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="60k", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--pack", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pack:
        print(json.dumps(pack(args.pack)))
        return
    if args.client:
        print(json.dumps(client(args.client, args.shape, args.instances, args.batch, args.repeats)))
        return
    args.batches = [int(b) for b in args.batches.split(",") if b] or [None]
    parts = {"60k": part_60k, "1m": part_1m, "import": part_import, "pack": part_pack}
    rows = []
    with tempfile.TemporaryDirectory(prefix="apd-bench-neo4j.") as tmp:
        for name in args.only.split(","):
            rows += parts[name](args, Path(tmp))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{os.cpu_count()} cores; client and server on this machine; load average 1/5/15 min per row")
    lines = table(rows)
    width = max(len(r[0]) for r in lines)
    for name, value, note in lines:
        print(f"{name:<{width}}  {value:>10}  {note}")


if __name__ == "__main__":
    main()
