"""Backward splitting and flows at MNIST scale: 60k instances x 5 hidden layers.

Splitting: the vectorised `split` (target <= 0.5 s) against a straightforward pandas
implementation of the same FIFO algorithm (one group-by per cluster). Flows: the Cypher
query on the embedded store against a pandas group-by of the same rows.

Run: .venv/bin/python bench/bench_split.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import best  # noqa: E402
from tests.apd_graph import write_run  # noqa: E402
from tests.apd_synthetic import hierarchical  # noqa: E402
from toolkit.apd.clusters import split_run  # noqa: E402
from tests.oracles import as_listed, flows_groupby  # noqa: E402
from toolkit.apd.flows import query_flows  # noqa: E402
from toolkit.apd.runs import read_patterns  # noqa: E402
from toolkit.apd.splitting import EPS, split  # noqa: E402
from toolkit.store import open_store  # noqa: E402

N, LAYERS = 60_000, 5


def entropy(series: pd.Series) -> float:
    p = series.value_counts(normalize=True).to_numpy()
    return float(-(p * np.log2(p)).sum())


def pandas_split(patterns: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The algorithm as one would write it with pandas: pop a cluster, group it by the next layer."""
    df = pd.DataFrame(patterns, columns=range(1, patterns.shape[1] + 1)).assign(y=target)
    final = np.full(len(df), -1)
    queue, next_id = deque([(df.index.to_numpy(), patterns.shape[1] + 1, 0)]), 1
    while queue:
        members, level, cid = queue.popleft()
        part = df.loc[members]
        groups = part.groupby(level - 1, sort=True)
        gain = entropy(part["y"]) - sum(len(g) / len(part) * entropy(g["y"]) for _, g in groups)
        if gain <= EPS:
            final[members] = cid
            continue
        for _, g in groups:
            if len(g) == 1 or level - 1 == 1:
                final[g.index.to_numpy()] = next_id
            else:
                queue.append((g.index.to_numpy(), level - 1, next_id))
            next_id += 1
    return final


def pandas_flows(rows: pd.DataFrame, layers: list[int]) -> pd.DataFrame:
    """Flows by pandas from the rows `read_patterns` returns (uids rebuilt from the keys)."""
    sel = rows[rows["layer"].isin(layers)]
    uid = "bench:p:" + sel["layer"].astype(str) + ":" + sel["key"].astype(str)
    keys = sel.assign(uid=uid).pivot(index="idx", columns="layer", values="uid")
    per = rows.drop_duplicates("idx").set_index("idx").loc[keys.index]
    return as_listed(flows_groupby(keys.reset_index(drop=True), per["pred"], per["correct"]))


def main() -> None:
    patterns, label, pred = hierarchical(N, LAYERS, seed=0)
    rows = []
    t_split, result = best(lambda: split(patterns, pred), repeat=5)
    clusters = result.clusters
    rows.append(("split, vectorised (numpy)", t_split,
                 f"{len(clusters)} clusters, {int(clusters['final'].sum())} final"))
    t_pd, final = best(lambda: pandas_split(patterns, pred), repeat=1)
    same = bool((final == result.final_cluster).all())
    rows.append(("split, pandas per cluster", t_pd, f"same partition and ids: {same}"))

    with tempfile.TemporaryDirectory() as tmp, open_store(str(Path(tmp) / "bench.lbug")) as store:
        start = time.perf_counter()
        write_run(store, "bench", patterns, label, pred)
        rows.append(("write run (test helper)", time.perf_counter() - start, f"{N} x {LAYERS} ACTIVATES"))
        t_read, data = best(lambda: read_patterns(store, "bench"))
        rows.append(("read instance_patterns", t_read, f"{len(data.frame)} rows"))
        t_run, _ = best(lambda: split_run(store, "bench"), repeat=1)
        rows.append(("split_run: read + split + write back", t_run, "Cluster, IN, SPLIT_INTO, Instance.cluster"))
        for layers in ([4, 5], [1, 2, 3, 4, 5]):
            t_cy, cy = best(lambda: query_flows(store, "bench", layers))
            t_pf, pf = best(lambda: pandas_flows(data.frame, layers))
            equal = cy.equals(pf)
            rows.append((f"flows {layers}, Cypher (LadybugDB)", t_cy, f"{len(cy)} flows"))
            rows.append((f"flows {layers}, pandas on read rows", t_pf, f"equal to Cypher: {equal}"))

    width = max(len(r[0]) for r in rows)
    print(f"{N} instances x {LAYERS} layers (synthetic, hierarchical patterns)")
    print(f"{'step':<{width}}  {'seconds':>8}  note")
    for name, secs, note in rows:
        print(f"{name:<{width}}  {secs:8.3f}  {note}")


if __name__ == "__main__":
    main()
