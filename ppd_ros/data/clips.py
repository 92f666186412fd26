"""Short synthetic clips with exact depth for stream-stability checks (bench/bench_stability.py, the demo).

Kinds: "static" (fixed camera, only sensor noise changes), "pan" (slow yaw, the camera stays put),
"fast" (fast translation), "cut" (two static scenes back to back), "zoom" (fixed camera whose focal
length jumps by ``ZOOM`` half-way). Camera effects are fixed per clip (no per-frame exposure changes),
so pixels that did not move keep their colour up to the sensor noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic import SynthConfig, atlas, intrinsics, look_pose, render, sample_scene

KINDS = ("static", "pan", "fast", "cut", "zoom")
ZOOM = 1.6
NOISE = 1.5 / 255  # sensor noise (std, [0, 1] units)


@dataclass
class Clip:
    kind: str
    rgb: np.ndarray  # (T, H, W, 3) uint8
    depth: np.ndarray  # (T, H, W) float32 metres (+inf sky)
    event: int = -1  # frame index of the cut / zoom (-1: none)
    K: np.ndarray | None = None  # (3, 3) intrinsics of the first frame


def _scene(seed: int, cfg: SynthConfig):
    rng = np.random.default_rng(seed)
    K = intrinsics(rng, cfg.height, cfg.width, cfg.hfov_deg)
    pos = np.array([0.0, rng.uniform(0.5, 1.8), 0.0])
    yaw, pitch = rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(-15, 5))
    scene = sample_scene(rng, look_pose(pos, yaw, pitch, 0.0), len(atlas(cfg.atlas_seed)), cfg.max_objects)
    return rng, K, pos, yaw, pitch, scene


def _shot(scene, K, pose, cfg: SynthConfig, rng: np.random.Generator, exposure: float):
    f = render(scene, K, pose, cfg.height, cfg.width, atlas(cfg.atlas_seed))
    img = np.clip(f.rgb.astype(np.float64) / 255 * exposure + rng.normal(0, NOISE, f.rgb.shape), 0, 1)
    return (img * 255 + 0.5).astype(np.uint8), f.depth


def make_clip(kind: str, seed: int, length: int = 16, cfg: SynthConfig = SynthConfig()) -> Clip:
    """One clip of ``kind`` (see module doc), fully determined by ``seed``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng, K, pos, yaw, pitch, scene = _scene(seed, cfg)
    noise = np.random.default_rng([seed, 7])
    exposure = rng.uniform(0.9, 1.15)
    half = length // 2
    frames = []
    if kind == "cut":
        _, K2, pos2, yaw2, pitch2, scene2 = _scene(seed + 100_000, cfg)
    base = look_pose(pos, yaw, pitch, 0.0)
    fwd, right = base[:3, 2] * np.array([1, 0, 1]), base[:3, 0]  # level forward, camera right (world)
    for i in range(length):
        k, p, y, pt, sc = K, pos, yaw, pitch, scene
        if kind == "pan":
            y = yaw + np.deg2rad(0.5) * i
        elif kind == "fast":
            p = pos + (0.06 * fwd + 0.03 * right) * i
        elif kind == "cut" and i >= half:
            k, p, y, pt, sc = K2, pos2, yaw2, pitch2, scene2
        elif kind == "zoom" and i >= half:
            k = K.copy()
            k[0, 0] *= ZOOM
            k[1, 1] *= ZOOM
        frames.append(_shot(sc, k, look_pose(p, y, pt, 0.0), cfg, noise, exposure))
    rgb = np.stack([f[0] for f in frames])
    depth = np.stack([f[1] for f in frames]).astype(np.float32)
    return Clip(kind, rgb, depth, half if kind in ("cut", "zoom") else -1, K)
