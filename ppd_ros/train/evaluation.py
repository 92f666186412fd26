"""Evaluation helpers shared by training, ``ppd-ros evaluate`` and ``bench/eval_real.py``.

The models predict an affine-invariant normalised log(1 + depth). "Aligned" metrics fit
``a * pred + b`` to log(1 + gt) by least squares per image (a scale and shift in the model's own
output space), turn it into metres with expm1, then measure AbsRel / delta1 / flying pixels with
``ppd_ros.metrics`` (no further alignment). Baselines go through the same path.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from .. import metrics
from ..preprocess import resize_depth


def gt_mask(gt: np.ndarray) -> np.ndarray:
    return np.isfinite(gt) & (gt > 0)


def align_log_depth(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(H, W) model output -> (H, W) metres: least-squares a*pred + b vs log1p(gt) on valid pixels, expm1."""
    v = gt_mask(gt) & np.isfinite(pred) & (mask if mask is not None else True)
    x, y = pred[v].astype(np.float64), np.log1p(gt[v].astype(np.float64))
    if x.size == 0:
        return np.full(pred.shape, np.nan)
    if np.ptp(x) < 1e-9:  # a constant prediction can only match the mean
        return np.full(pred.shape, math.expm1(float(y.mean())))
    a, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    return np.expm1(np.clip(a * pred.astype(np.float64) + b, -5, 10))


def constant_prediction(gt: np.ndarray) -> np.ndarray:
    """Trivial baseline: the same value everywhere (alignment turns it into the best constant)."""
    return np.zeros(gt.shape, np.float64)


def plane_prediction(gt: np.ndarray) -> np.ndarray:
    """Oracle baseline: the plane in pixel coordinates that best fits log1p(gt) (3 parameters fitted on GT)."""
    v = gt_mask(gt)
    yy, xx = np.mgrid[0:gt.shape[0], 0:gt.shape[1]].astype(np.float64)
    A = np.stack([xx[v], yy[v], np.ones(int(v.sum()))], 1)
    c = np.linalg.lstsq(A, np.log1p(gt[v].astype(np.float64)), rcond=None)[0]
    return c[0] * xx + c[1] * yy + c[2]


def working_resolution_gt(gt: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Oracle: log1p(GT) sampled (nearest, holes filled from the nearest valid pixel) at the model's
    working ``size`` (h, w) and resized back like the model output (bilinear). Its scores are the best
    any model working at that size can reach here; the resize back alone puts pixels between the sides
    of every edge narrower than a working pixel."""
    v = gt_mask(gt)
    if not v.any():
        return np.full(gt.shape, np.nan)
    idx = distance_transform_edt(~v, return_distances=False, return_indices=True)
    filled = np.log1p(np.where(v, gt, 0.0))[tuple(idx)].astype(np.float32)
    small = cv2.resize(filled, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return resize_depth(torch.from_numpy(small)[None, None], gt.shape[:2])[0, 0].numpy().astype(np.float64)


def frame_metrics(pred_log: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Aligned AbsRel, delta1 and flying-pixel ratio of one relative prediction against metric gt."""
    d = align_log_depth(pred_log, gt)
    m = gt_mask(gt)
    return {"absrel": metrics.abs_rel(d, gt, m), "delta1": metrics.delta1(d, gt, m),
            "flying": metrics.flying_pixel_ratio(d, gt, m)}
