"""Pre- and post-processing as pure functions, matching the official ``run.py`` path."""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError

DEFAULT_AREA = 1024 * 768


def keep_aspect_size(h0: int, w0: int, target_area: int = DEFAULT_AREA) -> tuple[int, int, int]:
    """Official ``resize_keep_aspect`` size rule -> (h, w, cv2 interpolation flag)."""
    if h0 < 1 or w0 < 1:
        raise InputError(f"image must be at least 1x1, got {h0}x{w0}")
    s = math.sqrt(target_area / (h0 * w0))
    h = max(16, 16 * round(h0 * s / 16))
    w = max(16, 16 * round(w0 * s / 16))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return h, w, interp


def resize_keep_aspect(img: np.ndarray, target_area: int = DEFAULT_AREA) -> np.ndarray:
    """(H0, W0, 3) uint8 -> (h, w, 3) uint8, h and w multiples of 16, area ~= target_area."""
    h, w, interp = keep_aspect_size(img.shape[0], img.shape[1], target_area)
    return cv2.resize(img, (w, h), interpolation=interp)


def check_rgb_u8(img: np.ndarray, max_aspect: float | None = None) -> np.ndarray:
    """Validate an (H, W, 3) uint8 frame; raise InputError naming the problem."""
    if not isinstance(img, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) image, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"expected uint8 pixels, got {img.dtype}")
    h, w = img.shape[:2]
    if h < 1 or w < 1:
        raise InputError(f"image is empty ({h}x{w})")
    if max_aspect is not None and max(h / w, w / h) > max_aspect:
        raise InputError(f"aspect ratio {w}x{h} exceeds the limit {max_aspect}:1")
    return img


def to_tensor(rgb_u8: np.ndarray) -> torch.Tensor:
    """(h, w, 3) uint8 RGB -> (1, 3, h, w) float32 in [0, 1] (official ``image2tensor`` after BGR->RGB)."""
    t = torch.from_numpy(np.ascontiguousarray(rgb_u8)).permute(2, 0, 1)[None]
    return t.to(torch.float32) / 255.0


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 1, H0, W0) bilinear with half-pixel centres (run.py's resize back)."""
    return F.interpolate(depth, size=size, mode="bilinear", align_corners=False)


def minmax_u8(depth: np.ndarray) -> np.ndarray:
    """run.py's visualisation scaling: (d - min)/(max - min)*255 truncated to uint8; constant -> 0."""
    d = depth.astype(np.float32)
    lo, hi = float(np.nanmin(d)), float(np.nanmax(d))
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return np.zeros(d.shape, np.uint8)
    return ((d - lo) / (hi - lo) * 255).astype(np.uint8)
