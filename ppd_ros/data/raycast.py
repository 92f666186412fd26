"""Vectorised ray casting against planes, spheres, yawed boxes and vertical cylinders (numpy, world y up).

Every ``hit_*`` takes ray origin ``o`` (3,) and directions ``d`` (R, 3) whose *camera* z component is
1, so the returned ray parameter t equals the metric depth along the optical axis. Each returns
(t (R, n), normal (R, n, 3), uv (R, n, 2)) with t = +inf where a ray misses; uv are metric surface
coordinates used for texturing.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-4
Hits = tuple[np.ndarray, np.ndarray, np.ndarray]


def _empty(r: int) -> Hits:
    return np.full((r, 0), np.inf, np.float32), np.zeros((r, 0, 3), np.float32), np.zeros((r, 0, 2), np.float32)


def _tangents(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangent vectors per normal (n, 3)."""
    ref = np.where(np.abs(n[:, 1:2]) > 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    t1 = np.cross(ref, n)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    return t1, np.cross(n, t1)


def hit_planes(o: np.ndarray, d: np.ndarray, normal: np.ndarray, offset: np.ndarray) -> Hits:
    """Infinite planes n . x = offset; normals (n, 3) unit, offsets (n,)."""
    if len(normal) == 0:
        return _empty(len(d))
    denom = d @ normal.T  # (R, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (offset - normal @ o)[None] / denom
    t = np.where((t > EPS) & np.isfinite(t), t, np.inf)
    p = o[None, None] + t[..., None] * d[:, None]  # (R, n, 3)
    t1, t2 = _tangents(normal)
    pf = np.where(np.isfinite(p), p, 0)
    uv = np.stack([(pf * t1[None]).sum(-1), (pf * t2[None]).sum(-1)], -1)
    nrm = np.broadcast_to(normal[None], p.shape)
    return t.astype(np.float32), nrm.astype(np.float32), uv.astype(np.float32)


def hit_spheres(o: np.ndarray, d: np.ndarray, center: np.ndarray, radius: np.ndarray) -> Hits:
    """Spheres (n, 3) centres, (n,) radii; only hits in front of the camera from outside."""
    if len(center) == 0:
        return _empty(len(d))
    oc = o[None] - center  # (n, 3)
    a = (d * d).sum(1, keepdims=True)  # (R, 1)
    b = 2 * d @ oc.T  # (R, n)
    c = (oc * oc).sum(1) - radius ** 2  # (n,)
    disc = b * b - 4 * a * c[None]
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    t = np.where((disc > 0) & (t > EPS), t, np.inf)
    p = o[None, None] + np.where(np.isfinite(t), t, 0)[..., None] * d[:, None]
    n = (p - center[None]) / radius[None, :, None]
    uv = np.stack([np.arctan2(n[..., 0], n[..., 2]) * radius, np.arcsin(np.clip(n[..., 1], -1, 1)) * radius], -1)
    return t.astype(np.float32), n.astype(np.float32), uv.astype(np.float32)


def hit_boxes(o: np.ndarray, d: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: np.ndarray) -> Hits:
    """Boxes rotated by ``yaw`` about the world y axis; centres/half sizes (n, 3), yaw (n,)."""
    if len(center) == 0:
        return _empty(len(d))
    cs, sn = np.cos(yaw), np.sin(yaw)
    # world -> box frame: rotate by -yaw about y
    def to_local(v: np.ndarray) -> np.ndarray:  # (..., n, 3) -> same
        return np.stack([cs * v[..., 0] - sn * v[..., 2], v[..., 1], sn * v[..., 0] + cs * v[..., 2]], -1)
    ol = to_local((o[None] - center))  # (n, 3)
    dl = to_local(np.broadcast_to(d[:, None], (len(d), len(center), 3)))  # (R, n, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(dl == 0, 1e-12, dl)
        t1 = (-half[None] - ol[None]) * inv
        t2 = (half[None] - ol[None]) * inv
    tlo, thi = np.minimum(t1, t2), np.maximum(t1, t2)
    tmin, axis = tlo.max(-1), tlo.argmax(-1)
    tmax = thi.min(-1)
    t = np.where((tmax >= tmin) & (tmin > EPS), tmin, np.inf)
    nl = np.zeros(dl.shape, np.float32)
    np.put_along_axis(nl, axis[..., None], -np.sign(np.take_along_axis(dl, axis[..., None], -1)), -1)
    n = np.stack([cs * nl[..., 0] + sn * nl[..., 2], nl[..., 1], -sn * nl[..., 0] + cs * nl[..., 2]], -1)
    pl = ol[None] + np.where(np.isfinite(t), t, 0)[..., None] * dl  # local hit point (R, n, 3)
    # uv: the two local coordinates other than the face axis
    u = np.where(axis == 0, pl[..., 2], pl[..., 0])
    v = np.where(axis == 1, pl[..., 2], pl[..., 1])
    return t.astype(np.float32), n.astype(np.float32), np.stack([u, v], -1).astype(np.float32)


def hit_cylinders(o: np.ndarray, d: np.ndarray, base: np.ndarray, radius: np.ndarray, height: np.ndarray) -> Hits:
    """Vertical capped cylinders: base centre (n, 3) (y = bottom), radius (n,), height (n,)."""
    if len(base) == 0:
        return _empty(len(d))
    ox, oz = o[0] - base[:, 0], o[2] - base[:, 2]  # (n,)
    a = (d[:, 0:1] ** 2 + d[:, 2:3] ** 2)  # (R, 1)
    b = 2 * (d[:, 0:1] * ox[None] + d[:, 2:3] * oz[None])
    c = ox ** 2 + oz ** 2 - radius ** 2
    disc = b * b - 4 * a * c[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ts = (-b - np.sqrt(disc)) / (2 * a)
    y = o[1] + ts * d[:, 1:2]
    ts = np.where((disc > 0) & (ts > EPS) & (y >= base[:, 1]) & (y <= base[:, 1] + height), ts, np.inf)
    top = base[:, 1] + height  # cap plane y = top, seen from above
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (top[None] - o[1]) / d[:, 1:2]
    cx = ox[None] + tc * d[:, 0:1]
    cz = oz[None] + tc * d[:, 2:3]
    tc = np.where((tc > EPS) & (cx ** 2 + cz ** 2 <= radius ** 2) & (o[1] > top[None]), tc, np.inf)
    use_cap = tc < ts
    t = np.minimum(ts, tc)
    tf = np.where(np.isfinite(t), t, 0)
    px, py, pz = ox[None] + tf * d[:, 0:1], o[1] + tf * d[:, 1:2], oz[None] + tf * d[:, 2:3]
    r = radius[None]
    side_n = np.stack([px / r, np.zeros_like(px), pz / r], -1)
    cap_n = np.broadcast_to(np.array([0, 1.0, 0]), side_n.shape)
    n = np.where(use_cap[..., None], cap_n, side_n)
    u = np.where(use_cap, px, np.arctan2(px, pz) * r)
    v = np.where(use_cap, pz, py)
    return t.astype(np.float32), n.astype(np.float32), np.stack([u, v], -1).astype(np.float32)
