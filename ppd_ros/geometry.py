"""Metric alignment and depth -> points geometry, as pure numpy functions.

Conventions (all functions): depth is an (H, W) array in metres, pixel (v, u) = (row, column) with
integer indices, the camera frame is the OpenCV optical frame (x right, y down, z forward) and a
pixel is back-projected as ``X = (u - cx) * Z / fx``, ``Y = (v - cy) * Z / fy``. This is the formula
of both the official ``depth2pcd`` and depth_image_proc's ``convertDepth``; they differ only in the
``cx, cy`` they feed it (official: ``W/2, H/2`` from MoGe's normalised K; ROS: the CameraInfo's
values, whose pixel centres sit at integer coordinates). Invalid depth is non-finite or <= 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from scipy.spatial import cKDTree

from .errors import InputError


@runtime_checkable
class PinholeLike(Protocol):
    """Anything with pixel-unit ``fx, fy, cx, cy`` attributes (e.g. ``CameraIntrinsics``)."""

    fx: float
    fy: float
    cx: float
    cy: float


Intrinsics = np.ndarray | PinholeLike


def pinhole(K: Intrinsics) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels from a (3, 3) K, a (3, 4) P or an object with those attributes."""
    if isinstance(K, PinholeLike) and not isinstance(K, np.ndarray):
        fx, fy, cx, cy = float(K.fx), float(K.fy), float(K.cx), float(K.cy)
    else:
        k = np.asarray(K, dtype=np.float64)
        if k.shape not in ((3, 3), (3, 4)):
            raise InputError(f"intrinsics must be a (3, 3) K or (3, 4) P matrix, got shape {k.shape}")
        fx, fy, cx, cy = (float(k[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
        raise InputError(f"intrinsics need finite fx, fy > 0, got fx={fx}, fy={fy}, cx={cx}, cy={cy}")
    return fx, fy, cx, cy


def _depth2d(depth: np.ndarray, name: str = "depth") -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim != 2 or d.size == 0:
        raise InputError(f"{name} must be a non-empty (H, W) array, got shape {d.shape}")
    if not np.issubdtype(d.dtype, np.floating):
        # why: a 16UC1 image is millimetres; reading it as metres would be silently 1000x off
        raise InputError(f"{name} must be float metres, got {d.dtype} (convert 16UC1 mm with /1000 first)")
    return d


def _same_shape(name: str, a: np.ndarray, ref: np.ndarray) -> None:
    if a.shape[:2] != ref.shape[:2]:
        raise InputError(f"{name} shape {a.shape} does not match depth shape {ref.shape}")


@dataclass(frozen=True)
class LogDepthFit:
    """Result of the log(1+depth) alignment: ``metric = clip(exp(a*pred + b) - 1, 1e-3, max_depth)``.

    ``a, b`` are the map actually applied (after fallbacks); ``ransac_a/b`` and ``inlier_mask``
    (over the masked pixels, row-major) are the raw RANSAC estimate, None when RANSAC failed.
    """

    a: float
    b: float
    max_depth: float
    branch: Literal["ransac", "mean_ratio", "identity"]
    ransac_a: float | None = None
    ransac_b: float | None = None
    inlier_mask: np.ndarray | None = None
    n_trials: int = 0


def fit_log_depth_ransac(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                         rng: np.random.RandomState) -> LogDepthFit:
    """Fit ``log(1 + target) ~ a * pred + b`` with the official RANSAC and its fallbacks.

    Args:
        pred: (H, W) relative depth (PPD output, an affine image of log(1+depth)).
        target: (H, W) metric depth in metres (MoGe-2), read only where ``mask``.
        mask: (H, W) bool, pixels used for the fit; must have at least one True pixel.
        rng: numpy RandomState consumed exactly like sklearn's RANSAC consumes the global stream
            in the official code (two ``randint(n)`` draws per trial for n >= 200).
    """
    p = np.asarray(pred, dtype=np.float32)
    t = np.asarray(target, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if p.ndim != 2 or p.shape != t.shape or p.shape != m.shape:
        raise InputError(f"pred {p.shape}, target {t.shape} and mask {m.shape} must be equal (H, W) shapes")
    if not m.any():
        # why: the official code crashes here (max of an empty array); we say why instead
        raise InputError("metric alignment needs at least one valid target pixel, mask is all False")
    x = p[m]
    y = np.log(t[m] + 1)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("pred and target must be finite (and target > -1) wherever mask is True")
    max_depth = float(t[m].max())
    # why lazy: scikit-learn costs ~1 s to import and only this function needs it
    from sklearn.linear_model import RANSACRegressor

    try:
        reg = RANSACRegressor(max_trials=1000, random_state=rng).fit(x.reshape(-1, 1), y)
    except ValueError:  # n < 2 or no consensus: the official code falls back to the identity
        return LogDepthFit(1.0, 0.0, max_depth, "identity")
    # keep float32 scalars: the official product a*pred+b is float32 arithmetic
    ra = np.float32(np.ravel(reg.estimator_.coef_)[0])
    rb = np.float32(np.ravel(reg.estimator_.intercept_)[0])
    raw = dict(ransac_a=float(ra), ransac_b=float(rb), inlier_mask=reg.inlier_mask_.copy(),
               n_trials=int(reg.n_trials_))
    if ra > 0:
        return LogDepthFit(float(ra), float(rb), max_depth, "ransac", **raw)
    # slope <= 0 is implausible: scale-only map in log space from the masked means (float32 as official)
    ratio = np.float32(y.mean() / x.mean())
    return LogDepthFit(float(ratio), 0.0, max_depth, "mean_ratio", **raw)


def apply_log_depth_fit(pred: np.ndarray, a: float, b: float, max_depth: float) -> np.ndarray:
    """(H, W) relative depth -> float32 metric depth ``clip(exp(a*pred+b) - 1, 1e-3, max_depth)`` (m)."""
    p = np.asarray(pred, dtype=np.float32)
    log_d = np.float32(a) * p + np.float32(b)
    return np.clip(np.exp(log_d) - np.float32(1), np.float32(1e-3), np.float32(max_depth))


def recover_metric_depth_ransac(pred: np.ndarray, target: np.ndarray, mask: np.ndarray,
                                rng: np.random.RandomState) -> tuple[np.ndarray, float, float]:
    """Official ``recover_metric_depth_ransac``: (H, W) float32 metres for every pixel, and the
    applied log-space map ``a, b`` (see :func:`fit_log_depth_ransac`; mask is not applied to the output)."""
    fit = fit_log_depth_ransac(pred, target, mask, rng)
    return apply_log_depth_fit(pred, fit.a, fit.b, fit.max_depth), fit.a, fit.b


def normalized_to_pixel_intrinsics(K_norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """MoGe normalised K -> pixel K (float32) as ``run_point_cloud.py``: fx, cx * W; fy, cy * H.

    With MoGe's cx = cy = 0.5 this puts the principal point at W/2, H/2, half a pixel off the
    integer-centre convention of a CameraInfo ((W-1)/2 for a centred camera); kept for parity.
    """
    k = np.array(K_norm, dtype=np.float32)
    if k.shape != (3, 3):
        raise InputError(f"intrinsics must be a (3, 3) matrix, got shape {k.shape}")
    k[0, 0] *= width
    k[1, 1] *= height
    k[0, 2] *= width
    k[1, 2] *= height
    return k


def depth2pcd(depth: np.ndarray, K: Intrinsics, mask: np.ndarray | None = None,
              rgb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Official ``depth2pcd``: masked pixels, row-major -> (N, 3) float64 points in metres and
    (N, 3) float32 colours in [0, 1] (None without ``rgb``). No validity filtering (parity)."""
    d = _depth2d(depth)
    fx, fy, cx, cy = pinhole(K)
    h, w = d.shape
    m = np.ones((h, w), bool) if mask is None else np.asarray(mask, dtype=bool)
    _same_shape("mask", m, d)
    vv, uu = np.nonzero(m)  # row-major order, as boolean indexing
    z = d[m].astype(np.float32)
    # float64 like the official (int grid minus float32 scalar promotes to float64)
    x = (uu - np.float32(cx)) / np.float32(fx) * z
    y = (vv - np.float32(cy)) / np.float32(fy) * z
    pts = np.stack([x, y, z.astype(np.float64)], axis=-1)
    if rgb is None:
        return pts, None
    c = np.asarray(rgb)
    _same_shape("rgb", c, d)
    return pts, c[m].astype(np.float32) / np.float32(255)


def to_ply_axes(points: np.ndarray) -> np.ndarray:
    """OpenCV optical axes -> the official .ply axes (y and z negated). ROS clouds stay unflipped."""
    return np.asarray(points) * np.array([1.0, -1.0, -1.0])


def depth_to_points(depth: np.ndarray, K: Intrinsics, stride: int = 1,
                    max_range: float | None = None) -> np.ndarray:
    """Organized back-projection as depth_image_proc ``convertDepth`` (float32, vectorised).

    Args:
        depth: (H, W) float metres; non-finite or <= 0 is invalid.
        K: pixel intrinsics of this depth image (CameraInfo K or P, or a PinholeLike).
        stride: keep every ``stride``-th row and column (pixel indices stay those of the full image).
        max_range: points farther than this (metres, along z) become invalid; None keeps all.
    Returns:
        (ceil(H/stride), ceil(W/stride), 3) float32 points in metres, NaN where invalid.
    """
    d = _depth2d(depth)
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    fx, fy, cx, cy = pinhole(K)
    z = d[::stride, ::stride].astype(np.float32)
    bad = ~np.isfinite(z) | (z <= 0)
    if max_range is not None:
        bad |= z > max_range
    # float32 in convertDepth's order, ((u - cx) * depth) * (1 / fx), for bit-identical points
    du = np.arange(0, d.shape[1], stride, dtype=np.float32) - np.float32(cx)
    dv = np.arange(0, d.shape[0], stride, dtype=np.float32) - np.float32(cy)
    out = np.empty(z.shape + (3,), np.float32)
    np.multiply(du[None, :] * z, np.float32(1.0 / fx), out=out[..., 0])
    np.multiply(dv[:, None] * z, np.float32(1.0 / fy), out=out[..., 1])
    out[..., 2] = z
    out[bad] = np.nan
    return out


def statistical_outlier_keep(points: np.ndarray, nb_neighbors: int = 20, std_ratio: float = 3.0,
                             workers: int = 1) -> np.ndarray:
    """Open3D ``remove_statistical_outlier`` keep indices (ascending int64) for (N, 3) points.

    d_p = mean distance to the ``nb_neighbors`` nearest points (the point itself included);
    keep where 0 < d_p < mean(d) + std_ratio * std(d) (sample std over d > 0).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got shape {pts.shape}")
    if not np.isfinite(pts).all():
        raise InputError("points must be finite; drop NaN (invalid) points before the filter")
    n = len(pts)
    if n == 0:
        return np.zeros(0, np.int64)
    k = min(nb_neighbors, n)  # why: Open3D averages over the neighbours it finds
    dist, _ = cKDTree(pts).query(pts, k=k, workers=workers)
    mean_d = dist.reshape(n, k).mean(axis=1)
    valid = mean_d > 0
    if valid.sum() < 2:
        return np.nonzero(valid)[0].astype(np.int64)
    mu = mean_d[valid].mean()
    sd = np.sqrt(((mean_d[valid] - mu) ** 2).sum() / (valid.sum() - 1))
    return np.nonzero(valid & (mean_d < mu + std_ratio * sd))[0].astype(np.int64)


_AXES = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


def flying_pixel_mask(depth: np.ndarray, rel_threshold: float = 0.03, neighbours: Literal[4, 8] = 8,
                      radius: int = 1) -> np.ndarray:
    """Organized, edge-aware flying-pixel test: (H, W) bool, True = flying.

    A pixel is flying when, along some axis (horizontal, vertical and with 8 neighbours the two
    diagonals), its depth lies strictly between the two pixels ``radius`` steps away on either
    side, with a margin of ``rel_threshold * Z`` to both: it floats in the gap of a depth edge.
    Both sides of a real edge and thin structures (nearer than both sides) survive; a surface is
    only hit where its depth changes by more than ``rel_threshold`` per ``radius`` pixels (grazing
    angles below ~atan(1 / (f * rel_threshold)) at radius 1). For an organized cloud pass
    ``points[..., 2]``. Invalid (non-finite, <= 0) pixels are never flying and give no evidence.
    """
    d = _depth2d(depth).astype(np.float32)
    if neighbours not in _AXES:
        raise InputError(f"neighbours must be 4 or 8, got {neighbours}")
    if radius < 1:
        raise InputError(f"radius must be >= 1, got {radius}")
    d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    r = radius
    pad = np.pad(d, r, constant_values=np.nan)
    h, w = d.shape
    margin = np.float32(rel_threshold) * d
    flying = np.zeros((h, w), bool)
    for dy, dx in _AXES[neighbours]:
        dy, dx = dy * r, dx * r
        a = pad[r + dy:r + dy + h, r + dx:r + dx + w]
        b = pad[r - dy:r - dy + h, r - dx:r - dx + w]
        # NaN propagates through minimum/maximum and compares False: no evidence, not flying
        flying |= (d - np.minimum(a, b) > margin) & (np.maximum(a, b) - d > margin)
    return flying


def filter_flying_pixels(depth: np.ndarray, rel_threshold: float = 0.03, neighbours: Literal[4, 8] = 8,
                         radius: int = 1) -> np.ndarray:
    """(H, W) depth copy (float32 metres) with flying pixels (see :func:`flying_pixel_mask`) set to NaN."""
    out = np.array(depth, dtype=np.float32)
    out[flying_pixel_mask(out, rel_threshold, neighbours, radius)] = np.nan
    return out


def _src_coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-pixel-centre source coordinates: indices i0, i1 and weight of i1, each (n_out,)."""
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = np.clip(s, 0, n_in - 1)
    i0 = np.floor(s).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (s - i0).astype(np.float32)


def upsample_depth(depth: np.ndarray, size: tuple[int, int], edge_threshold: float = 0.05,
                   guide: np.ndarray | None = None) -> np.ndarray:
    """Edge-preserving resize of (h, w) depth to ``size = (H, W)``; float32 metres, NaN invalid.

    Bilinear (half-pixel centres, as cv2 INTER_LINEAR) where the four source samples are valid
    and agree within ``edge_threshold`` (relative range); at a depth edge or next to an invalid
    sample it picks ONE source sample instead of blending: the one whose colour best matches
    ``guide`` (an (H, W, 3) image at the output size, e.g. the camera frame, whose area-downsampled
    copy gives the source colours), or the nearest valid one without a guide. So no output depth
    lies between the two sides of an edge.
    """
    d = _depth2d(depth).astype(np.float32)
    H, W = int(size[0]), int(size[1])
    if H < 1 or W < 1:
        raise InputError(f"output size must be positive, got {size}")
    if guide is not None and np.shape(guide)[:2] != (H, W):
        raise InputError(f"guide shape {np.shape(guide)} does not match the output size {(H, W)}")
    d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    h, w = d.shape
    y0, y1, wy = _src_coords(h, H)
    x0, x1, wx = _src_coords(w, W)
    # per source cell (i, j)..(i+1, j+1): is it smooth? computed once at low resolution
    yn, xn = np.minimum(np.arange(h) + 1, h - 1), np.minimum(np.arange(w) + 1, w - 1)
    quad = (d, d[:, xn], d[yn], d[yn][:, xn])
    lo, hi = np.minimum.reduce(quad), np.maximum.reduce(quad)  # NaN propagates -> not smooth
    smooth = (hi - lo <= np.float32(edge_threshold) * lo)[np.ix_(y0, x0)]  # (H, W)
    rows = d[y0] * (1 - wy)[:, None] + d[y1] * wy[:, None]  # (H, w) separable bilinear
    out = rows[:, x0] * (1 - wx) + rows[:, x1] * wx  # (H, W)
    r, c = np.nonzero(~smooth)  # edge / hole pixels: choose one side
    if len(r):
        ys, xs = np.stack([y0[r], y0[r], y1[r], y1[r]], 1), np.stack([x0[c], x1[c], x0[c], x1[c]], 1)
        samples = d[ys, xs]  # (k, 4)
        ok = ~np.isnan(samples)
        if guide is None:
            ay, ax = wy[r, None], wx[c, None]
            score = np.concatenate([(1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax], 1)
        else:
            score = -_colour_distance(np.asarray(guide), (h, w), ys, xs, r, c)
        pick = np.argmax(np.where(ok, score, -np.inf), axis=1)
        out[r, c] = np.where(ok.any(1), samples[np.arange(len(r)), pick], np.nan)
    return out.astype(np.float32, copy=False)


def _colour_distance(guide: np.ndarray, src_hw: tuple[int, int], ys: np.ndarray, xs: np.ndarray,
                     r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(k, 4) L1 colour distance between output pixels (r, c) and their source samples (ys, xs)."""
    import cv2  # why lazy: only the guided path needs OpenCV

    g = guide.reshape(guide.shape[0], guide.shape[1], -1).astype(np.float32)
    small = cv2.resize(g, (src_hw[1], src_hw[0]), interpolation=cv2.INTER_AREA).reshape(src_hw + (-1,))
    return np.abs(small[ys, xs] - g[r, c][:, None]).sum(-1)
