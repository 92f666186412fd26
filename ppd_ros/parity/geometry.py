"""Parity handlers for the metric-alignment and point-cloud fixtures (shared/fixtures/moge2/{ransac,depth2pcd})."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..geometry import (apply_log_depth_fit, depth2pcd, fit_log_depth_ransac, normalized_to_pixel_intrinsics,
                        statistical_outlier_keep, to_ply_axes)
from . import Check, Fixture, compare, handles

_AB_TOL = (1e-6, 1e-6)  # (atol, rtol) for the raw RANSAC coefficients; the spec's replica reaches 3e-7


def _reimpl_tol(fx: Fixture, name: str, default: tuple[float, float]) -> tuple[float, float]:
    """(atol, rtol) from meta['tolerance']['reimplementation'][name], else ``default``."""
    entry = fx.meta.get("tolerance", {}).get("reimplementation", {}).get(name)
    if isinstance(entry, dict) and "atol" in entry:
        return float(entry["atol"]), float(entry.get("rtol", 0.0))
    return default


def _np(fx: Fixture, group: str, key: str) -> np.ndarray:
    return getattr(fx, group)[key].numpy()


def _exact(name: str, got: np.ndarray, want: np.ndarray) -> Check:
    """Exact equality of integer/bool arrays (e.g. keep indices, inlier masks)."""
    if got.shape != want.shape:
        return Check(name, float("inf"), "exact", False, f"shape {got.shape} vs {want.shape}")
    n_diff = int((got != want).sum())
    return Check(name, float(n_diff), "exact", n_diff == 0, f"{n_diff} differ" if n_diff else "")


@handles("ppd_recover_metric_depth_ransac")
def ransac_fixture(fx: Fixture) -> Iterable[Check]:
    """Replay meta.rng.calls on one RandomState (reseeded where ``reseed``), as the official stream."""
    spec = fx.meta["rng"]
    atol, rtol = _reimpl_tol(fx, "metric_depth", (1e-5, 1e-4))
    rng = np.random.RandomState(spec["seed"])
    for call in spec["calls"]:
        case = call["case"]
        if call["reseed"]:
            rng.seed(spec["seed"])
        pred, gt, mask = (_np(fx, "inputs", f"{case}.{k}") for k in ("pred", "gt", "mask"))
        fit = fit_log_depth_ransac(pred, gt, mask, rng)
        depth = apply_log_depth_fit(pred, fit.a, fit.b, fit.max_depth)
        yield compare(f"{case}.metric_depth", depth, _np(fx, "outputs", f"{case}.metric_depth"), atol, rtol)
        if f"{case}.debug.a" in fx.outputs:
            if fit.ransac_a is None:
                yield Check(f"{case}.debug.a", float("inf"), "-", False, f"RANSAC failed ({fit.branch} branch)")
                continue
            yield compare(f"{case}.debug.a", np.array([fit.ransac_a]), _np(fx, "outputs", f"{case}.debug.a"), *_AB_TOL)
            yield compare(f"{case}.debug.b", np.array([fit.ransac_b]), _np(fx, "outputs", f"{case}.debug.b"), *_AB_TOL)
        if f"{case}.debug.inlier_mask" in fx.outputs and fit.inlier_mask is not None:
            yield _exact(f"{case}.debug.inlier_mask", fit.inlier_mask,
                         _np(fx, "outputs", f"{case}.debug.inlier_mask").astype(bool))


@handles("ppd_depth2pcd")
def depth2pcd_fixture(fx: Fixture) -> Iterable[Check]:
    """Back-projection, colours, statistical filter keep set and the .ply axis flip."""
    depth, k_norm, rgb, mask = (_np(fx, "inputs", k) for k in ("depth", "intrinsics_normalized", "rgb", "mask"))
    h, w = depth.shape
    k_px = normalized_to_pixel_intrinsics(k_norm, w, h)
    if "intrinsics_pixels" in fx.inputs:
        yield compare("intrinsics_pixels", k_px, _np(fx, "inputs", "intrinsics_pixels"), 1e-6, 1e-6)
    pts, cols = depth2pcd(depth, k_px, mask=mask, rgb=rgb)
    p_atol, p_rtol = _reimpl_tol(fx, "points", (1e-5, 1e-6))
    c_atol, c_rtol = _reimpl_tol(fx, "colors", (1e-7, 0.0))
    yield compare("points", pts, _np(fx, "outputs", "points"), p_atol, p_rtol)
    yield compare("colors", cols, _np(fx, "outputs", "colors"), c_atol, c_rtol)
    keep = statistical_outlier_keep(pts, nb_neighbors=20, std_ratio=3.0)
    yield _exact("filter.keep_index", keep, _np(fx, "outputs", "filter.keep_index").astype(np.int64))
    yield compare("filter.points", pts[keep], _np(fx, "outputs", "filter.points"), p_atol, p_rtol)
    yield compare("filter.colors", cols[keep], _np(fx, "outputs", "filter.colors"), c_atol, c_rtol)
    yield compare("ply.points", to_ply_axes(pts[keep]), _np(fx, "outputs", "ply.points"), p_atol, p_rtol)
