"""Honest evaluation of the embedded PPD against trivial baselines and the decoder-only ablation.

Rows: ``model`` (PPDPipeline: encoder + DiT + Euler sampler), ``decoder`` (the encoder's own coarse
depth, no DiT), ``constant``, ``plane`` (log-depth plane fitted to the GT: an oracle with 3
parameters) and ``gt_working`` (the GT itself at the model's working size, resized back like the model
output: the best a model at that size can score). Every row goes through the same per-image
alignment (``evaluation.align_log_depth``).
Used by ``bench/eval_real.py``, ``ppd-ros evaluate`` and ``tests/test_embedded.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from ..data.real import RealFrame, load_real_frames
from ..data.synthetic import SynthConfig
from ..preprocess import resize_depth
from .dataset import EVAL_SEED_OFFSET, frame_pool
from .evaluation import constant_prediction, frame_metrics, plane_prediction, working_resolution_gt

ROWS = ("model", "decoder", "constant", "plane", "gt_working")
TEST_SEED = 2 * EVAL_SEED_OFFSET + 7  # synthetic test frames: disjoint from training and monitoring seeds


@dataclass
class Prediction:
    model: np.ndarray  # (H, W) normalised log depth from the full pipeline
    decoder: np.ndarray  # (H, W) decoder-only log depth
    working_size: tuple[int, int]  # (h, w) the pipeline ran at


def predict(pipe, rgb: np.ndarray) -> Prediction:
    """Run the pipeline and, on the same working-size tensor, the decoder alone; both at the input size."""
    res = pipe(rgb, pipe.new_stream(0))
    image = pipe.prepare(rgb)
    with torch.inference_mode():
        dec = pipe.encoder.forward_depth(image.to(pipe.device))
    dec_full = resize_depth(dec.float().cpu(), rgb.shape[:2])[0, 0].numpy()
    return Prediction(model=res.depth, decoder=dec_full, working_size=tuple(image.shape[-2:]))


def evaluate_frame(pipe, rgb: np.ndarray, gt: np.ndarray) -> dict[str, dict[str, float]]:
    p = predict(pipe, rgb)
    preds = {"model": p.model, "decoder": p.decoder, "constant": constant_prediction(gt),
             "plane": plane_prediction(gt), "gt_working": working_resolution_gt(gt, p.working_size)}
    return {row: frame_metrics(preds[row], gt) for row in ROWS}


def evaluate_real(pipe, frames: list[RealFrame] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """{frame name: {row: {absrel, delta1, flying}}} on the bundled real frames."""
    return {f.name: evaluate_frame(pipe, f.rgb, f.depth) for f in (frames or load_real_frames())}


def evaluate_synthetic_test(pipe, n: int = 32, height: int = 96, width: int = 128) -> dict[str, dict[str, float]]:
    """Mean metrics per row over ``n`` held-out synthetic frames (seeds never used in training)."""
    rgb, depth = frame_pool(TEST_SEED, n, SynthConfig(height=height, width=width))
    acc: dict[str, dict[str, list[float]]] = {}
    for i in range(n):
        for row, m in evaluate_frame(pipe, rgb[i], depth[i]).items():
            for k, v in m.items():
                acc.setdefault(row, {}).setdefault(k, []).append(v)
    return {row: {k: float(np.nanmean(v)) for k, v in ms.items()} for row, ms in acc.items()}


def format_table(real: dict, synthetic: dict | None, metric: dict | None = None) -> str:
    """Markdown table: one line per (dataset, row); the model row carries the metric AbsRel when known."""
    metric = metric or {}
    lines = ["| data | predictor | AbsRel (aligned) | delta1 (aligned) | flying-pixel ratio | metric AbsRel |",
             "|---|---|---|---|---|---|"]
    blocks = list(real.items()) + ([("synthetic (held-out)", synthetic)] if synthetic else [])
    for name, rows in blocks:
        for row in ROWS:
            m = rows[row]
            ma = metric.get(name, {}).get("metric_absrel") if row == "model" else None
            lines.append(f"| {name} | {row} | {m['absrel']:.3f} | {m['delta1']:.3f} | {m['flying']:.3f} | "
                         f"{'n/a' if ma is None else f'{ma:.3f}'} |")
    return "\n".join(lines)


def evaluate_metric(pipe, stage, frames: list[RealFrame] | None = None) -> dict[str, dict[str, float]]:
    """Metric AbsRel (no alignment), median scale ratio pred/GT and focal error of the metric stage.

    The stage runs as for an uncalibrated camera (focal predicted). Frames without trusted metric GT
    or intrinsics (Aloe) are skipped. ``metric_absrel`` is over every published GT-valid pixel. When
    the MoGe-2 runner has a calibrated ``publish_threshold``, ``metric_absrel_official_mask`` is over the
    pixels the official 0.5 mask publishes (their metres are unchanged by the threshold) and
    ``metric_absrel_added`` over the pixels the calibrated threshold adds.
    """
    from .. import metrics
    out = {}
    moge = getattr(stage, "moge", None)
    publish = getattr(moge, "publish_threshold", None)

    def run(f: RealFrame) -> tuple[np.ndarray, object]:
        res = stage(stage.new_state(), pipe(f.rgb, pipe.new_stream(0)), f.rgb, None)
        h, w = f.depth.shape
        return cv2.resize(np.where(np.isfinite(res.depth), res.depth, np.nan).astype(np.float32), (w, h),
                          interpolation=cv2.INTER_NEAREST), res

    for f in frames or load_real_frames():
        if not f.metric or f.K is None:
            continue
        depth, res = run(f)
        h, w = f.depth.shape
        valid = np.isfinite(f.depth) & np.isfinite(depth)
        fx_pred = res.intrinsics.K[0, 0] * w / res.depth.shape[1]
        out[f.name] = {"metric_absrel": metrics.abs_rel(depth, f.depth, valid),
                       "scale_ratio": float(np.median(depth[valid] / f.depth[valid])),
                       "focal_rel_error": float(fx_pred / f.K[0, 0] - 1.0)}
        if publish is not None:
            moge.publish_threshold = None
            try:
                official = np.isfinite(run(f)[0]) & valid
            finally:
                moge.publish_threshold = publish
            added = valid & ~official
            out[f.name]["metric_absrel_official_mask"] = metrics.abs_rel(depth, f.depth, official)
            out[f.name]["metric_absrel_added"] = metrics.abs_rel(depth, f.depth, added) if added.any() else None
    return out


def published_fraction(depth: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of the GT-valid pixels whose published metric depth is finite (NaN/+inf = not published).

    ``depth`` at any resolution is resized (nearest) to ``gt``'s; ``gt`` is NaN where there is no GT.
    """
    h, w = gt.shape
    if depth.shape != (h, w):
        depth = cv2.resize(depth.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    has_gt = np.isfinite(gt)
    return float(np.isfinite(depth[has_gt]).mean()) if has_gt.any() else float("nan")


def evaluate_published(pipe, stage, frames: list[RealFrame] | None = None) -> dict[str, float]:
    """Per real frame: the fraction of GT-valid pixels the metric stage publishes (finite metres).

    Every bundled frame counts (Aloe too: its GT validity is meaningful even though its metres are not);
    calibrated frames get their camera, as the node would from camera_info.
    """
    from ..intrinsics import CameraIntrinsics
    out = {}
    for f in frames or load_real_frames():
        cam = None
        if f.K is not None:
            h, w = f.rgb.shape[:2]
            cam = CameraIntrinsics.from_pinhole(w, h, f.K[0, 0], f.K[1, 1], f.K[0, 2], f.K[1, 2])
        res = stage(stage.new_state(), pipe(f.rgb, pipe.new_stream(0)), f.rgb, cam)
        out[f.name] = published_fraction(res.depth, f.depth)
    return out
