"""Replaces one run of a store the way ingest writes a large run, for the interrupt tests.

Run as `python -m tests.store_writer STORE RUN SEED N CHUNK` from the repository root, with
APD_TEST_KILL_AT / APD_TEST_KILL_SIGNAL naming where to cut the write off. The write is
`loaders.ingest.write_frames`' chunked path (graph first, then instances CHUNK at a time,
all in one batch), without importing torch so that each cut costs well under a second.
Exit codes and lines are the CLI's (130 / 143 and `interrupted: ...`; 1 and `Error: ...`).
"""
from __future__ import annotations

import sys

import numpy as np

from tests.apd_graph import random_apd
from toolkit.errors import ApdError
from toolkit.store import open_store, outcome
from toolkit.store.schema import NODES


def graph(run: str, seed: int, n: int) -> tuple[dict, dict]:
    """A random run; ACTIVATES layer-major as ingest builds it."""
    nodes, rels = random_apd(run, n=n, L=3, seed=seed, width=40)
    rels["ACTIVATES"] = rels["ACTIVATES"].sort_values("layer", kind="stable", ignore_index=True)
    return nodes, rels


def write(store: str, run: str, seed: int, n: int, chunk: int) -> None:
    nodes, rels = graph(run, seed, n)
    instances, activates = nodes["Instance"], rels["ACTIVATES"]
    with open_store(store) as s, s.batch(run, list(NODES), op="ingest"):
        s.write(run, {k: v for k, v in nodes.items() if k != "Instance"},
                {k: v for k, v in rels.items() if k != "ACTIVATES"}, replace=list(NODES))
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            rows = (np.arange(3)[:, None] * n + np.arange(start, stop)).ravel()
            s.write(run, {"Instance": instances.iloc[start:stop]}, {"ACTIVATES": activates.iloc[rows]})


if __name__ == "__main__":
    outcome.install_sigterm()
    try:
        write(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    except (KeyboardInterrupt, outcome.Terminated) as exc:
        print(outcome.line(), file=sys.stderr)
        sys.exit(outcome.EXIT_CODES[type(exc)])
    except ApdError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
