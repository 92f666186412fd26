"""Two-layer MLP (``fc1``/``fc2``, as timm and DINOv2 name it)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class Mlp(nn.Module):
    """fc1 -> activation -> fc2, with biases."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def gelu_tanh() -> nn.Module:
    """GELU with the tanh approximation (DiT's MLP)."""
    return nn.GELU(approximate="tanh")
