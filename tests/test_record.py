"""Recording: bit packing, Hardtanh states, fx packing nodes, chunk merging, keys, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from loaders import record as record_mod
from loaders.datasets import load_dataset
from loaders.models import build_mlp
from loaders.record import decode_bits, pack, pattern_bits, pattern_keys, record
from tests import factories
from tests.oracles import forward
from toolkit.piecewise import trace
from toolkit.errors import ApdError


def test_relu_bits_are_strict_and_msb_first():
    z = torch.tensor([[1.0, -1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 5.0], [0.0] * 9])
    packed = pack(pattern_bits(z, trace(nn.Sequential(nn.ReLU())).ops[0]))
    assert packed.shape == (2, 8) and packed.dtype == torch.uint8  # 9 bits -> one 64-bit word
    assert packed[0, :2].tolist() == [0b10010000, 0b10000000] and packed[1].sum() == 0
    assert packed[0, 2:].sum() == 0


def test_hardtanh_three_states_two_bits():
    z = torch.tensor([[-2.0, -1.0, 0.3, 1.0, 1.5]])
    packed = pack(pattern_bits(z, trace(nn.Sequential(nn.Hardtanh())).ops[0]))
    # (z > -1, z > 1) per neuron: low 00, low 00 (at the kink), linear 10, linear 10, high 11
    assert packed[0, :2].tolist() == [0b00001010, 0b11000000]
    assert decode_bits([f"{packed[0, 0]:02x}{packed[0, 1]:02x}"], 5, "hardtanh").tolist() == [[0, 0, 1, 1, 2]]


def test_digits_patterns_equal_a_plain_forward_pass():
    torch.manual_seed(0)
    model = build_mlp(64, [70, 32, 5], 10)  # 70 neurons: patterns span two 64-bit words
    x = load_dataset("digits", "train").x
    rec = record(model, x, batch_size=100, chunk=500, device="cpu")  # several chunks to merge
    expected = forward(model, x, torch.float32)[0]  # as record runs it
    for layer, states in zip(rec.layers, expected):
        decoded = decode_bits(layer.bits(), layer.neurons, layer.kind)
        assert layer.patterns == len(np.unique(states, axis=0))
        assert np.array_equal(decoded[rec.ids[:, layer.layer - 1]], states)
        assert np.array_equal(layer.ones(), decoded.sum(axis=1))
    assert np.array_equal(rec.pred, model(torch.from_numpy(x)).argmax(1).numpy())
    assert [r.name for r in rec.layers] == ["act1", "act2", "act3"]


def test_factory_model_with_all_three_kinds():
    model = factories.mixed()
    x, _ = factories.synthetic()
    rec = record(model, x, batch_size=64, chunk=200, device="cpu")
    assert [(r.name, r.kind, r.neurons, r.nbits) for r in rec.layers] == [
        ("relu", "relu", 12, 12), ("leaky", "leaky_relu", 70, 70), ("clip", "hardtanh", 9, 18)
    ]
    for layer, states in zip(rec.layers, model.states(torch.from_numpy(x))):
        decoded = decode_bits(layer.bits(), layer.neurons, layer.kind)
        assert layer.patterns == len(np.unique(states, axis=0))
        assert np.array_equal(decoded[rec.ids[:, layer.layer - 1]], states)
    hard = rec.layers[2]
    assert set(np.unique(decode_bits(hard.bits(), 9, "hardtanh"))) == {0, 1, 2}
    assert np.array_equal(hard.ones(), (decode_bits(hard.bits(), 9, "hardtanh") == 1).sum(axis=1))


def test_chunking_does_not_change_the_patterns():
    model = factories.mixed()
    x, _ = factories.synthetic()
    # same batches (GEMM rounding depends on batch shape); only the chunk merging differs
    one = record(model, x, batch_size=10, chunk=10_000, device="cpu")
    many = record(model, x, batch_size=10, chunk=50, device="cpu")
    for a, b in zip(one.layers, many.layers):
        assert sorted(a.keys()) == sorted(b.keys())
        assert np.array_equal(a.bits()[one.ids[:, a.layer - 1]], b.bits()[many.ids[:, b.layer - 1]])


def test_keys_are_deterministic_and_collisions_raise(monkeypatch):
    rows = np.zeros((2, 8), dtype=np.uint8)
    rows[1, 0] = 1
    keys = pattern_keys(rows, 5)
    assert keys[0] != keys[1] and all(len(k) == 16 for k in keys)
    assert list(pattern_keys(rows, 5)) == list(keys) and pattern_keys(rows, 6)[0] != keys[0]
    rec = record(factories.mixed(), factories.synthetic()[0], device="cpu")
    monkeypatch.setattr(record_mod, "pattern_keys", lambda rows, nbits: np.full(len(rows), "0" * 16, dtype=object))
    with pytest.raises(ApdError, match="pattern key collision in layer 1"):
        rec.layers[0].keys()


def test_recording_leaves_the_model_untouched_even_when_the_forward_fails():
    model = build_mlp(64, [8, 8], 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_modules()]
    with pytest.raises(ApdError, match="rejects inputs with 5 features"):
        record(model, np.zeros((10, 5), dtype=np.float32), device="cpu")
    record(model, np.zeros((10, 64), dtype=np.float32), device="cpu")
    assert [n for n, _ in model.named_modules()] == names  # packing nodes live in a traced copy of the graph
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_refusals():
    x = factories.synthetic(20)[0]
    with pytest.raises(ApdError, match="no piecewise-linear activations"):
        record(factories.no_activations(), x, device="cpu")
    with pytest.raises(ApdError, match=r"layer 3 \(Sigmoid\) is not piecewise-linear"):
        record(factories.sigmoid_mix(), x, device="cpu")
    broken = build_mlp(factories.FEATURES, [4], 3)
    with torch.no_grad():
        broken.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ApdError, match="NaN or inf outputs"):
        record(broken, x, device="cpu")
    with pytest.raises(ApdError, match="unknown device"):
        record(broken, x, device="tpu")


def test_functional_residual_and_shared_modules_are_read_from_the_graph():
    model = factories.functional()
    x, _ = factories.synthetic()
    rec = record(model, x, batch_size=128, device="cpu")
    assert [(r.name, r.kind) for r in rec.layers] == [("act", "relu"), ("leaky_relu", "leaky_relu"), ("act_1", "relu")]
    for layer, states in zip(rec.layers, model.states(torch.from_numpy(x))):
        decoded = decode_bits(layer.bits(), layer.neurons, layer.kind)
        assert np.array_equal(decoded[rec.ids[:, layer.layer - 1]], states)


def test_lenet_conv_patterns_equal_forward_hook_masks():
    from loaders.models import build_lenet5

    torch.manual_seed(0)
    model = build_lenet5(10).eval()
    x = np.random.default_rng(0).random((300, 784), dtype=np.float32)
    rec = record(model, x, batch_size=300, chunk=150, device="cpu")  # two chunks merged
    masks = forward(model, x, torch.float32)[0]
    assert [(r.name, r.neurons) for r in rec.layers] == [("act1", 6 * 28 * 28), ("act2", 16 * 10 * 10),
                                                         ("act3", 120), ("act4", 84)]
    for layer, mask in zip(rec.layers, masks):
        decoded = decode_bits(layer.bits(), layer.neurons, layer.kind)
        assert np.array_equal(decoded[rec.ids[:, layer.layer - 1]], mask)
        assert layer.patterns == len(np.unique(mask, axis=0))


def test_maxpool_pattern_is_the_window_argmax():
    model = nn.Sequential(nn.Unflatten(1, (2, 4, 6)), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 3))
    x = np.random.default_rng(1).normal(size=(50, 48)).astype(np.float32)
    rec = record(model, x, device="cpu")
    (layer,) = rec.layers
    assert (layer.kind, layer.neurons) == ("maxpool", 48)
    # brute force: in every 2x2 window of every channel, the position of the first maximum
    win = torch.from_numpy(x).view(50, 2, 2, 2, 3, 2).permute(0, 1, 2, 4, 3, 5).reshape(50, 2, 2, 3, 4)
    first = F.one_hot(win.argmax(-1), 4).view(50, 2, 2, 3, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(50, 48)
    decoded = decode_bits(layer.bits(), 48, "maxpool")[rec.ids[:, 0]]
    assert np.array_equal(decoded, first.numpy()) and (decoded.sum(1) == 12).all()
