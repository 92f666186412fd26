"""Texture atlas for the synthetic renderer: procedural noise, stripes, checkers and bundled photo crops.

Every texture is a (S, S, 3) float32 RGB tile in [0, 1] that repeats; the atlas is deterministic
for a given seed. Photo crops come from ``ppd_ros/data/assets/texture_*.jpg`` (CC0 / public-domain
images shipped in scikit-image; see ``assets/README.md``).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent / "assets"
TILE = 128


def photo_textures(size: int = TILE) -> list[np.ndarray]:
    """The bundled photo crops as (size, size, 3) float32 RGB tiles, sorted by file name."""
    tiles = []
    for p in sorted(ASSETS.glob("texture_*.jpg")):
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        tiles.append(cv2.resize(bgr[..., ::-1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    return tiles


def value_noise(rng: np.random.Generator, size: int = TILE, octaves: int = 4) -> np.ndarray:
    """(size, size) tileable multi-octave value noise in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        grid = np.concatenate([grid, grid[:1]], 0)
        grid = np.concatenate([grid, grid[:, :1]], 1)  # wrap so the tile repeats seamlessly
        up = cv2.resize(grid, (size + size // cells, size + size // cells), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:size, :size]
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    a = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.35, 3), 0.02, 0.98).astype(np.float32)
    return a, b


def procedural_texture(rng: np.random.Generator, kind: str, size: int = TILE) -> np.ndarray:
    """One (size, size, 3) tile of the given kind: noise, stripes, checker, marble or solid."""
    a, b = _palette(rng)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "noise":
        m = value_noise(rng, size)
    elif kind == "stripes":
        f = int(rng.integers(2, 12))
        m = (np.sin(2 * np.pi * f * (xx if rng.random() < 0.5 else yy)) > rng.uniform(-0.5, 0.5)).astype(np.float32)
        m = 0.8 * m + 0.2 * value_noise(rng, size)
    elif kind == "checker":
        f = int(rng.choice([2, 4, 8]))
        m = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
        m = 0.85 * m + 0.15 * value_noise(rng, size)
    elif kind == "marble":
        n = value_noise(rng, size)
        m = 0.5 + 0.5 * np.sin(2 * np.pi * (int(rng.integers(1, 4)) * xx + 3 * n))
    else:  # solid with faint grain
        m = 0.1 * value_noise(rng, size)
    return (a * m[..., None] + b * (1 - m[..., None])).astype(np.float32)


def build_atlas(seed: int, n_procedural: int = 48, size: int = TILE) -> np.ndarray:
    """(M, size, size, 3) float32: ``n_procedural`` generated tiles then the photo crops (and colour-shifted copies)."""
    rng = np.random.default_rng(seed)
    kinds = ["noise", "stripes", "checker", "marble", "solid"]
    tiles = [procedural_texture(rng, kinds[i % len(kinds)], size) for i in range(n_procedural)]
    for photo in photo_textures(size):
        tiles.append(photo)
        tiles.append(np.clip(photo[..., rng.permutation(3)] * rng.uniform(0.6, 1.2), 0, 1).astype(np.float32))
    return np.stack(tiles)
