"""The demo's measurements (AbsRel vs GT with baselines), pictures and summary dictionary."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..train.evaluation import align_log_depth, constant_prediction, frame_metrics, gt_mask, plane_prediction
from .demo_pictures import depth_panel, label, latency_plot, render_cloud, stack_rows


def _abs_rel_map(depth: np.ndarray, gt: np.ndarray) -> np.ndarray:
    m = gt_mask(gt) & np.isfinite(depth)
    return np.where(m, np.abs(depth - np.where(m, gt, 1)) / np.where(m, gt, 1), np.nan)


def _published_fx(r, rgb: np.ndarray) -> float | None:
    """fx of the published depth/camera_info (given, or predicted for an uncalibrated camera), in input pixels."""
    if r.K is None or r.metric is None or not r.K[0, 0] > 0:
        return None
    return float(r.K[0, 0] * rgb.shape[1] / r.metric.shape[1])


def _published_fraction(metric: np.ndarray | None, gt: np.ndarray) -> float | None:
    """Share of the GT-valid pixels whose published metric depth is finite (NaN / +inf = not published)."""
    if metric is None:
        return None
    m = metric if metric.shape == gt.shape else cv2.resize(metric.astype(np.float32), gt.shape[::-1],
                                                           interpolation=cv2.INTER_NEAREST)
    has = gt_mask(gt)
    return float(np.isfinite(m[has]).mean()) if has.any() else None


def write_report(cams: list, received: list, frames_in: int, out: Path, bag: str | None, mode: str,
                 notes: list[str]) -> dict:
    by_cam = {c.name: c for c in cams}
    firsts: dict[str, object] = {}
    for r in received:
        firsts.setdefault((r.camera, r.index), r)
    real_rows, real_metrics, syn_rows, syn_absrel = [], {}, [], []
    cloud_tiles = []
    for (cam_name, idx), r in sorted(firsts.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cam = by_cam[cam_name]
        rgb, gt = cam.frames[idx % len(cam.frames)], cam.gt[idx % len(cam.gt)]
        rel = r.relative if r.relative.shape == gt.shape else cv2.resize(r.relative, gt.shape[::-1])
        aligned = align_log_depth(rel, gt)
        err = _abs_rel_map(aligned, gt)
        if cam.real and cam_name.removeprefix("cam_") not in real_metrics:
            name = cam_name.removeprefix("cam_")
            m = frame_metrics(rel, gt)
            real_metrics[name] = {"model_absrel": m["absrel"], "model_delta1": m["delta1"],
                                  "constant_absrel": frame_metrics(constant_prediction(gt), gt)["absrel"],
                                  "plane_absrel": frame_metrics(plane_prediction(gt), gt)["absrel"],
                                  "calibrated": cam.K is not None, "published_fx_px": _published_fx(r, rgb),
                                  "metric_published_fraction": _published_fraction(r.metric, gt)}
            real_rows.append(depth_panel(rgb, rel, gt, err, f"{name} (real)"))
            if name == "motorcycle":
                depth = r.metric if r.metric is not None else aligned
                what = "metric stage" if r.metric is not None else "relative depth, scale-aligned to GT"
                K = r.K if r.K is not None else cam.K
                colours = rgb if rgb.shape[:2] == depth.shape else cv2.resize(rgb, depth.shape[::-1],
                                                                             interpolation=cv2.INTER_AREA)
                cloud_tiles.append(label(render_cloud(depth, K, colours), f"motorcycle cloud ({what})"))
        elif not cam.real:
            syn_absrel.append(frame_metrics(rel, gt)["absrel"])
            if len(syn_rows) < 4:
                syn_rows.append(depth_panel(rgb, rel, gt, err, f"synthetic frame {idx}"))
            if idx == 0:
                cloud_tiles.append(label(render_cloud(aligned, cam.K, rgb), "synthetic cloud (aligned, exact K)"))
    pictures = []
    for fname, rows in (("real_frames.png", real_rows), ("synthetic_sequence.png", syn_rows)):
        if rows:
            cv2.imwrite(str(out / fname), stack_rows(rows))
            pictures.append(str(out / fname))
    if cloud_tiles:
        cv2.imwrite(str(out / "pointcloud.png"), np.concatenate(cloud_tiles, 1))
        pictures.append(str(out / "pointcloud.png"))
    timed = [r for r in received if r.latency_ms]
    lat = [r.latency_ms for r in timed]
    cv2.imwrite(str(out / "latency.png"), latency_plot(lat, [r.warm for r in timed]))
    pictures.append(str(out / "latency.png"))
    stages = sorted({k for d in lat for k in d})
    frames_out = len(firsts)
    return {"mode": mode, "frames_in": frames_in, "frames_out": frames_out,
            "frames_dropped": max(frames_in - frames_out, 0), "real_frames": real_metrics,
            "synthetic_sequence_absrel": float(np.nanmean(syn_absrel)) if syn_absrel else None,
            "latency_ms": {k: float(np.median([d[k] for d in lat if k in d])) for k in stages},
            "bag": bag, "pictures": pictures, "notes": notes, "stability": stability(cams, received)}


def stability(cams: list, received: list) -> dict:
    """The static camera's flicker (bench/bench_stability.py's definition) and its sampling cost."""
    from ..metrics import static_background_flicker
    from .demo import STATIC_CAMERA
    cam = next((c for c in cams if c.name == STATIC_CAMERA), None)
    got = sorted({r.index: r for r in received if r.camera == STATIC_CAMERA}.values(), key=lambda r: r.index)
    if cam is None or len(got) < 2:
        return {}
    rgb = np.stack([cam.frames[r.index] for r in got])

    def flicker(maps: list[np.ndarray]) -> float:
        h, w = maps[0].shape
        small = rgb if rgb.shape[1:3] == (h, w) else np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA)
                                                                for x in rgb])
        return round(static_background_flicker(np.stack(maps), small), 5)
    metric = [np.where(np.isfinite(r.metric), r.metric, np.nan) for r in got if r.metric is not None]
    known = [r for r in got if r.warm is not None]
    return {"static_camera": {
        "frames": len(got), "static_flicker_relative": flicker([r.relative for r in got]),
        "static_flicker_metric": flicker(metric) if len(metric) == len(got) else None,
        "dit_evals_per_frame": round(float(np.mean([r.dit_evals for r in got])), 2),
        "warm_frames": sum(bool(r.warm) for r in known), "cold_frames": sum(not r.warm for r in known),
        "restarts": [r.continuity for r in got if r.continuity],
        "definition": "mean over frame pairs of median |d_t - d_(t-1)| on pixels whose RGB did not change, "
                      "over the depth spread p95 - p5 (ppd_ros.metrics.static_background_flicker)"}}
