"""Small metric-scale and focal head for the embedded model (MoGe-2's role: metres + intrinsics).

It reads the frozen EfficientNet-Lite0 trunk's stride-32 map (pooled mean and max) and predicts, per
image, the 2 % / 98 % quantiles of log(1 + depth) in metres and the log half-diagonal focal length
(MoGe-2's focal unit: fx / (0.5 * sqrt(W^2 + H^2))). With the encoder's coarse normalised depth this
gives a metric depth map that the metric stage fits PPD's relative depth to.
"""
from __future__ import annotations

import torch
from torch import nn


class SmallMetricHead(nn.Module):
    """(B, 320, h, w) trunk features -> (B, 3): [log1p-depth q02, log1p-depth q98, log focal]."""

    def __init__(self, in_channels: int = 320, hidden: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * in_channels, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 3))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([feat.mean((2, 3)), feat.amax((2, 3))], 1)  # (B, 2C)
        out = self.mlp(pooled)  # (B, 3)
        lo = out[:, 0]
        hi = lo + nn.functional.softplus(out[:, 1]) + 1e-3  # hi > lo
        return torch.stack([lo, hi, out[:, 2]], 1)
