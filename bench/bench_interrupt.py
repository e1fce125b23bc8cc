"""Cut a run's replace off at every kill point with SIGINT, SIGTERM and SIGKILL; print what
the store holds afterwards, as a table. `partial` must never appear.

The run is the worst case for the store: an untrained 784-64-64-64-10 ReLU MLP recorded over
uniform random MNIST-sized inputs (nearly every instance its own pattern). Its frames are
built once; each cut is a child process that replaces the run with them (the ingest write
path for a large run, chunks of --chunk instances) and is stopped by APD_TEST_KILL_AT. The store
is then opened read-only, as a user's next `apd runs` would, and compared with the run's
old and new contents.

    python bench/bench_interrupt.py [--instances 70000] [--chunk 25000]   (about 3 minutes at 70k)
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = ("INT", "TERM", "KILL")
POINTS = ("marked", "applied", "copied", "checkpoint", "committed", "committed:2", "finished")


def frames_for(n: int, seed: int) -> dict:
    import torch

    from loaders.ingest import build_frames
    from loaders.models import build_mlp
    from loaders.record import record

    torch.manual_seed(seed)
    x = np.random.default_rng(seed).random((n, 784), dtype=np.float32)
    y = np.random.default_rng(seed + 1).integers(0, 10, n)
    rec = record(build_mlp(784, [64, 64, 64], 10).eval(), x, device="cpu")
    frames = build_frames("big", rec, y, np.zeros(n, np.int64), np.zeros(n, bool))
    frames["nodes"]["Run"] = pd.DataFrame([{"uid": "big", "run": "big", "instances": n, "layers": 3}])
    return frames


def child(store: str, frames_file: str, chunk: int) -> None:
    """Replace run `big`: the graph, then instances `chunk` at a time, in one batch, exactly as
    loaders.ingest.write_frames does (not imported: it would load torch into every cut)."""
    from toolkit.store import open_store, outcome
    from toolkit.store.schema import NODES

    with open(frames_file, "rb") as f:
        frames = pickle.load(f)
    nodes, rels = frames["nodes"], frames["rels"]
    inst, acts = nodes.pop("Instance"), rels.pop("ACTIVATES")
    n, layers = len(inst), len(acts) // len(inst)
    outcome.install_sigterm()
    try:
        with open_store(store) as s, s.batch("big", list(NODES), op="ingest"):
            s.write("big", nodes, rels, replace=list(NODES))
            for start in range(0, n, chunk):
                stop = min(n, start + chunk)
                rows = (np.arange(layers)[:, None] * n + np.arange(start, stop)).ravel()
                s.write("big", {"Instance": inst.iloc[start:stop]}, {"ACTIVATES": acts.iloc[rows]})
    except (KeyboardInterrupt, outcome.Terminated) as exc:
        print(outcome.line(), file=sys.stderr)
        sys.exit(outcome.EXIT_CODES[type(exc)])


def fingerprint(path: str) -> tuple[tuple, str]:
    """What run `big` is in the store (opened read-only, recovering as a user's next read
    would), and the line that open printed, if any."""
    from toolkit.store import open_store

    said = io.StringIO()
    with redirect_stderr(said), open_store(path, read_only=True) as s:
        counts = s.counts("big")
        edges = s.read("MATCH (i:Instance)-[a:ACTIVATES]->(:Pattern) WHERE i.run = 'big' RETURN count(a) AS n")
        support = s.query("patterns", run="big")[["layer", "key", "support"]]
    got = (tuple(sorted(counts[counts > 0].items())), int(edges["n"].iloc[0]), tuple(map(tuple, support.values.tolist())))
    return got, said.getvalue().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=70_000)
    ap.add_argument("--chunk", type=int, default=25_000)
    ap.add_argument("--child", nargs=2, metavar=("STORE", "FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child, args.chunk)
        return
    from toolkit.store.guard import store_bytes

    with tempfile.TemporaryDirectory() as tmp:
        base, clean = str(Path(tmp) / "base.lbug"), str(Path(tmp) / "clean.lbug")
        old_file, new_file = str(Path(tmp) / "old.pkl"), str(Path(tmp) / "new.pkl")
        for seed, file in ((0, old_file), (1, new_file)):
            with open(file, "wb") as f:
                pickle.dump(frames_for(args.instances, seed), f)
        subprocess.run([sys.executable, __file__, "--chunk", str(args.chunk), "--child", base, old_file], check=True)
        shutil.copy(base, clean)
        subprocess.run([sys.executable, __file__, "--chunk", str(args.chunk), "--child", clean, new_file], check=True)
        (old, _), (new, _) = fingerprint(base), fingerprint(clean)
        clean_size = store_bytes(clean)
        print(f"{args.instances:,} instances, chunks of {args.chunk:,}; size = store files after the cut / a clean store")
        widths = (12, 6, 8, 6, 6, 9)
        head = ("kill point", "signal", "exit", "time", "size", "outcome", "said (by the cut process, else by the next open)")
        print("  ".join(v.ljust(w) for v, w in zip(head, (*widths, 0))), flush=True)
        rows = []
        for point in POINTS:
            for sig in SIGNALS:
                path = str(Path(tmp) / "cut.lbug")
                for f in Path(tmp).glob("cut.lbug*"):
                    f.unlink()
                shutil.copy(base, path)
                env = {**os.environ, "APD_TEST_KILL_AT": point, "APD_TEST_KILL_SIGNAL": sig}
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, __file__, "--chunk", str(args.chunk), "--child", path, new_file],
                                      env=env, capture_output=True, text=True)
                took = time.perf_counter() - t0
                code = proc.returncode if proc.returncode >= 0 else f"-{signal.Signals(-proc.returncode).name}"
                size = store_bytes(path) / clean_size
                got, on_open = fingerprint(path)
                outcome = {old: "old kept", new: "new kept"}.get(got, "removed" if not got[0] else "partial")
                said = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else on_open
                row = (point, sig, str(code), f"{took:.1f} s", f"{size:.2f}x", outcome, said)
                rows.append(row)
                print("  ".join(v.ljust(w) for v, w in zip(row, (*widths, 0))), flush=True)
    partial = sum(r[5] == "partial" for r in rows)
    print(f"partial outcomes: {partial}")
    sys.exit(1 if partial else 0)


if __name__ == "__main__":
    main()
