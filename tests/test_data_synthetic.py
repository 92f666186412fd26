"""Synthetic RGB-D generator: exact geometry (plane, sphere, occlusion edge), determinism, target."""
from __future__ import annotations

import numpy as np
import torch

from ppd_ros.data.synthetic import Scene, SynthConfig, atlas, look_pose, make_frame, make_sequence, render
from ppd_ros.train.targets import normalized_log_depth

H, W = 48, 64
K = np.array([[50.0, 0, 32.0], [0, 50.0, 24.0], [0, 0, 1]])


def _materials(scene: Scene) -> Scene:
    scene.materials = {"planes": np.tile([0, 1, 1, 1, 1.0], (len(scene.planes[1]), 1)),
                       "spheres": np.tile([1, 1, 1, 1, 1.0], (len(scene.spheres[1]), 1)),
                       "boxes": np.tile([2, 1, 1, 1, 1.0], (len(scene.boxes[2]), 1)),
                       "cylinders": np.tile([3, 1, 1, 1, 1.0], (len(scene.cylinders[1]), 1))}
    return scene


def _pixel_rows() -> np.ndarray:
    return np.arange(H)[:, None] + 0.5 - K[1, 2] + np.zeros((1, W))


def test_ground_plane_depth_is_exact_and_sky_is_inf():
    h_cam = 1.5
    scene = _materials(Scene(planes=(np.array([[0, 1.0, 0]]), np.array([0.0]))))
    f = render(scene, K, look_pose(np.array([0, h_cam, 0]), 0.0, 0.0, 0.0), H, W, atlas())
    dv = _pixel_rows()
    below = dv > 0
    np.testing.assert_allclose(f.depth[below], (h_cam * K[1, 1] / dv)[below], rtol=1e-5)
    assert np.isposinf(f.depth[~below]).all()  # at and above the horizon: sky
    assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8


def test_sphere_centre_depth_and_silhouette():
    d, r = 4.0, 1.0
    scene = _materials(Scene(spheres=(np.array([[0, 2.0, d]]), np.array([r]))))
    f = render(scene, K, look_pose(np.array([0, 2.0, 0]), 0.0, 0.0, 0.0), H, W, atlas())
    u = np.arange(W)[None, :] + 0.5 - K[0, 2]
    v = np.arange(H)[:, None] + 0.5 - K[1, 2]
    ang = np.arctan(np.hypot(u / K[0, 0], v / K[1, 1]))
    inside, outside = ang < np.arcsin(r / d) - 0.01, ang > np.arcsin(r / d) + 0.01
    assert np.isfinite(f.depth[inside]).all() and np.isposinf(f.depth[outside]).all()
    # ray through pixel centre direction (x, y, 1): depth t solves |t (x, y, 1) - (0, 0, d)| = r
    x, y = (u / K[0, 0])[0, :, None].T, (v / K[1, 1])
    a = 1 + x ** 2 + y ** 2
    t = (d - np.sqrt(np.maximum(d ** 2 - a * (d ** 2 - r ** 2), 0))) / a
    np.testing.assert_allclose(f.depth[inside], t[inside], rtol=1e-5)


def test_box_in_front_of_wall_has_an_exact_occlusion_boundary():
    z_box, half, z_wall = 2.0, 0.51, 6.0  # edges between pixel centres (no ties)
    # box faces: front at z = z_box; x in [-half, half]; camera x axis = world -x (symmetric here)
    scene = _materials(Scene(planes=(np.array([[0, 0, -1.0]]), np.array([-z_wall])),
                             boxes=(np.array([[0, 1.0, z_box + half]]), np.array([[half, half, half]]), np.array([0.0]))))
    f = render(scene, K, look_pose(np.array([0, 1.0, 0]), 0.0, 0.0, 0.0), H, W, atlas())
    x = (np.arange(W) + 0.5 - K[0, 2]) / K[0, 0] * z_box
    y = (np.arange(H) + 0.5 - K[1, 2]) / K[1, 1] * z_box
    on_box = (np.abs(y)[:, None] < half) & (np.abs(x)[None, :] < half)
    np.testing.assert_allclose(f.depth[on_box], z_box, rtol=1e-5)
    np.testing.assert_allclose(f.depth[~on_box], z_wall, rtol=1e-5)  # side faces are hidden from the axis camera


def test_frames_and_sequences_are_deterministic_by_seed():
    cfg = SynthConfig(height=H, width=W)
    a, b, c = make_frame(11, cfg), make_frame(11, cfg), make_frame(12, cfg)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)
    assert not np.array_equal(a.depth, c.depth)
    s1, s2 = make_sequence(3, 3, cfg), make_sequence(3, 3, cfg)
    for f1, f2 in zip(s1, s2):
        np.testing.assert_array_equal(f1.rgb, f2.rgb)
    assert not np.allclose(s1[0].pose, s1[2].pose)  # the camera moves
    np.testing.assert_array_equal(s1[0].K, s1[2].K)
    assert np.isclose(np.linalg.det(a.pose[:3, :3]), 1.0)


def test_normalized_target_matches_the_ppd_recipe():
    d = torch.linspace(1, 10, 100).reshape(1, 1, 10, 10).clone()
    d[0, 0, 0, 0] = float("inf")
    t = normalized_log_depth(d)
    assert t.shape == d.shape
    assert float(t.min()) >= -1.0 and float(t.max()) <= 0.5  # clamp [-0.5, 1] minus 0.5
    assert float(t[0, 0, 0, 0]) == 0.5  # sky -> far end
    assert float(t[0, 0, 9, 9]) == 0.5  # beyond the 98 % quantile: clamped
    assert -0.6 < float(t[0, 0, 0, 1]) < -0.5  # below the 2 % quantile: slightly under -0.5
