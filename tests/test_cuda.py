"""The CUDA paths (recording, boundary distances, both partition paths, training) against
the CPU: the same patterns bit for bit, the same regions. Skipped, with the reason, on a
machine where torch sees no CUDA device; run them on one that has it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loaders.datasets import load_dataset
from loaders.ingest import ingest
from loaders.models import load_model
from loaders.train import train
from toolkit.regions import boundary_distance, partition, plane_from_anchors
from toolkit.store import open_store
from tests.factories import FEATURES, mlp, residual

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="torch sees no CUDA device here: these compare the GPU paths with the CPU")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cuda") / "m.pt"
    train("digits", [32, 32], epochs=2, out=path, progress=False, device="cpu")
    return path


def test_recording_on_cuda_gives_the_cpu_patterns(model_file, tmp_path):
    for device in ("cpu", "cuda"):
        ingest(model_file, "digits", "test", device, str(tmp_path / f"{device}.lbug"), device=device)
    frames = []
    for device in ("cpu", "cuda"):
        with open_store(str(tmp_path / f"{device}.lbug"), read_only=True) as s:
            frames.append(s.query("instance_patterns", run=device).drop(columns=["run"], errors="ignore"))
    assert len(frames[0]) > 0
    assert frames[0][["idx", "layer", "key"]].equals(frames[1][["idx", "layer", "key"]])


def test_boundary_distance_on_cuda(model_file):
    x = load_dataset("digits", "test").x
    model = load_model(model_file)
    cpu = boundary_distance(model, x, device="cpu").numpy()
    np.testing.assert_allclose(boundary_distance(model, x, device="cuda").cpu().numpy(), cpu, rtol=1e-9)


@pytest.mark.parametrize("make, d", [(lambda: mlp([8, 24, 24, 3], seed=3), 8), (residual, FEATURES)],
                         ids=["mlp-chain", "graph-engine"])
def test_partition_on_cuda_gives_the_cpu_regions(make, d):
    net = make().double().eval()
    plane = plane_from_anchors(*np.random.default_rng(0).normal(size=(3, d)))
    cpu, gpu = partition(net, plane, device="cpu"), partition(net, plane, device="cuda")
    assert gpu.count == cpu.count > 10
    order = lambda p: np.lexsort(p.pattern.cpu().numpy().T)  # noqa: E731
    np.testing.assert_array_equal(gpu.pattern.cpu().numpy()[order(gpu)], cpu.pattern.numpy()[order(cpu)])
    np.testing.assert_allclose(gpu.area.cpu().numpy()[order(gpu)], cpu.area.numpy()[order(cpu)], rtol=1e-9)


def test_training_on_cuda_records_what_the_cpu_records(tmp_path):
    path = tmp_path / "g.pt"
    train("digits", [16, 16], epochs=1, out=path, progress=False, device="cuda")
    model = load_model(path)  # a CUDA-trained checkpoint loads on the CPU
    for device in ("cpu", "cuda"):
        ingest(path, "digits", "test", device, str(tmp_path / "g.lbug"), device=device)
    with open_store(str(tmp_path / "g.lbug"), read_only=True) as s:
        a, b = (s.query("instance_patterns", run=r)[["idx", "layer", "key"]] for r in ("cpu", "cuda"))
    assert len(a) == 2 * len(load_dataset("digits", "test").y) and a.equals(b)  # two hidden layers
    assert next(model.parameters()).device.type == "cpu"
