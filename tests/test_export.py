"""`apd export`: tables as CSV / Parquet and a whole run as neo4j-admin import files,
checked against the frames the run was written from (pandas) and the store's counts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.apd_graph import write_random_run
from tests.cli import Apd, one_line_error
from tests.oracles import as_listed, flows_groupby
from toolkit.store import open_store
from toolkit.store.schema import NODES

RUN = "exp"


def _split_run(store_path: str) -> tuple[dict, dict]:
    """Writes RUN beside another run, splits it and stores its flows over layers 2-3;
    returns RUN's frames."""
    with open_store(store_path) as s:
        frames = write_random_run(s, RUN, n=300, seed=5)
        write_random_run(s, "other", n=50, seed=6)  # must not leak into the export
    apd = Apd(store_path)
    apd("split", "--run", RUN)
    apd("flows", "--run", RUN, "--layers", "2,3")
    return frames


@pytest.fixture
def frames(shared_store, apd):
    """RUN's frames, with `apd` pointed at the (shared: exports only read it) store."""
    apd.store_path, frames = shared_store(_split_run)
    return frames


def _admin(folder: Path, name: str) -> pd.DataFrame:
    """Read one header + data pair as neo4j-admin would: the header file names the columns."""
    header = (folder / f"{name}.header.csv").read_text().strip().split(",")
    return pd.read_csv(folder / f"{name}.csv", header=None, names=header, keep_default_na=False, dtype=str)


def test_neo4j_admin_files_equal_the_store(frames, apd, tmp_path):
    nodes, rels = frames
    out = tmp_path / "admin"
    info = apd.json("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(out))
    with open_store(apd.store_path, read_only=True) as s:
        counts = s.counts(RUN).to_dict()
    assert {f["name"]: f["rows"] for f in info["nodes"]} == {k: v for k, v in counts.items() if v}
    script = (out / "import.sh").read_text()
    for f in info["nodes"] + info["relationships"]:
        kind = "nodes" if f in info["nodes"] else "relationships"
        assert f"--{kind}={f['name']}.header.csv,{f['name']}.csv" in script

    for name, n in counts.items():
        if not n:
            continue
        got = _admin(out, name)
        spec = NODES[name].props
        types = {"STRING": "", "INT64": ":long", "DOUBLE": ":double", "BOOLEAN": ":boolean"}
        assert list(got.columns) == ["uid:ID"] + [f"{p}{types[t]}" for p, t in spec.items() if p != "uid"] + [":LABEL"]
        assert len(got) == n and got["uid:ID"].is_unique and (got[":LABEL"] == name).all()
        assert (got["run"] == RUN).all()

    pat = _admin(out, "Pattern").set_index("uid:ID")
    want = nodes["Pattern"].set_index("uid").sort_index()
    assert pat.loc[want.index, "support:long"].astype(int).tolist() == want["support"].tolist()
    inst = _admin(out, "Instance").set_index("uid:ID").loc[nodes["Instance"]["uid"]]
    assert inst["correct:boolean"].tolist() == np.where(nodes["Instance"]["correct"], "true", "false").tolist()

    for rel in ("ACTIVATES", "NEXT", "PREDICTS"):  # the same graph: edges per layer, counts summed
        got = _admin(out, rel)
        assert list(got.columns[:3]) == [":START_ID", ":END_ID", ":TYPE"] and (got[":TYPE"] == rel).all()
        want = rels[rel]
        assert len(got) == len(want)
        assert set(zip(got[":START_ID"], got[":END_ID"])) == set(zip(want["src"], want["dst"]))
    layer_of = _admin(out, "Pattern").set_index("uid:ID")["layer:long"].astype(int)
    act = _admin(out, "ACTIVATES")
    assert act[":END_ID"].map(layer_of).value_counts().sort_index().tolist() == [300, 300, 300]
    nxt = _admin(out, "NEXT")
    per_layer = nxt.assign(layer=nxt[":START_ID"].map(layer_of), count=nxt["count:long"].astype(int)).groupby("layer")
    want_next = rels["NEXT"].assign(layer=rels["NEXT"]["src"].map(nodes["Pattern"].set_index("uid")["layer"]))
    assert per_layer.size().tolist() == want_next.groupby("layer").size().tolist()
    assert per_layer["count"].sum().tolist() == [300, 300]
    assert len(_admin(out, "IN")) == 300 and len(_admin(out, "THROUGH")) == 2 * counts["Flow"]
    assert set(_admin(out, "SPLIT_INTO").columns) == {":START_ID", ":END_ID", ":TYPE", "gain:double"}

    before = sorted(p.name for p in out.iterdir())
    apd.json("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(out))  # replaces, never adds
    assert sorted(p.name for p in out.iterdir()) == before and len(_admin(out, "Instance")) == 300
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_tables_as_csv_and_parquet(frames, apd, tmp_path):
    nodes, rels = frames
    apd.json("export", "--run", RUN, "--what", "instances", "--out", str(tmp_path / "i.csv"))
    got = pd.read_csv(tmp_path / "i.csv")
    want = nodes["Instance"]
    assert got["idx"].tolist() == list(range(300))
    assert got[["label", "pred", "correct"]].values.tolist() == want[["label", "pred", "correct"]].values.tolist()
    assert (got["cluster"] >= 0).all()  # written by `apd split`

    info = apd.json("export", "--run", RUN, "--what", "patterns", "--format", "parquet", "--out", str(tmp_path / "p.pq"))
    pq = pd.read_parquet(tmp_path / "p.pq")
    assert info["rows"] == len(pq) == len(nodes["Pattern"])
    merged = pq.merge(nodes["Pattern"], on="uid", suffixes=("", "_want"))
    assert (merged["support"] == merged["support_want"]).all() and (merged["layer"] == merged["layer_want"]).all()

    apd.json("export", "--run", RUN, "--what", "flows", "--layers", "2,3", "--out", str(tmp_path / "f.csv"))
    flows = pd.read_csv(tmp_path / "f.csv")
    acts = rels["ACTIVATES"]  # the frames the run was written from, not the store
    keys = acts.pivot(index="src", columns="layer", values="dst")[[2, 3]]
    inst = nodes["Instance"].set_index("uid").loc[keys.index]
    want = as_listed(flows_groupby(keys.reset_index(drop=True), inst["pred"], inst["correct"]))
    assert flows["strength"].tolist() == want["strength"].tolist()
    assert flows["patterns"].tolist() == [" ".join(p) for p in want["patterns"]]

    apd.json("export", "--run", RUN, "--what", "clusters", "--out", str(tmp_path / "c.csv"))
    clusters = pd.read_csv(tmp_path / "c.csv")
    with open_store(apd.store_path, read_only=True) as s:
        assert len(clusters) == s.counts(RUN)["Cluster"]
    assert clusters.loc[clusters["level"] == clusters["level"].max(), "size"].tolist() == [300]


def test_clusters_need_split(apd, store_path, tmp_path):
    with open_store(store_path) as s:
        write_random_run(s, "raw", n=40, seed=1)
    result = apd("export", "--run", "raw", "--what", "clusters", "--out", str(tmp_path / "c.csv"), ok=False)
    assert result.exit_code == 1
    assert result.stderr == "Error: run 'raw' has no clusters: run `apd split --run raw` first\n"
    assert not (tmp_path / "c.csv").exists()


def test_admin_refuses_a_folder_it_did_not_write(frames, apd, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = apd("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(tmp_path / "mine"), ok=False)
    one_line_error(result, "must be a new or empty folder")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_admin_keeps_a_users_file_in_an_earlier_export(frames, apd, tmp_path):
    """An earlier export folder where the user left a file of theirs is not replaced."""
    out = tmp_path / "dump"
    apd("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(out))
    (out / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = apd("export", "--run", RUN, "--format", "neo4j-admin", "--out", str(out), ok=False)
    one_line_error(result, "holding nothing else")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
