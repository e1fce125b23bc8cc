"""Random pruning masks must not be correlated with the initial weights."""
from __future__ import annotations

import torch

from loaders.models import apply_masks, build_mlp
from loaders.train import _random_masks


def test_kept_weights_keep_both_signs_and_neurons_start_alive():
    torch.manual_seed(0)
    model = build_mlp(784, [36, 12], 10, "relu", 0.01)
    masks = _random_masks(model, 0.33, seed=0)
    apply_masks(model, masks)
    w = model.fc1.weight[masks["fc1.weight"]]
    share_positive = float((w > 0).float().mean())
    assert 0.4 < share_positive < 0.6  # was 0.0 when the masks shared the init's stream
    x = torch.rand(500, 784)
    alive = (model.fc1(x) > 0).any(0).sum().item()
    assert alive >= 30  # of 36 first-layer neurons
    assert abs(float(masks["fc1.weight"].float().mean()) - 0.33) < 0.02
