"""Per-channel residual scaling (DINOv2 / π3 ``ls1``/``ls2``)."""
from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """x * gamma, with gamma a learned (dim,) vector."""

    def __init__(self, dim: int, init_values: float = 1.0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma
