"""View-plane uv, focal/shift recovery, intrinsics conventions and the ROS-free camera model."""
import math

import numpy as np
import pytest
import torch

from ppd_ros.errors import CameraInfoMismatch, InputError
from ppd_ros.intrinsics import (CameraIntrinsics, RegionOfInterest, focal_from_fov_x, fov_x_degrees,
                                normalized_intrinsics, normalized_to_pixel, normalized_view_plane_uv,
                                recover_focal_shift)

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)


def test_uv_is_pixel_centres_in_half_diagonal_units():
    w, h = 7, 5
    uv = normalized_view_plane_uv(w, h, dtype=torch.float64)
    a = w / h
    sx, sy = a / math.sqrt(1 + a * a), 1 / math.sqrt(1 + a * a)
    assert uv.shape == (h, w, 2)
    j, i = np.arange(w), np.arange(h)
    assert np.allclose(uv[0, :, 0].numpy(), sx * (2 * (j + 0.5) / w - 1))
    assert np.allclose(uv[:, 0, 1].numpy(), sy * (2 * (i + 0.5) / h - 1))
    # the image corners (not the pixel centres) lie on the unit half-diagonal
    assert math.isclose(sx ** 2 + sy ** 2, 1.0)
    # an explicit aspect overrides the grid's own (MoGe's coarse levels use the image aspect)
    assert torch.allclose(normalized_view_plane_uv(4, 4, aspect_ratio=a, dtype=torch.float64)[0, -1, 0],
                          torch.tensor(sx * 3 / 4, dtype=torch.float64))


def _pinhole_map(focal: float, shift: float, h: int = 48, w: int = 80, seed: int = 0) -> torch.Tensor:
    """(1, h, w, 3) affine point map of a slanted plane seen by a pinhole of ``focal``, z shifted by -shift."""
    uv = normalized_view_plane_uv(w, h, dtype=torch.float64)
    z = 3.0 + 1.2 * uv[..., 1] + 0.5 * uv[..., 0]
    xy = uv * z[..., None] / focal
    return torch.cat([xy, (z - shift)[..., None]], -1)[None].float()


@pytest.mark.parametrize("focal,shift", [(1.1, 1.0), (0.6, -0.8), (2.0, 0.0)])
def test_focal_shift_recovered_from_noise_free_map(focal, shift):
    pts = _pinhole_map(focal, shift)
    f, s = recover_focal_shift(pts)
    assert f.dtype == torch.float32 and f.shape == (1,)
    assert f.item() == pytest.approx(focal, rel=2e-3) and s.item() == pytest.approx(shift, abs=2e-3 * (1 + abs(shift)))
    _, s_known = recover_focal_shift(pts, focal=torch.tensor([focal]))
    assert s_known.item() == pytest.approx(shift, abs=2e-3 * (1 + abs(shift)))


def test_mask_excludes_garbage_and_too_few_samples_fall_back():
    pts = _pinhole_map(0.9, 0.5)
    mask = torch.ones(pts.shape[:3], dtype=torch.bool)
    mask[:, :10] = False
    pts[:, :10] = 50.0  # garbage where masked
    f, s = recover_focal_shift(pts, mask)
    assert f.item() == pytest.approx(0.9, rel=2e-3) and s.item() == pytest.approx(0.5, abs=3e-3)
    f, s = recover_focal_shift(pts, torch.zeros_like(mask))
    assert (f.item(), s.item()) == (1.0, 0.0)


def test_fov_and_normalised_intrinsics_conventions():
    aspect = 4 / 3
    focal = focal_from_fov_x(60.0, aspect)
    k = normalized_intrinsics(focal[None], aspect)[0]
    assert k[0, 0].item() == pytest.approx(0.5 / math.tan(math.radians(30)), rel=1e-6)
    assert k[1, 1].item() == pytest.approx(k[0, 0].item() * aspect, rel=1e-6)
    assert (k[0, 2].item(), k[1, 2].item(), k[2, 2].item()) == (0.5, 0.5, 1.0)
    assert fov_x_degrees(k[0, 0].item() * 640, 640) == pytest.approx(60.0, rel=1e-6)
    px = normalized_to_pixel(k.numpy(), 640, 480)
    assert px[0, 2] == 319.5 and px[1, 2] == 239.5 and px[0, 0] == pytest.approx(k[0, 0].item() * 640)
    official = normalized_to_pixel(k.numpy(), 640, 480, "official")
    assert official[0, 2] == 320.0 and official[1, 2] == 240.0
    with pytest.raises(InputError):
        normalized_to_pixel(np.eye(2), 4, 4)


def _cam(**kw) -> CameraIntrinsics:
    k = np.array([[500.0, 0, 319.5], [0, 510.0, 239.5], [0, 0, 1]])
    p = np.array([[490.0, 0, 321.0, -24.5], [0, 495.0, 241.0, 0], [0, 0, 1, 0]])
    base = dict(width=640, height=480, K=k, P=p, D=np.array([0.1, -0.05, 0, 0, 0]), distortion_model="plumb_bob")
    return CameraIntrinsics(**{**base, **kw})


def test_calibration_flag_and_fields():
    cam = _cam()
    assert cam.is_calibrated and (cam.fx, cam.fy, cam.cx, cam.cy) == (490.0, 495.0, 321.0, 241.0)
    assert not _cam(K=np.zeros(9)).is_calibrated
    with pytest.raises(CameraInfoMismatch):
        _cam(K=np.zeros(9)).rectified(320, 240)
    with pytest.raises(CameraInfoMismatch, match="9 values"):
        _cam(K=np.zeros(8))
    assert cam == _cam() and cam != _cam(binning_x=2)


def test_rectified_uses_P_and_scales_exactly_like_cv2_resize():
    cam = _cam()
    r = cam.rectified(320, 240)  # half resolution
    assert r.D.tolist() == [0.0] * 5 and np.array_equal(r.K, r.P[:, :3])
    assert r.fx == 245.0 and r.fy == 247.5
    # cv2.resize maps source coordinate x to (x + 0.5) * s - 0.5: a 3-D point lands where K says
    X = np.array([0.3, -0.2, 2.0])
    u_full = cam.fx * X[0] / X[2] + cam.cx
    u_half = r.fx * X[0] / X[2] + r.cx
    assert u_half == pytest.approx((u_full + 0.5) * 0.5 - 0.5)
    assert r.P[0, 3] == pytest.approx(-12.25)  # stereo Tx term scales with fx
    ip = cam.rectified(320, 240, scaling="image_proc")
    assert (ip.cx, ip.cy) == (160.5, 120.5)
    assert cam.rectified(640, 480).fx == cam.fx and cam.rectified(640, 480).cx == cam.cx


def test_binning_and_roi_follow_image_geometry():
    roi = RegionOfInterest(x_offset=100, y_offset=40, width=400, height=300)
    cam = _cam(binning_x=2, binning_y=2, roi=roi)
    assert cam.image_size == (200, 150)
    p = cam.reduced_P()
    # image_geometry: subtract the ROI offset, then divide by binning (fx, cx, Tx / fy, cy)
    assert (p[0, 0], p[0, 2], p[1, 1], p[1, 2], p[0, 3]) == (245.0, 110.5, 247.5, 100.5, -12.25)
    r = cam.rectified(200, 150)
    assert (r.fx, r.cx, r.cy) == (245.0, 110.5, 100.5)
    cam.check_image(200, 150)
    with pytest.raises(CameraInfoMismatch, match="200x150"):
        cam.check_image(640, 480)
    assert _cam(binning_x=0, binning_y=1).image_size == (640, 480)  # 0 and 1 both mean no binning


def test_predicted_camera_from_normalised_k():
    k = np.array([[0.8, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]])
    cam = CameraIntrinsics.from_normalized(k, 160, 128)
    assert cam.is_calibrated and cam.image_size == (160, 128)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (128.0, 128.0, 79.5, 63.5)
    assert cam.distortion_model == "plumb_bob" and not cam.D.any()
