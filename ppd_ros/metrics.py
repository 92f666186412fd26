"""Depth quality metrics: AbsRel, delta1, edge-restricted Chamfer distance and flying-pixel ratio.

Every metric takes ``(pred, gt, mask=None, ...)`` with (H, W) depth maps in the same unit (metres
unless aligned), and returns a float. Valid pixels are ``mask & isfinite(gt) & (gt > 0) &
isfinite(pred)``. ``align`` fits ``s * pred (+ t)`` to ``gt`` by least squares in DEPTH space over
the valid pixels, per image, before measuring ("none" for metric predictions; "scale" or
"scale_shift" for relative ones; a PPD log-depth output must be turned into depth first).
A metric with nothing to measure (no valid pixel, no depth edge) returns NaN.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter
from scipy.spatial import cKDTree

from .errors import InputError
from .geometry import Intrinsics, depth_to_points

Align = Literal["none", "scale", "scale_shift"]


def valid_pixels(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool of pixels where both maps are usable (see module docstring)."""
    p, g = np.asarray(pred), np.asarray(gt)
    if p.shape != g.shape or p.ndim != 2:
        raise InputError(f"pred {p.shape} and gt {g.shape} must be equal (H, W) shapes")
    v = np.isfinite(g) & (g > 0) & np.isfinite(p)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != g.shape:
            raise InputError(f"mask shape {m.shape} does not match gt shape {g.shape}")
        v &= m
    return v


def align_depth(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                align: Align = "scale_shift") -> tuple[np.ndarray, float, float]:
    """Least-squares ``s * pred + t`` (t = 0 for "scale") against gt over valid pixels.

    Returns the aligned (H, W) float64 map and (s, t); "none" returns pred unchanged with (1, 0).
    """
    if align not in ("none", "scale", "scale_shift"):
        raise InputError(f"align must be 'none', 'scale' or 'scale_shift', got {align!r}")
    v = valid_pixels(pred, gt, mask)
    p = np.asarray(pred, dtype=np.float64)
    if align == "none" or not v.any():
        return p, 1.0, 0.0
    x, y = p[v], np.asarray(gt, dtype=np.float64)[v]
    if align == "scale":
        den = float(x @ x)
        s = float(x @ y) / den if den > 0 else 1.0
        return s * p, s, 0.0
    a = np.stack([x, np.ones_like(x)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, y, rcond=None)
    return s * p + t, float(s), float(t)


def abs_rel(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, align: Align = "none") -> float:
    """Mean of |pred - gt| / gt over valid pixels (after optional alignment)."""
    v = valid_pixels(pred, gt, mask)
    if not v.any():
        return float("nan")
    p, _, _ = align_depth(pred, gt, v, align)
    g = np.asarray(gt, dtype=np.float64)[v]
    return float(np.mean(np.abs(p[v] - g) / g))


def delta1(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, align: Align = "none",
           threshold: float = 1.25) -> float:
    """Fraction of valid pixels with max(pred/gt, gt/pred) < ``threshold`` (after optional alignment)."""
    v = valid_pixels(pred, gt, mask)
    if not v.any():
        return float("nan")
    p, _, _ = align_depth(pred, gt, v, align)
    g = np.asarray(gt, dtype=np.float64)[v]
    pv = p[v]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(pv / g, g / pv)
    return float(np.mean((pv > 0) & (ratio < threshold)))  # why pv > 0: a negative ratio is "< threshold"


def _local_range(gt: np.ndarray, valid: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) min and max of valid gt in the (2r+1)^2 window (inf / -inf where none)."""
    size = 2 * radius + 1
    g = np.asarray(gt, dtype=np.float64)
    lo = minimum_filter(np.where(valid, g, np.inf), size=size, mode="constant", cval=np.inf)
    hi = maximum_filter(np.where(valid, g, -np.inf), size=size, mode="constant", cval=-np.inf)
    return lo, hi


def depth_edge_mask(gt: np.ndarray, mask: np.ndarray | None = None, edge_threshold: float = 0.1,
                    radius: int = 1) -> np.ndarray:
    """(H, W) bool: valid gt pixels whose (2r+1)^2 window spans a relative depth jump
    (max - min) / min > ``edge_threshold`` (both sides of every discontinuity)."""
    if radius < 1:
        raise InputError(f"radius must be >= 1, got {radius}")
    v = valid_pixels(gt, gt, mask)
    lo, hi = _local_range(gt, v, radius)
    with np.errstate(invalid="ignore"):
        return v & (hi - lo > edge_threshold * lo)


def flying_pixel_ratio(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None,
                       rel_threshold: float = 0.05, edge_threshold: float = 0.1, radius: int = 1,
                       align: Align = "none") -> float:
    """Fraction of gt depth-edge pixels whose prediction floats between the two sides of the edge.

    At each edge pixel (:func:`depth_edge_mask`) the local sides are the min (foreground) and max
    (background) of valid gt in the (2r+1)^2 window; the prediction is flying when it lies in the
    gap, farther than ``rel_threshold`` (relative) from both: fg*(1+tau) < pred < bg*(1-tau).
    Edge pixels without a finite prediction (e.g. removed by a filter) are not counted.
    """
    v = valid_pixels(pred, gt, mask)
    edges = depth_edge_mask(gt, mask, edge_threshold, radius) & v
    if not edges.any():
        return float("nan")
    p, _, _ = align_depth(pred, gt, v, align)
    lo, hi = _local_range(gt, valid_pixels(gt, gt, mask), radius)  # sides from gt alone
    tau = rel_threshold
    flying = (p > lo * (1 + tau)) & (p < hi * (1 - tau))
    return float(flying[edges].mean())


def edge_chamfer_distance(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, *,
                          K: Intrinsics, edge_threshold: float = 0.1, radius: int = 1,
                          align: Align = "none") -> float:
    """Symmetric Chamfer distance (metres) between pred and gt clouds restricted to gt depth edges.

    Both maps are back-projected with ``K`` (depth_image_proc convention) at the pixels of
    :func:`depth_edge_mask` (pred only where it is finite and > 0, so missing predictions raise
    the gt -> pred term); CD = (mean_p min_g |p - g| + mean_g min_p |g - p|) / 2.
    """
    v = valid_pixels(pred, gt, mask)
    edges = depth_edge_mask(gt, mask, edge_threshold, radius)
    p, _, _ = align_depth(pred, gt, v, align)
    pred_edges = edges & v & (p > 0)
    if not pred_edges.any():
        return float("nan")
    pp = depth_to_points(p, K)[pred_edges].astype(np.float64)
    gp = depth_to_points(np.asarray(gt, dtype=np.float32), K)[edges].astype(np.float64)
    d_pg, _ = cKDTree(gp).query(pp, k=1)
    d_gp, _ = cKDTree(pp).query(gp, k=1)
    return float((d_pg.mean() + d_gp.mean()) / 2)


# --- temporal stability of a stream (bench/bench_stability.py, the demo's summary) ---------------
def static_background_flicker(depths: np.ndarray, rgbs: np.ndarray, rgb_tol: int = 8) -> float:
    """Flicker where the scene held still, as a fraction of the sequence's depth spread.

    Mean over frame pairs of the median |depth_t - depth_{t-1}| on pixels whose RGB did not change
    (every channel within ``rgb_tol`` levels) and whose depth is finite in both frames, divided by the
    sequence's spread (p95 - p5 of all finite depths). ``depths`` (T, H, W), ``rgbs`` (T, H, W, 3) uint8
    at the same size. NaN when no pair has a still pixel.
    """
    d = np.asarray(depths, dtype=np.float64)
    rgb = np.asarray(rgbs)
    if d.ndim != 3 or rgb.shape[:3] != d.shape or rgb.shape[-1] != 3:
        raise InputError(f"depths (T, H, W) {d.shape} and rgbs (T, H, W, 3) {rgb.shape} must match")
    finite = np.isfinite(d)
    if d.shape[0] < 2 or not finite.any():
        return float("nan")
    lo, hi = np.percentile(d[finite], [5, 95])
    spread = hi - lo
    if spread <= 0:
        return float("nan")
    still = np.abs(np.diff(rgb.astype(np.int16), axis=0)).max(-1) <= rgb_tol  # (T-1, H, W)
    per_pair = []
    for t in range(d.shape[0] - 1):
        m = still[t] & finite[t] & finite[t + 1]
        if m.any():
            per_pair.append(float(np.median(np.abs(d[t + 1][m] - d[t][m]))))
    return float(np.mean(per_pair)) / spread if per_pair else float("nan")


def scale_jitter(depths: np.ndarray) -> float:
    """Coefficient of variation over frames of each frame's median depth, on pixels finite in every frame.

    For a static camera the true scale is constant, so this is the metric stage's scale jitter.
    """
    d = np.asarray(depths, dtype=np.float64)
    if d.ndim != 3:
        raise InputError(f"depths must be (T, H, W), got {d.shape}")
    m = np.isfinite(d).all(0)
    if not m.any():
        return float("nan")
    s = np.median(d[:, m], axis=1)
    return float(np.std(s) / np.mean(s)) if np.mean(s) != 0 else float("nan")
