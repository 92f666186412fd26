"""When a stream must start over, and when a frame may warm-start: small pure tests shared by the pipelines.

Reasons a stream (re)starts, reported in ``DepthResult.continuity``: "first_frame", "request" (caller's
``state.reset()``), "time_jump" (stamp went backwards), "gap" (node: many seconds without frames),
"scene_cut" (grey thumbnails differ a lot), "resize" (frame size changed), "camera_info" (node: new
calibration). "" means the frame continues the stream.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

THUMB = 16  # scene-cut thumbnail side
MOTION_DIV = 4  # the motion test compares grey images at a quarter of the working size

REASONS = ("first_frame", "request", "time_jump", "gap", "scene_cut", "resize", "camera_info")


def grey_thumb(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (THUMB, THUMB) float32 grey thumbnail."""
    return F.adaptive_avg_pool2d(image.float().mean(1, keepdim=True), THUMB)[0, 0]


def grey_small(image: torch.Tensor) -> torch.Tensor:
    """(1, 3, h, w) in [0, 1] -> (h // 4, w // 4) float32 grey image for the motion test."""
    h, w = image.shape[-2:]
    size = (max(1, h // MOTION_DIV), max(1, w // MOTION_DIV))
    return F.adaptive_avg_pool2d(image.float().mean(1, keepdim=True), size)[0, 0]


def motion(small: torch.Tensor, prev: torch.Tensor | None) -> float:
    """Mean absolute grey difference in [0, 1] (inf when there is nothing to compare with)."""
    if prev is None or prev.shape != small.shape:
        return float("inf")
    return float((small - prev).abs().mean())


def is_scene_cut(thumb: torch.Tensor, prev: torch.Tensor | None, threshold: float) -> bool:
    return prev is not None and threshold > 0 and float((thumb - prev).abs().mean()) > threshold


def is_time_jump(stamp: object, last: object) -> bool:
    """Numeric stamps only (the node passes opaque frames and checks its nanosecond stamps itself)."""
    return isinstance(stamp, numbers.Real) and isinstance(last, numbers.Real) and stamp < last
