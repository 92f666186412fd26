"""A cached pool of synthetic RGB-D frames plus deterministic batch sampling and augmentation."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..data.synthetic import SynthConfig, make_frame

EVAL_SEED_OFFSET = 10_000_000  # held-out frames come from a disjoint seed range


def cached_rgb_depth(path: Path | None, build: Callable[[], tuple[np.ndarray, np.ndarray]]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``build()`` once, then from ``path`` (.npz, written atomically); ``path=None``: no cache."""
    if path is not None and path.exists():
        z = np.load(path)
        return z["rgb"], z["depth"]
    rgb, depth = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, rgb=rgb, depth=depth)
        tmp.replace(path)
    return rgb, depth


def frame_pool(seed: int, n: int, cfg: SynthConfig, cache_dir: str | Path | None = None,
               desc: str = "synthetic frames") -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 RGB and (N, H, W) float32 depth (+inf sky) for seeds seed*n_max + i; cached as .npz."""
    path = Path(cache_dir) / f"synth_s{seed}_n{n}_{cfg.height}x{cfg.width}.npz" if cache_dir is not None else None

    def build() -> tuple[np.ndarray, np.ndarray]:
        rgb = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
        depth = np.empty((n, cfg.height, cfg.width), np.float32)
        for i in tqdm(range(n), desc=desc, leave=False, mininterval=5):
            f = make_frame(seed * 1_000_003 + i, cfg)
            rgb[i], depth[i] = f.rgb, f.depth
        return rgb, depth

    return cached_rgb_depth(path, build)


def flip_and_jitter(rng: np.random.Generator, x: torch.Tensor, d: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Horizontal flips (of x and d, along the last axis) and colour jitter drawn from ``rng``; also
    returns the (B,) flip mask so callers can mirror what goes with the images (e.g. cx)."""
    batch = x.shape[0]
    flip = torch.from_numpy(rng.random(batch) < 0.5)
    x[flip], d[flip] = x[flip].flip(-1), d[flip].flip(-1)
    gain = torch.from_numpy(rng.uniform(0.75, 1.25, (batch, 3, 1, 1))).float()
    gamma = torch.from_numpy(rng.uniform(0.8, 1.25, (batch, 1, 1, 1))).float()
    x = (x * gain).clamp(0, 1) ** gamma
    grey = torch.from_numpy(rng.random(batch) < 0.1)
    x[grey] = x[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    return x, d, flip


def sample_batch(rgb: np.ndarray, depth: np.ndarray, batch: int, seed: int, step: int,
                 augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of a run: (B, 3, H, W) float RGB in [0, 1] and (B, 1, H, W) depth; flips and colour jitter."""
    rng = np.random.default_rng([seed, step])
    idx = rng.integers(0, len(rgb), batch)
    x = torch.from_numpy(rgb[idx]).permute(0, 3, 1, 2).float() / 255
    d = torch.from_numpy(depth[idx])[:, None].clone()
    if augment:
        x, d, _ = flip_and_jitter(rng, x, d)
    return x.contiguous(), d
