"""Training of the small metric head (per-image log-depth range + focal) on frozen trunk features.

The targets are exact for synthetic frames: the 2 % / 98 % quantiles of log(1 + depth) (finite, < 80 m)
and the log half-diagonal focal of the rendering camera. Deterministic by seed.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data.synthetic import SynthConfig, intrinsics
from ..models.small_encoder import EfficientNetLite0
from ..models.small_metric import SmallMetricHead
from .dataset import EVAL_SEED_OFFSET, frame_pool


def frame_intrinsics(seed: int, n: int, cfg: SynthConfig) -> np.ndarray:
    """(N, 3, 3) K of pool frames (``make_frame`` draws K first from its seed, so it is recomputed exactly)."""
    return np.stack([intrinsics(np.random.default_rng(seed * 1_000_003 + i), cfg.height, cfg.width, cfg.hfov_deg)
                     for i in range(n)])


def head_targets(depth: np.ndarray, K: np.ndarray) -> torch.Tensor:
    """(N, H, W) metres + (N, 3, 3) -> (N, 3) [q02, q98 of log1p depth, log half-diagonal focal]."""
    n, h, w = depth.shape
    out = np.empty((n, 3), np.float32)
    for i in range(n):
        d = depth[i][np.isfinite(depth[i]) & (depth[i] < 80) & (depth[i] > 0)]
        lo, hi = np.quantile(np.log1p(d), [0.02, 0.98]) if d.size else (0.0, 1.0)
        out[i] = lo, hi, math.log(K[i, 0, 0] / (0.5 * math.hypot(w, h)))
    return torch.from_numpy(out)


@torch.no_grad()
def trunk_features(backbone: EfficientNetLite0, rgb: np.ndarray, batch: int = 64) -> torch.Tensor:
    feats = []
    for i in tqdm(range(0, len(rgb), batch), desc="trunk features", leave=False, mininterval=10):
        x = torch.from_numpy(rgb[i:i + batch]).permute(0, 3, 1, 2).float() / 255
        feats.append(backbone(x)[3])
    return torch.cat(feats)


def train_metric_head(backbone: EfficientNetLite0, seed: int, frames: int, cfg: SynthConfig, cache: Path,
                      steps: int = 3000, batch: int = 128) -> tuple[SmallMetricHead, dict[str, float]]:
    """Fit the head; returns it and held-out synthetic errors (|log ratio| of q98 depth and focal)."""
    backbone.eval()
    rgb, depth = frame_pool(seed, frames, cfg, cache)
    x, y = trunk_features(backbone, rgb), head_targets(depth, frame_intrinsics(seed, frames, cfg))
    ev_seed = EVAL_SEED_OFFSET + seed
    ev_rgb, ev_depth = frame_pool(ev_seed, 48, cfg, cache)
    ex, ey = trunk_features(backbone, ev_rgb), head_targets(ev_depth, frame_intrinsics(ev_seed, 48, cfg))
    torch.manual_seed(seed)
    head = SmallMetricHead()
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(steps), desc="metric head", mininterval=10):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = (head(x[idx]) - y[idx]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    head.eval()
    with torch.no_grad():
        err = (head(ex) - ey).abs().mean(0)
    return head, {"heldout_abs_log_q02": float(err[0]), "heldout_abs_log_q98": float(err[1]),
                  "heldout_abs_log_focal": float(err[2])}
