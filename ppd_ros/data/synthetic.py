"""Procedural RGB-D scenes with exact metric depth (deterministic by seed, numpy only).

World frame: y up, ground plane y = 0. Camera frame: OpenCV (x right, y down, z forward).
``render`` casts one ray per pixel centre through a pinhole K; depth is the z distance in metres
(+inf for sky). Scenes mix rooms (walls, shelves) and outdoor layouts (sky), boxes, spheres,
cylinders, thin poles and overlapping objects; surfaces carry procedural or photo textures and
Lambert shading with a random sun.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .raycast import hit_boxes, hit_cylinders, hit_planes, hit_spheres
from .textures import build_atlas

_ATLAS: dict[int, np.ndarray] = {}


def atlas(seed: int = 1234) -> np.ndarray:
    """The shared (M, S, S, 3) texture atlas (built once per process)."""
    if seed not in _ATLAS:
        _ATLAS[seed] = build_atlas(seed)
    return _ATLAS[seed]


@dataclass(frozen=True)
class SynthConfig:
    """Image size and the ranges the scene sampler draws from."""

    height: int = 96
    width: int = 128
    hfov_deg: tuple[float, float] = (40.0, 80.0)
    max_objects: int = 14
    atlas_seed: int = 1234


@dataclass
class Scene:
    """Primitive parameters (world frame) and one material per primitive: (texture id, uv scale, tint)."""

    planes: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros((0, 3)), np.zeros(0)))
    spheres: tuple[np.ndarray, np.ndarray] = field(default_factory=lambda: (np.zeros((0, 3)), np.zeros(0)))
    boxes: tuple[np.ndarray, np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)))
    cylinders: tuple[np.ndarray, np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros((0, 3)), np.zeros(0), np.zeros(0)))
    materials: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (n, 5): tex, scale, tint rgb
    sun: np.ndarray = field(default_factory=lambda: np.array([0.3, 0.8, -0.5]))
    ambient: float = 0.4
    sky: tuple[np.ndarray, np.ndarray] | None = None  # horizon and zenith colours


@dataclass
class Frame:
    """One rendered view."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, +inf = sky
    K: np.ndarray  # (3, 3) float64 pinhole intrinsics
    pose: np.ndarray  # (4, 4) float64 camera-to-world (OpenCV camera axes)


def intrinsics(rng: np.random.Generator, h: int, w: int, hfov: tuple[float, float]) -> np.ndarray:
    """Random pinhole K: horizontal FOV in ``hfov`` degrees, principal point within 3 % of the centre."""
    fx = 0.5 * w / np.tan(np.deg2rad(rng.uniform(*hfov)) / 2)
    fy = fx * rng.uniform(0.97, 1.03) if rng.random() < 0.3 else fx
    cx, cy = w / 2 + rng.uniform(-0.03, 0.03) * w, h / 2 + rng.uniform(-0.03, 0.03) * h
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])


def look_pose(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-to-world (4, 4): OpenCV camera looking along world +z rotated by yaw (about y), pitch, roll."""
    base = np.diag([-1.0, -1.0, 1.0])  # camera y down = world -y; x flipped keeps det = +1
    def rot(axis: int, a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r
    pose = np.eye(4)
    pose[:3, :3] = rot(1, yaw) @ rot(0, -pitch) @ rot(2, roll) @ base
    pose[:3, 3] = position
    return pose


def _material(rng: np.random.Generator, n_tex: int, n: int, scale: tuple[float, float]) -> np.ndarray:
    tint = rng.uniform(0.7, 1.3, (n, 3)) * rng.uniform(0.8, 1.4, (n, 1))
    return np.concatenate([rng.integers(0, n_tex, (n, 1)), rng.uniform(*scale, (n, 1)), tint], 1)


def sample_scene(rng: np.random.Generator, cam: np.ndarray, n_tex: int, max_objects: int = 14) -> Scene:
    """Objects placed in front of the camera pose ``cam`` (4, 4); a room or an open scene with sky."""
    fwd = cam[:3, 2] * np.array([1, 0, 1.0])
    fwd /= max(np.linalg.norm(fwd), 1e-6)
    right = np.array([fwd[2], 0, -fwd[0]])
    origin = cam[:3, 3] * np.array([1, 0, 1.0])
    def place(dist: float, lateral: float) -> np.ndarray:
        return origin + fwd * dist + right * lateral
    indoor = rng.random() < 0.55
    pn, po = [np.array([0, 1.0, 0])], [0.0]  # ground
    if indoor:
        back = rng.uniform(2.5, 9.0)
        for nrm, off in ((-fwd, -(fwd @ place(back, 0))),
                         (right, right @ place(0, -rng.uniform(1.2, 4))),
                         (-right, -(right @ place(0, rng.uniform(1.2, 4))))):
            pn.append(nrm)
            po.append(off)
        if rng.random() < 0.5:
            pn.append(np.array([0, -1.0, 0]))
            po.append(-rng.uniform(2.3, 3.5))  # ceiling
        far = back
    else:
        if rng.random() < 0.4:  # distant facade
            far = rng.uniform(12, 40)
            pn.append(-fwd)
            po.append(-(fwd @ place(far, 0)))
        else:
            far = 30.0
    hz = rng.uniform(0.5, 0.95, 3)
    sky = (hz, np.clip(hz * rng.uniform(0.4, 0.9, 3), 0, 1))  # visible above open walls too
    n_obj = int(rng.integers(2, max_objects + 1))
    near_max = min(far * 0.85, 10.0)
    sph_c, sph_r, box_c, box_h, box_y, cyl_b, cyl_r, cyl_h = [], [], [], [], [], [], [], []
    for _ in range(n_obj):
        dist = float(np.exp(rng.uniform(np.log(0.8), np.log(max(near_max, 1.0)))))
        lat = rng.uniform(-0.6, 0.6) * dist
        p = place(dist, lat)
        kind = rng.choice(["box", "box", "sphere", "cylinder", "pole", "shelf"])
        s = min(rng.uniform(0.1, 0.6) * (1 + dist / 6), 0.4 * dist)  # never swallow the camera
        lift = 0.0 if rng.random() < 0.75 else rng.uniform(0.2, 1.5)
        if kind == "box":
            h = np.array([s * rng.uniform(0.4, 1.6), s * rng.uniform(0.3, 1.8), s * rng.uniform(0.4, 1.6)])
            box_c.append(p + np.array([0, h[1] + lift, 0]))
            box_h.append(h)
            box_y.append(rng.uniform(-np.pi, np.pi))
        elif kind == "sphere":
            sph_c.append(p + np.array([0, s + lift, 0]))
            sph_r.append(s)
        elif kind == "cylinder":
            cyl_b.append(p + np.array([0, lift, 0]))
            cyl_r.append(s * rng.uniform(0.3, 1.0))
            cyl_h.append(s * rng.uniform(1, 5))
        elif kind == "pole":  # thin structures: the hardest edges for depth models
            cyl_b.append(p)
            cyl_r.append(rng.uniform(0.008, 0.05))
            cyl_h.append(rng.uniform(0.8, 3.0))
        else:  # shelf: thin stacked boards on two thin sides
            w, dpt, hgt = rng.uniform(0.5, 1.6), rng.uniform(0.2, 0.4), rng.uniform(0.8, 2.0)
            yaw = float(np.arctan2(fwd[0], fwd[2])) + rng.uniform(-0.4, 0.4)
            for k in range(int(rng.integers(2, 5))):
                y = hgt * k / 3
                box_c.append(p + np.array([0, y + 0.015, 0]))
                box_h.append(np.array([w / 2, 0.015, dpt / 2]))
                box_y.append(yaw)
            for sx in (-1, 1):
                off = np.array([np.cos(yaw), 0, -np.sin(yaw)]) * sx * w / 2
                box_c.append(p + off + np.array([0, hgt / 2, 0]))
                box_h.append(np.array([0.015, hgt / 2, dpt / 2]))
                box_y.append(yaw)
    arr = lambda x, shape: np.array(x, np.float64).reshape(shape)  # noqa: E731
    scene = Scene(planes=(np.array(pn, np.float64), np.array(po, np.float64)),
                  spheres=(arr(sph_c, (-1, 3)), arr(sph_r, (-1,))),
                  boxes=(arr(box_c, (-1, 3)), arr(box_h, (-1, 3)), arr(box_y, (-1,))),
                  cylinders=(arr(cyl_b, (-1, 3)), arr(cyl_r, (-1,)), arr(cyl_h, (-1,))),
                  sky=sky)
    scene.materials = {"planes": _material(rng, n_tex, len(pn), (0.5, 3.0)),
                       "spheres": _material(rng, n_tex, len(sph_r), (0.3, 1.5)),
                       "boxes": _material(rng, n_tex, len(box_y), (0.3, 2.0)),
                       "cylinders": _material(rng, n_tex, len(cyl_r), (0.2, 1.5))}
    sun = np.array([rng.uniform(-1, 1), rng.uniform(0.3, 1.2), rng.uniform(-1, 1)])
    scene.sun = sun / np.linalg.norm(sun)
    scene.ambient = float(rng.uniform(0.25, 0.6))
    return scene


def pixel_rays(K: np.ndarray, pose: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H*W, 3) world directions through pixel centres, scaled so the camera-z component is 1."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    x = (u.ravel() - K[0, 2]) / K[0, 0]
    y = (v.ravel() - K[1, 2]) / K[1, 1]
    dc = np.stack([x, y, np.ones_like(x)], 1)
    return dc @ pose[:3, :3].T


def render(scene: Scene, K: np.ndarray, pose: np.ndarray, h: int, w: int, tex: np.ndarray,
           rng: np.random.Generator | None = None) -> Frame:
    """Cast one ray per pixel; nearest hit gives depth, texture * Lambert shading gives colour."""
    o, d = pose[:3, 3], pixel_rays(K, pose, h, w)
    hits = [("planes", hit_planes(o, d, *scene.planes)), ("spheres", hit_spheres(o, d, *scene.spheres)),
            ("boxes", hit_boxes(o, d, *scene.boxes)), ("cylinders", hit_cylinders(o, d, *scene.cylinders))]
    t = np.concatenate([hh[0] for _, hh in hits], 1)  # (R, N)
    nrm = np.concatenate([hh[1] for _, hh in hits], 1)
    uv = np.concatenate([hh[2] for _, hh in hits], 1)
    mats = np.concatenate([scene.materials[k] for k, _ in hits], 0)  # (N, 5)
    best = t.argmin(1)
    r = np.arange(len(d))
    depth = t[r, best]
    n, uvb, m = nrm[r, best], uv[r, best], mats[best]
    s = tex.shape[1]
    iu = np.floor(uvb[:, 0] / m[:, 1] * s).astype(np.int64) % s
    iv = np.floor(uvb[:, 1] / m[:, 1] * s).astype(np.int64) % s
    albedo = tex[m[:, 0].astype(np.int64), iv, iu] * m[:, 2:5]
    lam = np.clip(n @ scene.sun, 0, 1)
    color = albedo * (scene.ambient + (1 - scene.ambient) * lam)[:, None]
    sky = ~np.isfinite(depth)
    if sky.any():
        if scene.sky is not None:
            up = np.clip(d[sky, 1] / np.linalg.norm(d[sky], axis=1), 0, 1)[:, None]
            color[sky] = scene.sky[0] * (1 - up) + scene.sky[1] * up
        else:
            color[sky] = 0.7
    img = color.reshape(h, w, 3)
    if rng is not None:  # camera effects: exposure, gamma, blur, sensor noise
        img = np.clip(img * rng.uniform(0.8, 1.3), 0, 1) ** rng.uniform(0.8, 1.2)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img.astype(np.float32), (3, 3), rng.uniform(0.4, 0.9))
        img = img + rng.normal(0, rng.uniform(0, 0.02), img.shape)
    rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Frame(rgb=rgb, depth=depth.reshape(h, w).astype(np.float32), K=K, pose=pose)


def _random_camera(rng: np.random.Generator) -> np.ndarray:
    pos = np.array([rng.uniform(-2, 2), rng.uniform(0.3, 2.0), rng.uniform(-2, 2)])
    return look_pose(pos, rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(-25, 10)), np.deg2rad(rng.uniform(-5, 5)))


def make_frame(seed: int, cfg: SynthConfig = SynthConfig()) -> Frame:
    """One random scene and view, fully determined by ``seed``."""
    rng = np.random.default_rng(seed)
    tex = atlas(cfg.atlas_seed)
    K = intrinsics(rng, cfg.height, cfg.width, cfg.hfov_deg)
    pose = _random_camera(rng)
    scene = sample_scene(rng, pose, len(tex), cfg.max_objects)
    return render(scene, K, pose, cfg.height, cfg.width, tex, rng)


def make_sequence(seed: int, length: int, cfg: SynthConfig = SynthConfig(), speed: float = 0.04) -> list[Frame]:
    """A moving-camera clip of one static scene: smooth forward/sideways motion plus a slow yaw."""
    rng = np.random.default_rng(seed)
    tex = atlas(cfg.atlas_seed)
    K = intrinsics(rng, cfg.height, cfg.width, cfg.hfov_deg)
    pos0 = np.array([0.0, rng.uniform(0.5, 1.8), 0.0])
    yaw0, pitch = rng.uniform(-np.pi, np.pi), np.deg2rad(rng.uniform(-15, 5))
    scene = sample_scene(rng, look_pose(pos0, yaw0, pitch, 0.0), len(tex), cfg.max_objects)
    vel = np.array([rng.uniform(-0.5, 0.5), 0, rng.uniform(0, 1)])
    vel = speed * vel / max(np.linalg.norm(vel), 1e-6)
    yaw_rate = np.deg2rad(rng.uniform(-1.5, 1.5))
    frames = []
    for i in range(length):
        yaw = yaw0 + yaw_rate * i
        c, s = np.cos(yaw0), np.sin(yaw0)
        step = np.array([c * vel[0] + s * vel[2], 0, -s * vel[0] + c * vel[2]]) * i
        frames.append(render(scene, K, look_pose(pos0 + step, yaw, pitch, 0.0), cfg.height, cfg.width, tex,
                             np.random.default_rng([seed, i])))
    return frames
