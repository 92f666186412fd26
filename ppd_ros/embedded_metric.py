"""The embedded metric predictor: ``MoGe2Predictor``-compatible, built from the small encoder + metric head.

``SmallMetricPredictor.predict(image, fov_x)`` returns a ``MoGe2Prediction`` (metric depth, points,
mask, normalised intrinsics) so ``pipelines.metric.MetricStage`` runs unchanged on it.
"""
from __future__ import annotations

import math

import torch

from .intrinsics import focal_from_fov_x, normalized_intrinsics
from .models.small_encoder import SmallSemanticEncoder
from .models.small_metric import SmallMetricHead
from .pipelines.moge import MoGe2Prediction


def metric_log_depth(norm_depth: torch.Tensor, head_out: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) normalised depth in [0, 1] (q02 -> 0, q98 -> 1) + (B, 3) head output -> log1p(metres)."""
    lo, hi = head_out[:, 0, None, None, None], head_out[:, 1, None, None, None]
    return lo + (hi - lo) * norm_depth


class SmallMetricPredictor:
    """Metric depth from the decoder's coarse depth and the head's per-image log-depth range."""

    def __init__(self, encoder: SmallSemanticEncoder, head: SmallMetricHead, max_depth: float = 80.0) -> None:
        self.encoder, self.head, self.max_depth = encoder.eval(), head.eval(), max_depth

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction:
        dev = next(self.head.parameters()).device
        image = image.to(dev, torch.float32)
        b, _, h, w = image.shape
        feats = self.encoder.backbone(image)
        _, coarse = self.encoder.decoder(feats)
        norm = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.5
        out = self.head(feats[3])  # (B, 3)
        depth = torch.expm1(metric_log_depth(norm, out).clamp(max=math.log1p(self.max_depth)))[:, 0]
        depth = depth.clamp_min(1e-3)
        aspect = w / h
        if fov_x is None:
            focal = out[:, 2].exp()
        else:
            focal = focal_from_fov_x(fov_x, aspect, torch.float32, dev).expand(b)
        k = normalized_intrinsics(focal, aspect)
        u = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) / w
        v = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) / h
        x = (u[None, None, :] - k[:, 0, 2, None, None]) / k[:, 0, 0, None, None] * depth
        y = (v[None, :, None] - k[:, 1, 2, None, None]) / k[:, 1, 1, None, None] * depth
        mask = torch.ones_like(depth, dtype=torch.bool)
        return MoGe2Prediction(depth=depth, points=torch.stack([x, y, depth], -1), mask=mask, intrinsics=k,
                               metric_scale=torch.ones(b, device=dev), focal=focal, shift=torch.zeros(b, device=dev))
