"""Evaluation helpers: per-image alignment and the baselines of the honest-evaluation table."""
from __future__ import annotations

import numpy as np

from ppd_ros.train.evaluation import (align_log_depth, constant_prediction, frame_metrics, plane_prediction,
                                      working_resolution_gt)


def _step_scene(h: int = 48, w: int = 64) -> np.ndarray:
    gt = np.full((h, w), 4.0)
    gt[:, w // 2:] = 2.0  # a vertical depth edge
    gt[5, 5] = np.nan  # a hole
    return gt


def test_alignment_recovers_an_affine_log_prediction_exactly():
    gt = _step_scene()
    pred = 3.0 * np.log1p(np.nan_to_num(gt, nan=3.0)) - 1.0
    d = align_log_depth(pred, gt)
    ok = np.isfinite(gt)
    np.testing.assert_allclose(d[ok], gt[ok], rtol=1e-9)
    assert frame_metrics(pred, gt)["absrel"] < 1e-9


def test_baselines_constant_and_plane():
    gt = _step_scene()
    const = align_log_depth(constant_prediction(gt), gt)
    assert np.ptp(const) == 0.0
    yy, xx = np.mgrid[0:30, 0:40].astype(float)
    ramp = np.expm1(0.01 * xx + 0.02 * yy + 1.0)
    np.testing.assert_allclose(align_log_depth(plane_prediction(ramp), ramp), ramp, rtol=1e-9)


def test_working_resolution_gt_is_exact_at_full_size_and_loses_thin_structures_below_it():
    gt = _step_scene()
    same = frame_metrics(working_resolution_gt(gt, gt.shape), gt)
    assert same["absrel"] < 1e-6 and same["flying"] == 0.0
    thin = np.full((48, 64), 4.0)
    thin[:, 30] = 2.0  # a 1-px pole: narrower than a working pixel at half size
    half = working_resolution_gt(thin, (24, 32))
    assert frame_metrics(half, thin)["flying"] > 0.3  # the resize back blurs it into the gap
    assert np.isfinite(working_resolution_gt(_step_scene(), (24, 32))).all()  # holes are filled
