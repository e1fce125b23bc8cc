"""`apd demo`: from a fresh directory, prints its summary and leaves a store `apd runs` lists."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loaders.datasets import load_dataset
from loaders.models import load_model
from tests.oracles import layer_states, predictions


def _apd_script() -> str:
    found = shutil.which("apd") or str(Path(sys.executable).with_name("apd"))
    if not Path(found).exists():
        pytest.skip("the apd console script is not installed")
    return found


@pytest.mark.embedded_only  # `apd demo` in a fresh directory makes a LadybugDB file; the Neo4j leg would run the same
def test_demo_console_script_in_a_fresh_directory(tmp_path, apd):
    env = {k: v for k, v in os.environ.items() if k != "APD_STORE"}
    result = subprocess.run([_apd_script(), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("trained 64-32-32-32-10 relu on digits for 30 epochs: train accuracy 0.")
    assert lines[1].split()[:3] == ["run", "instances", "accuracy"]
    assert lines[2].split()[:2] == ["digits-train", "1347"] and lines[3].split()[:2] == ["digits-test", "450"]
    assert (tmp_path / "apd.lbug").exists() and (tmp_path / "apd-demo.pt").exists()
    apd.store_path = str(tmp_path / "apd.lbug")
    runs = {r["run"]: r for r in apd.json("runs")}
    assert set(runs) == {"digits-train", "digits-test"}
    assert runs["digits-test"]["n_instance"] == 450 and runs["digits-train"]["epoch"] == 30
    assert runs["digits-train"]["model"] == str((tmp_path / "apd-demo.pt").resolve())


def test_demo_json_summary(apd, tmp_path):
    """Every number of the summary against a forward pass of the model file it trained:
    accuracy, distinct patterns per layer, and the APD's edges (distinct consecutive pattern
    pairs, distinct last pattern -> predicted label pairs)."""
    info = apd.json("demo", "--epochs", "2", "--model", str(tmp_path / "m.pt"))
    assert [r["run"] for r in info["runs"]] == ["digits-train", "digits-test"]
    assert info["model"] == str(tmp_path / "m.pt") and (tmp_path / "m.pt").is_file()
    model = load_model(tmp_path / "m.pt")
    for r, split in zip(info["runs"], ("train", "test")):
        data = load_dataset("digits", split)
        pred = predictions(model, data.x)
        ids = [np.unique(st, axis=0, return_inverse=True)[1].ravel() for st in layer_states(model, data.x)]
        assert r["instances"] == len(data.y) and r["labels"] == len(np.unique(pred))
        assert r["accuracy"] == pytest.approx(float((pred == data.y).mean()), abs=1e-12)
        assert [p["patterns"] for p in r["patterns_per_layer"]] == [int(i.max()) + 1 for i in ids]
        assert all(p["instances"] == len(data.y) for p in r["patterns_per_layer"])
        pairs = sum(len(set(zip(a.tolist(), b.tolist()))) for a, b in zip(ids, ids[1:]))
        assert r["next_edges"] == pairs and r["predicts_edges"] == len(set(zip(ids[-1].tolist(), pred.tolist())))
        assert r["apd_nodes"] == sum(p["patterns"] for p in r["patterns_per_layer"]) + r["labels"]
        assert r["apd_edges"] == pairs + r["predicts_edges"]
