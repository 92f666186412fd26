"""PPD's training target: per-image normalised log(1 + depth), as in the official ppd_train.py."""
from __future__ import annotations

import torch


def normalized_log_depth(depth: torch.Tensor, max_depth: float = 80.0) -> torch.Tensor:
    """(B, 1, H, W) metres (+inf = sky) -> target in [-1, 0.5]: log(1+d) scaled so its 2 % / 98 %
    quantiles (over finite pixels below ``max_depth``) map to 0 / 1, clamped to [-0.5, 1], minus 0.5.
    Sky and far pixels get the far end (0.5)."""
    b = depth.shape[0]
    logd = torch.log1p(torch.nan_to_num(depth, posinf=max_depth, nan=max_depth).clamp(0, max_depth))
    out = torch.empty_like(logd)
    for i in range(b):  # per image; quantiles over valid pixels only
        d = depth[i]
        v = torch.isfinite(d) & (d < max_depth) & (d > 0)
        vals = logd[i][v] if v.any() else logd[i].flatten()
        lo, hi = torch.quantile(vals, torch.tensor([0.02, 0.98], dtype=vals.dtype))
        norm = (logd[i] - lo) / (hi - lo).clamp_min(1e-6)
        norm = torch.where(v, norm, torch.ones_like(norm))
        out[i] = norm.clamp(-0.5, 1.0) - 0.5
    return out
