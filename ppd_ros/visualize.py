"""Depth colouring as run.py does it (matplotlib 'Spectral' LUT on min-max uint8), without matplotlib."""
from __future__ import annotations

import numpy as np

from .preprocess import minmax_u8

# ColorBrewer Spectral, the 11 anchors matplotlib interpolates linearly into its 256-entry LUT.
_SPECTRAL = np.array([
    [0x9e, 0x01, 0x42], [0xd5, 0x3e, 0x4f], [0xf4, 0x6d, 0x43], [0xfd, 0xae, 0x61], [0xfe, 0xe0, 0x8b],
    [0xff, 0xff, 0xbf], [0xe6, 0xf5, 0x98], [0xab, 0xdd, 0xa4], [0x66, 0xc2, 0xa5], [0x32, 0x88, 0xbd],
    [0x5e, 0x4f, 0xa2]], dtype=np.float64) / 255.0


def spectral_lut() -> np.ndarray:
    """(256, 3) uint8 RGB: entry i is the colour at i/255 (near = red, far = violet)."""
    x = np.linspace(0.0, 1.0, 256)
    anchors = np.linspace(0.0, 1.0, len(_SPECTRAL))
    rgb = np.stack([np.interp(x, anchors, _SPECTRAL[:, c]) for c in range(3)], axis=1)
    return (rgb * 255).astype(np.uint8)


_LUT = spectral_lut()


def colorize(depth: np.ndarray, bgr: bool = True) -> np.ndarray:
    """(H, W) depth -> (H, W, 3) uint8; NaN/inf pixels black. BGR by default (for cv2.imwrite)."""
    finite = np.isfinite(depth)
    d = np.where(finite, depth, np.nan)
    idx = minmax_u8(np.nan_to_num(d, nan=np.nanmin(d) if finite.any() else 0.0))
    out = _LUT[idx]
    out[~finite] = 0
    return out[..., ::-1].copy() if bgr else out
