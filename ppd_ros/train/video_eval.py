"""Evaluation of the embedded PPVD against the per-frame small PPD (used by ``bench/eval_video.py`` and tests).

Per clip and method: per-frame aligned AbsRel (``evaluation.frame_metrics``: one scale/shift per frame),
clip-aligned AbsRel (ONE scale/shift fitted over the whole clip: what a consumer of a consistent
stream gets) and flicker: after the clip-wide fit, the mean absolute error of the frame-to-frame change
of log(1 + depth) against the ground truth's change (0 = temporally perfect, in log units).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import metrics
from ..data.synthetic import SynthConfig
from .evaluation import align_log_depth, constant_prediction, frame_metrics, gt_mask
from .video import HELDOUT_SEED_BASE, sequence_pool

METHODS = ("ppd_per_frame", "ppvd_stream", "ppvd_exact")


def run_clip(pipe: Any, frames: np.ndarray, mode: str | None) -> list[np.ndarray]:
    """Every frame of a clip through a pipeline's streaming surface; (H, W) relative depth per frame."""
    st = pipe.new_stream() if mode is None else pipe.new_stream(mode)
    out: dict[int, np.ndarray] = {}
    for i, rgb in enumerate(frames):
        for r in pipe.push(st, rgb, stamp=i):
            out[int(r.stamp)] = r.depth
    for r in pipe.flush(st):
        out[int(r.stamp)] = r.depth
    return [out[i] for i in range(len(frames))]


def clip_metrics(preds: list[np.ndarray], gts: np.ndarray) -> dict[str, float]:
    """Per-frame aligned AbsRel, clip-aligned AbsRel and flicker of one clip."""
    per_frame = [frame_metrics(p, g)["absrel"] for p, g in zip(preds, gts)]
    h = gts.shape[1]
    aligned = align_log_depth(np.concatenate(preds, 0), np.concatenate(list(gts), 0))  # one fit for the clip
    seq = [metrics.abs_rel(aligned[i * h:(i + 1) * h], g, gt_mask(g)) for i, g in enumerate(gts)]
    logp = np.log1p(aligned).reshape(gts.shape)
    logg = np.log1p(np.where(gt_mask(gts), gts, np.nan))
    dp, dg = np.diff(logp, axis=0), np.diff(logg, axis=0)
    v = np.isfinite(dp) & np.isfinite(dg)
    return {"absrel": float(np.nanmean(per_frame)), "clip_absrel": float(np.nanmean(seq)),
            "flicker": float(np.abs(dp - dg)[v].mean())}


def evaluate_clips(image_pipe: Any, video_pipe: Any, clips: int = 4, length: int = 24,
                   methods: tuple[str, ...] = METHODS, cache_dir: str | None = None) -> dict[str, dict[str, float]]:
    """Mean metrics per method over held-out clips (seeds ``HELDOUT_SEED_BASE + i``, disjoint from training)."""
    rgb, depth = sequence_pool(HELDOUT_SEED_BASE, clips, length, SynthConfig(height=96, width=128), cache_dir)
    runs = {"ppd_per_frame": (image_pipe, None), "ppvd_stream": (video_pipe, "stream"),
            "ppvd_exact": (video_pipe, "exact")}
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        pipe, mode = runs[name]
        per_clip = [clip_metrics(run_clip(pipe, rgb[c], mode), depth[c]) for c in range(clips)]
        out[name] = {k: float(np.mean([m[k] for m in per_clip])) for k in per_clip[0]}
    return out


def evaluate_real_stream(video_pipe: Any) -> dict[str, dict[str, float]]:
    """Each bundled real frame as a one-frame stream (streaming mode): aligned AbsRel vs the constant baseline."""
    from ..data.real import load_real_frames
    out = {}
    for f in load_real_frames():
        pred = run_clip(video_pipe, f.rgb[None], "stream")[0]
        out[f.name] = {"model_absrel": frame_metrics(pred, f.depth)["absrel"],
                       "constant_absrel": frame_metrics(constant_prediction(f.depth), f.depth)["absrel"]}
    return out


def format_table(clips: dict[str, dict[str, float]], real: dict[str, dict[str, float]] | None = None) -> str:
    lines = [f"{'method':<16}{'AbsRel/frame':>14}{'AbsRel/clip':>13}{'flicker':>10}"]
    for name, m in clips.items():
        lines.append(f"{name:<16}{m['absrel']:>14.4f}{m['clip_absrel']:>13.4f}{m['flicker']:>10.4f}")
    if real:
        lines.append(f"{'real (stream)':<16}{'model':>14}{'constant':>13}")
        for name, m in real.items():
            lines.append(f"{name:<16}{m['model_absrel']:>14.4f}{m['constant_absrel']:>13.4f}")
    return "\n".join(lines)
