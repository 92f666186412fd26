"""Metric alignment, back-projection, outlier / flying-pixel filters and edge-aware upsampling."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ppd_ros import geometry as G
from ppd_ros.data.real import load_real_frame
from ppd_ros.errors import InputError
from ppd_ros.metrics import abs_rel
from ppd_ros.parity import discover_handlers, run_fixture

from .conftest import FIXTURES, REAL, require_shared

MOTO = REAL / "middlebury2014_motorcycle"
pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)


def load_moto() -> tuple[np.ndarray, np.ndarray, dict]:
    """GT depth (metres, 0 = invalid) from depth_mm.png, GT disparity (inf = invalid), camera.json."""
    import cv2

    require_shared("data/real/middlebury2014_motorcycle")
    depth = cv2.imread(str(MOTO / "depth_mm.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000
    disp = np.load(MOTO / "disp0.npz")["arr_0"]
    return depth, disp, json.loads((MOTO / "camera.json").read_text())


# ---------------------------------------------------------------------------------------- parity
@pytest.mark.needs_shared("fixtures/moge2/ransac", "fixtures/moge2/depth2pcd")
@pytest.mark.parametrize("name", ["ransac", "depth2pcd"])
def test_fixture_parity_through_harness(name: str) -> None:
    discover_handlers()
    checks = run_fixture(FIXTURES / "moge2" / name)
    assert len(checks) >= 6
    failed = [(c.name, c.max_abs, c.note) for c in checks if not c.passed]
    assert not failed, failed


# ---------------------------------------------------------------------------------------- RANSAC
def _scene(rs: np.random.RandomState, h: int = 30, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    gt = (2 + 3 * rs.rand(h, w)).astype(np.float32)
    pred = ((np.log1p(gt) - 0.3) / 1.5).astype(np.float32)  # log(1+d) = 1.5 * pred + 0.3
    return pred, gt


def test_ransac_recovers_affine_log_map() -> None:
    pred, gt = _scene(np.random.RandomState(0))
    mask = np.ones_like(gt, bool)
    depth, a, b = G.recover_metric_depth_ransac(pred, gt, mask, np.random.RandomState(1))
    assert a == pytest.approx(1.5, rel=1e-4) and b == pytest.approx(0.3, abs=1e-4)
    assert depth.dtype == np.float32 and depth.shape == gt.shape
    np.testing.assert_allclose(depth, gt, rtol=1e-4)


def test_ransac_same_generator_state_same_result() -> None:
    pred, gt = _scene(np.random.RandomState(0))
    gt[::7] *= 3  # outliers so that the sampled trials matter
    mask = np.ones_like(gt, bool)
    f1 = G.fit_log_depth_ransac(pred, gt, mask, np.random.RandomState(5))
    f2 = G.fit_log_depth_ransac(pred, gt, mask, np.random.RandomState(5))
    assert (f1.a, f1.b) == (f2.a, f2.b) and np.array_equal(f1.inlier_mask, f2.inlier_mask)
    rng = np.random.RandomState(5)
    G.fit_log_depth_ransac(pred, gt, mask, rng)
    assert rng.get_state()[2] != np.random.RandomState(5).get_state()[2]  # the caller's stream advanced


def test_ransac_negative_slope_falls_back_to_mean_ratio() -> None:
    pred, gt = _scene(np.random.RandomState(0))
    pred = 1 - pred
    mask = np.ones_like(gt, bool)
    fit = G.fit_log_depth_ransac(pred, gt, mask, np.random.RandomState(0))
    assert fit.branch == "mean_ratio" and fit.ransac_a < 0 and fit.b == 0
    ratio = np.float32(np.log(gt + 1).mean() / pred.mean())
    want = np.clip(np.exp(pred * ratio) - 1, 1e-3, gt.max())
    np.testing.assert_allclose(G.apply_log_depth_fit(pred, fit.a, fit.b, fit.max_depth), want, rtol=1e-6)


def test_ransac_single_pixel_is_identity_and_empty_mask_raises() -> None:
    pred, gt = _scene(np.random.RandomState(0))
    mask = np.zeros_like(gt, bool)
    mask[3, 4] = True
    depth, a, b = G.recover_metric_depth_ransac(pred, gt, mask, np.random.RandomState(0))
    assert (a, b) == (1.0, 0.0)
    np.testing.assert_allclose(depth, np.clip(np.exp(pred) - 1, 1e-3, gt[3, 4]), rtol=1e-6)
    with pytest.raises(InputError, match="all False"):
        G.recover_metric_depth_ransac(pred, gt, np.zeros_like(mask), np.random.RandomState(0))
    with pytest.raises(InputError):
        G.recover_metric_depth_ransac(pred, gt[:, :-1], mask, np.random.RandomState(0))
    gt[3, 4] = np.inf
    with pytest.raises(InputError, match="finite"):
        G.recover_metric_depth_ransac(pred, gt, mask, np.random.RandomState(0))


def test_middlebury_affine_log_distortion_recovered_below_1pct() -> None:
    # the bundled 320-px copy of the Middlebury motorcycle GT (in the repository; NaN = no GT)
    gt = np.nan_to_num(load_real_frame("motorcycle").depth, nan=0.0)
    valid = gt > 0
    rs = np.random.RandomState(11)
    a, b = rs.uniform(0.5, 3.0), rs.uniform(-1.0, 1.0)  # unknown affine map in log(1+d)
    pred = ((np.log1p(gt) - b) / a).astype(np.float32)
    pred[~valid] = 0
    # a MoGe-like target: 2 % multiplicative noise, 5 % gross outliers, invalid filled with max
    target = gt * np.exp(rs.normal(0, 0.02, gt.shape)).astype(np.float32)
    bad = rs.rand(*gt.shape) < 0.05
    target[bad] = rs.uniform(0.5, 20.0, bad.sum())
    target[~valid] = target[valid].max()
    depth, fa, fb = G.recover_metric_depth_ransac(pred, target, valid, np.random.RandomState(666))
    err = abs_rel(depth, gt, valid)
    assert err < 0.01, err
    assert fa == pytest.approx(a, rel=0.01)
    # distortion applied to a perfect target is undone almost exactly
    exact, _, _ = G.recover_metric_depth_ransac(pred, np.where(valid, gt, gt.max()), valid,
                                                np.random.RandomState(0))
    assert abs_rel(exact, gt, valid) < 1e-4


# -------------------------------------------------------------------------------- back-projection
def test_depth_to_points_matches_formula_stride_and_range() -> None:
    rs = np.random.RandomState(0)
    depth = (1 + 4 * rs.rand(7, 9)).astype(np.float32)
    depth[2, 3] = np.nan
    depth[4, 4] = 0.0
    fx, fy, cx, cy = 50.0, 60.0, 4.2, 3.1
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    pts = G.depth_to_points(depth, K)
    assert pts.shape == (7, 9, 3) and pts.dtype == np.float32
    v, u = np.mgrid[:7, :9]
    want = np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], -1)
    ok = np.isfinite(depth) & (depth > 0)
    np.testing.assert_allclose(pts[ok], want[ok], rtol=1e-6, atol=1e-6)
    assert np.isnan(pts[~ok]).all()
    s = G.depth_to_points(depth, K, stride=2, max_range=3.0)
    assert s.shape == (4, 5, 3)
    keep = ok[::2, ::2] & (depth[::2, ::2] <= 3.0)
    np.testing.assert_allclose(s[keep], want[::2, ::2][keep], rtol=1e-6, atol=1e-6)
    assert np.isnan(s[~keep]).all()


def test_official_depth2pcd_uses_the_same_formula_as_depth_image_proc() -> None:
    depth = (1 + np.random.RandomState(1).rand(6, 8)).astype(np.float32)
    K = np.array([[40.0, 0, 4.0], [0, 40.0, 3.0], [0, 0, 1]])  # official cx = W/2, cy = H/2
    pts, cols = G.depth2pcd(depth, K)
    assert pts.dtype == np.float64 and cols is None
    np.testing.assert_allclose(pts, G.depth_to_points(depth, K).reshape(-1, 3), rtol=1e-6)
    with pytest.raises(InputError, match="millimetres|mm"):
        G.depth_to_points((depth * 1000).astype(np.uint16), K)


@pytest.mark.needs_shared("data/real/middlebury2014_motorcycle")
def test_middlebury_cloud_matches_disparity_triangulation_below_1mm() -> None:
    depth, disp, cam = load_moto()
    fx, cx, cy, B, doffs = cam["fx"], cam["cx"], cam["cy"], cam["baseline_mm"] / 1000, cam["doffs_px"]
    pts = G.depth_to_points(depth, np.array(cam["K_left"]))
    valid = np.isfinite(disp)
    assert np.array_equal(valid, np.isfinite(pts[..., 2]))  # holes stay NaN, nothing else does
    z = fx * B / (disp.astype(np.float64) + doffs)
    v, u = np.mgrid[:disp.shape[0], :disp.shape[1]]
    tri = np.stack([(u - cx) * z / fx, (v - cy) * z / cam["fy"], z], -1)
    err = np.linalg.norm(pts[valid] - tri[valid], axis=1)
    assert err.max() < 1e-3, err.max()


# ---------------------------------------------------------------------------------------- filters
def test_statistical_outlier_matches_brute_force_and_drops_isolated_points() -> None:
    rs = np.random.RandomState(2)
    pts = rs.rand(300, 3)
    pts[:4] += 30.0  # far, isolated
    keep = G.statistical_outlier_keep(pts)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    mean_d = np.sort(d, axis=1)[:, :20].mean(1)
    thr = mean_d.mean() + 3 * mean_d.std(ddof=1)
    assert np.array_equal(keep, np.nonzero(mean_d < thr)[0])
    assert not set(range(4)) & set(keep.tolist()) and len(keep) >= 290
    assert len(G.statistical_outlier_keep(pts[:5])) <= 5  # fewer points than neighbours is fine
    with pytest.raises(InputError):
        G.statistical_outlier_keep(np.full((3, 3), np.nan))


def _step(h: int = 12, w: int = 16, fg: float = 1.0, bg: float = 3.0) -> np.ndarray:
    d = np.full((h, w), bg, np.float32)
    d[:, : w // 2] = fg
    return d


def test_flying_pixel_mask_flags_gap_pixels_only() -> None:
    d = _step()
    assert not G.flying_pixel_mask(d).any()  # a clean edge: both sides survive
    d[:, 8] = 2.0  # a column floating between fg (col 7) and bg (col 9)
    fly = G.flying_pixel_mask(d)
    assert fly[:, 8].all() and fly.sum() == d.shape[0]
    two = _step()
    two[:, 8], two[:, 9] = 1.6, 2.4  # a two-pixel-wide smear
    assert G.flying_pixel_mask(two)[:, 8:10].all()
    thin = np.full((12, 16), 3.0, np.float32)
    thin[:, 5] = 1.0  # a wire nearer than both sides is kept
    assert not G.flying_pixel_mask(thin).any()
    ramp = 2 + 0.01 * np.arange(16, dtype=np.float32)[None].repeat(12, 0)  # gentle slope kept
    assert not G.flying_pixel_mask(ramp).any()
    out = G.filter_flying_pixels(d)
    assert np.isnan(out[:, 8]).all() and np.isfinite(np.delete(out, 8, axis=1)).all()


# ------------------------------------------------------------------------------------- upsampling
def test_upsample_never_blends_across_edges_and_is_bilinear_on_smooth() -> None:
    import cv2

    d = _step(6, 8)
    up = G.upsample_depth(d, (24, 32))
    assert set(np.unique(up).tolist()) <= {1.0, 3.0}
    ramp = (2 + 0.01 * np.add.outer(np.arange(6), np.arange(8))).astype(np.float32)
    np.testing.assert_allclose(G.upsample_depth(ramp, (24, 32)),
                               cv2.resize(ramp, (32, 24), interpolation=cv2.INTER_LINEAR), atol=1e-5)
    holes = ramp.copy()
    holes[0, 0] = np.nan
    uh = G.upsample_depth(holes, (24, 32))
    assert np.isfinite(uh).all() and (uh >= ramp.min()).all()


def test_upsample_guided_follows_the_guide_edge() -> None:
    d = _step(4, 8)  # edge between source columns 3 and 4 (output column 16 at x4)
    guide = np.zeros((16, 32, 3), np.uint8)
    guide[:, :14] = 200  # the camera sees the foreground end 2 output pixels earlier
    up = G.upsample_depth(d, (16, 32), guide=guide)
    assert (up[:, :14] == 1.0).all() and (up[:, 14:] == 3.0).all()
    nearest = G.upsample_depth(d, (16, 32))
    assert (nearest[:, 14:16] == 1.0).all()  # without a guide the split follows the source grid
    with pytest.raises(InputError):
        G.upsample_depth(d, (16, 32), guide=guide[:8])


def test_intrinsics_accept_matrix_or_attributes_and_reject_bad_values() -> None:
    from types import SimpleNamespace

    depth = (1 + np.random.RandomState(3).rand(4, 5)).astype(np.float32)
    K = np.array([[40.0, 0, 2.5], [0, 45.0, 1.5], [0, 0, 1]])
    obj = SimpleNamespace(fx=40.0, fy=45.0, cx=2.5, cy=1.5)
    np.testing.assert_array_equal(G.depth_to_points(depth, obj), G.depth_to_points(depth, K))
    P = np.hstack([K, np.zeros((3, 1))])  # a CameraInfo P (rectified projection) works too
    np.testing.assert_array_equal(G.depth_to_points(depth, P), G.depth_to_points(depth, K))
    for bad in (np.eye(2), np.diag([0.0, 1.0, 1.0]), SimpleNamespace(fx=1.0, fy=np.nan, cx=0, cy=0)):
        with pytest.raises(InputError, match="intrinsics"):
            G.depth_to_points(depth, bad)
    with pytest.raises(InputError, match="stride"):
        G.depth_to_points(depth, K, stride=0)


def test_depth_to_points_bit_identical_to_convert_depth_scalar_replica() -> None:
    depth = (0.3 + 7 * np.random.RandomState(9).rand(5, 6)).astype(np.float32)
    fx, fy, cx, cy = 525.123, 519.87, 2.61, 1.93
    pts = G.depth_to_points(depth, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]))
    # depth_image_proc: float center_x = cx; float constant_x = 1.0 / fx (double, cast to float);
    # x = (u - center_x) * depth * constant_x, all float32
    c_x, c_y, k_x, k_y = np.float32(cx), np.float32(cy), np.float32(1.0 / fx), np.float32(1.0 / fy)
    for v in range(5):
        for u in range(6):
            z = depth[v, u]
            assert pts[v, u, 0] == (np.float32(u) - c_x) * z * k_x
            assert pts[v, u, 1] == (np.float32(v) - c_y) * z * k_y
            assert pts[v, u, 2] == z
