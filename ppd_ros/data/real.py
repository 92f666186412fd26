"""The three real test frames with ground truth, bundled at 320 px width under ``data/assets/real_*``.

Sources and licences: ``data/assets/README.md``. Depth is metres (NaN = no ground truth). Aloe's GT
is disparity converted with unverified Middlebury-2006 constants (Z = 3.740 * 160 / (d + 270) m), so
only its aligned (relative) metrics are meaningful.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .textures import ASSETS

REAL_NAMES = ("motorcycle", "kinect", "aloe")


@dataclass
class RealFrame:
    name: str
    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres, NaN = no ground truth
    K: np.ndarray | None  # (3, 3) intrinsics of this image size, None when unknown
    metric: bool  # whether the depth is trustworthy in metres


def load_real_frame(name: str, assets: Path = ASSETS) -> RealFrame:
    """One bundled frame by name (``motorcycle``, ``kinect`` or ``aloe``)."""
    if name not in REAL_NAMES:
        raise KeyError(f"unknown real frame {name!r}; known: {', '.join(REAL_NAMES)}")
    meta = json.loads((assets / "real_frames.json").read_text())[name]
    bgr = cv2.imread(str(assets / f"real_{name}_rgb.png"), cv2.IMREAD_COLOR)
    mm = cv2.imread(str(assets / f"real_{name}_depth_mm.png"), cv2.IMREAD_UNCHANGED)
    if bgr is None or mm is None:
        raise FileNotFoundError(f"bundled frame {name!r} is missing from {assets}")
    depth = np.where(mm > 0, mm.astype(np.float32) / 1000.0, np.nan).astype(np.float32)
    K = np.array(meta["K"], np.float64) if meta.get("K") is not None else None
    return RealFrame(name, np.ascontiguousarray(bgr[..., ::-1]), depth, K, bool(meta["metric"]))


def load_real_frames(assets: Path = ASSETS) -> list[RealFrame]:
    return [load_real_frame(n, assets) for n in REAL_NAMES]
