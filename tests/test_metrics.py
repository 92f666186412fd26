"""Depth metrics: AbsRel / delta1 with alignment, edge Chamfer and flying-pixel ratio."""
from __future__ import annotations

import numpy as np
import pytest

from ppd_ros import metrics as M
from ppd_ros.errors import InputError

from .test_geometry import load_moto

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)

K = np.array([[100.0, 0, 15.5], [0, 100.0, 11.5], [0, 0, 1]])


def _gt(h: int = 24, w: int = 32) -> np.ndarray:
    return (2 + np.random.RandomState(0).rand(h, w)).astype(np.float32)


def test_abs_rel_and_delta1_known_values_and_mask() -> None:
    gt = _gt()
    assert M.abs_rel(gt * 1.1, gt) == pytest.approx(0.1, rel=1e-6)
    assert M.delta1(gt * 1.1, gt) == 1.0 and M.delta1(gt * 1.3, gt) == 0.0
    pred = gt.copy()
    pred[:12] *= 2  # half the image wrong by x2
    assert M.abs_rel(pred, gt) == pytest.approx(0.5, rel=1e-6)
    assert M.delta1(pred, gt) == pytest.approx(0.5)
    mask = np.zeros_like(gt, bool)
    mask[12:] = True
    assert M.abs_rel(pred, gt, mask) == pytest.approx(0.0, abs=1e-7)
    gt_holes = gt.copy()
    gt_holes[:12] = np.nan  # invalid gt pixels are ignored
    assert M.abs_rel(pred, gt_holes) == pytest.approx(0.0, abs=1e-7)
    assert np.isnan(M.abs_rel(pred, gt, np.zeros_like(mask)))
    assert M.delta1(-gt, gt) == 0.0  # negative predictions never count as hits
    with pytest.raises(InputError):
        M.abs_rel(pred[:, :-1], gt)
    with pytest.raises(InputError):
        M.abs_rel(pred, gt, align="median")


def test_alignment_scale_and_scale_shift() -> None:
    gt = _gt()
    aligned, s, t = M.align_depth(gt / 3.0, gt, align="scale")
    assert s == pytest.approx(3.0) and t == 0.0
    np.testing.assert_allclose(aligned, gt, rtol=1e-6)
    rel = (gt - 1.5) / 2.0
    assert M.abs_rel(rel, gt, align="scale_shift") < 1e-6
    assert M.abs_rel(rel, gt, align="scale") > 1e-3  # a shift cannot be absorbed by a scale
    assert M.delta1(rel, gt, align="scale_shift") == 1.0


def _step(fg: float = 1.0, bg: float = 3.0) -> np.ndarray:
    d = np.full((24, 32), bg, np.float32)
    d[:, :16] = fg
    return d


def test_flying_ratio_and_edge_chamfer_on_a_synthetic_edge() -> None:
    gt = _step()
    edges = M.depth_edge_mask(gt)
    assert edges[:, 15:17].all() and edges.sum() == 2 * 24  # both sides of the discontinuity
    assert M.flying_pixel_ratio(gt, gt) == 0.0
    smear = gt.copy()
    smear[:, 16] = 2.0  # background edge pixel pulled into the gap
    assert M.flying_pixel_ratio(smear, gt) == pytest.approx(0.5)
    assert M.edge_chamfer_distance(gt, gt, K=K) == 0.0
    cd = M.edge_chamfer_distance(smear, gt, K=K)
    assert 0.1 < cd < 1.0  # metres: the smeared column sits ~1 m from both sides
    assert np.isnan(M.flying_pixel_ratio(np.full_like(gt, 2.0), np.full_like(gt, 2.0)))
    holes = gt.copy()
    holes[:, 16] = np.nan  # a filter that deletes the edge: not flying, but the cloud misses it
    assert M.flying_pixel_ratio(holes, gt) == 0.0
    assert M.edge_chamfer_distance(holes, gt, K=K) > 0.5


def test_middlebury_gt_has_fewer_flying_pixels_than_blurred_gt() -> None:
    import cv2

    depth, _, cam = load_moto()
    gt = np.where(depth > 0, depth, np.nan).astype(np.float32)
    filled = np.where(np.isfinite(gt), gt, np.nanmax(gt)).astype(np.float32)
    blurred = cv2.GaussianBlur(filled, (0, 0), 2.0)  # smears every edge, like bilinear upsampling
    r_gt, r_blur = M.flying_pixel_ratio(gt, gt), M.flying_pixel_ratio(blurred, gt)
    # GT was box-downsampled x4 so it keeps a few mixed edge pixels itself; blur adds many more
    assert r_gt < 0.25 and r_blur > 2 * r_gt, (r_gt, r_blur)
    K_cam = np.array(cam["K_left"])
    assert M.edge_chamfer_distance(blurred, gt, K=K_cam) > 0.02 > M.edge_chamfer_distance(gt, gt, K=K_cam)
    # the blur barely changes the global metrics: only the edge metrics see it
    assert M.delta1(blurred, gt) > 0.95
