"""MoGe-2 inference: raw network maps -> metric depth, validity mask, normalised intrinsics.

Follows the PPD-bundled ``MoGeModel.infer`` step by step (see moge2_pointcloud_spec.md §4): token
budget from the resolution level, focal/shift recovery on a 64x64 subsample, ``z + shift > 0`` added
to the mask, metric scaling, +inf outside the mask. Also the ``model.pt`` loader.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..checkpoints import CHECKPOINT_LAYOUTS, load_into, read_checkpoint_object, read_state_dict, select_keys
from ..config import MoGe2Config, moge2_config_from_official
from ..errors import CheckpointError, ConfigError, InputError
from ..intrinsics import focal_from_fov_x, normalized_intrinsics, recover_focal_shift
from ..models.moge2 import MoGe2Model, MoGe2Output, semantics_grid, token_grid


@dataclass
class MoGe2Prediction:
    """Metric MoGe-2 result for a batch at the input resolution (H, W)."""

    depth: torch.Tensor  # (B, H, W) float32 metres, +inf outside ``mask``
    points: torch.Tensor  # (B, H, W, 3) float32 metres (OpenCV optical frame), +inf outside ``mask``
    mask: torch.Tensor  # (B, H, W) bool: mask prob > mask_threshold (official 0.5) and z + shift > 0
    intrinsics: torch.Tensor  # (B, 3, 3) normalised K (cx = cy = 0.5)
    metric_scale: torch.Tensor  # (B,)
    focal: torch.Tensor  # (B,) half-diagonal units; <= 0 or non-finite means a degenerate map
    shift: torch.Tensor  # (B,)
    normal: torch.Tensor | None = None  # (B, H, W, 3), zero outside ``mask``
    # (B, H, W) bool: the pixels to publish when a model card calibrated a separate (lower) publication
    # threshold (prob > publish_threshold and z + shift > 0); None = ``mask``. ``mask`` stays the fit's set.
    publish: torch.Tensor | None = None


def num_tokens_for_level(level: float, num_tokens_range: tuple[int, int]) -> int:
    """Token budget of a resolution level 0..9 (9 -> the range's maximum)."""
    if not 0 <= level <= 9:
        raise ConfigError(f"resolution_level must be in [0, 9], got {level}")
    lo, hi = num_tokens_range
    return int(lo + (level / 9) * (hi - lo))


def _pixel_centre_points(depth: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Unproject pixel centres ((j+0.5)/W, (i+0.5)/H) with normalised K: (B, H, W) -> (B, H, W, 3)."""
    h, w = depth.shape[-2:]
    u = (torch.arange(w, dtype=depth.dtype, device=depth.device) + 0.5) / w
    v = (torch.arange(h, dtype=depth.dtype, device=depth.device) + 0.5) / h
    fx, fy, cx, cy = (k[:, 0, 0, None, None], k[:, 1, 1, None, None], k[:, 0, 2, None, None], k[:, 1, 2, None, None])
    x = (u[None, None, :] - cx) / fx * depth
    y = (v[None, :, None] - cy) / fy * depth
    return torch.stack([x, y, depth], dim=-1)


def postprocess(raw: MoGe2Output, fov_x: float | torch.Tensor | None = None,
                mask_threshold: float = 0.5, publish_threshold: float | None = None) -> MoGe2Prediction:
    """Raw maps -> metric prediction (spec §4 steps 3-9), in float32 whatever the network ran in.

    ``mask_threshold``: the official 0.5 (focal/shift solve, RANSAC samples, +inf outside).
    ``publish_threshold``: an extra, calibrated threshold for the pixels a metric stage publishes
    (``prediction.publish``); the embedded small MoGe-2's card sets one (``train/moge2_mask.py``).
    """
    points = raw.points.float()
    mask_prob, scale = raw.mask.float(), raw.metric_scale.float()
    b, h, w, _ = points.shape
    aspect = w / h
    valid = mask_prob > mask_threshold  # strict, as official (0.5)
    if fov_x is None:
        focal, shift = recover_focal_shift(points, valid)
    else:
        focal = focal_from_fov_x(fov_x, aspect, points.dtype, points.device)
        focal = focal.expand(b) if focal.ndim == 0 else focal.reshape(b)
        _, shift = recover_focal_shift(points, valid, focal=focal)
    k = normalized_intrinsics(focal, aspect)
    depth = points[..., 2] + shift[:, None, None]
    valid = valid & (depth > 0)
    pts = _pixel_centre_points(depth, k) * scale[:, None, None, None]  # force_projection
    depth = depth * scale[:, None, None]
    inf = torch.tensor(float("inf"), dtype=depth.dtype, device=depth.device)
    normal = None
    if raw.normal is not None:
        normal = torch.where(valid[..., None], raw.normal.float(), torch.zeros((), device=depth.device))
    publish = None if publish_threshold is None else (mask_prob > publish_threshold) & (depth > 0)
    return MoGe2Prediction(depth=torch.where(valid, depth, inf), points=torch.where(valid[..., None], pts, inf),
                           mask=valid, intrinsics=k, metric_scale=scale, focal=focal, shift=shift, normal=normal,
                           publish=publish)


def _batched(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"MoGe-2 needs a (3, H, W) or (B, 3, H, W) RGB tensor in [0, 1], got {shape}")
    if not image.is_floating_point():
        raise InputError(f"MoGe-2 needs a float image in [0, 1], got {image.dtype}")
    if min(image.shape[-2:]) < 2:
        raise InputError(f"image too small for MoGe-2: {tuple(image.shape[-2:])}")
    return image[None] if image.ndim == 3 else image


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def infer(model: MoGe2Model, image: torch.Tensor, num_tokens: int | None = None, resolution_level: float = 9,
          fov_x: float | torch.Tensor | None = None, use_fp16: bool = False,
          grid: tuple[int, int] | None = None, mask_threshold: float = 0.5,
          publish_threshold: float | None = None) -> MoGe2Prediction:
    """MoGe-2 ``infer`` on a (3, H, W) or (B, 3, H, W) RGB [0, 1] image (batch kept in the result).

    ``num_tokens`` defaults to the budget of ``resolution_level``; ``grid`` = (gh, gw) overrides both
    (used to share the encoder with PPD's semantics grid). ``fov_x`` (degrees) fixes the focal.
    """
    image = _batched(image)
    dev = _device(model)
    image = image.to(dev, torch.float32)
    h, w = image.shape[-2:]
    if grid is None:
        grid = token_grid(h, w, num_tokens or num_tokens_for_level(resolution_level, model.cfg.num_tokens_range))
    if min(grid) < 1:
        raise InputError(f"token grid {grid} is empty for a {w}x{h} image")
    with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_fp16):
        raw = model.decode(model.encode(image, grid), (h, w))
    return postprocess(raw, fov_x, mask_threshold, publish_threshold)


class MoGe2Runner:
    """The metric stage's MoGe-2 call without sharing: ``predict(image, fov_x) -> MoGe2Prediction``."""

    def __init__(self, model: MoGe2Model, resolution_level: float = 9, num_tokens: int | None = None,
                 grid: Literal["tokens", "semantics"] = "tokens", use_fp16: bool = False,
                 mask_threshold: float = 0.5, publish_threshold: float | None = None) -> None:
        for name, t in (("mask_threshold", mask_threshold), ("publish_threshold", publish_threshold)):
            if t is not None and not 0.0 <= t < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {t}")
        self.model = model.eval().requires_grad_(False)
        self.resolution_level, self.num_tokens, self.grid, self.use_fp16 = resolution_level, num_tokens, grid, use_fp16
        self.mask_threshold, self.publish_threshold = mask_threshold, publish_threshold
        num_tokens_for_level(resolution_level, model.cfg.num_tokens_range)  # validate early

    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction:
        grid = semantics_grid(*image.shape[-2:]) if self.grid == "semantics" else None
        return infer(self.model, image, self.num_tokens, self.resolution_level, fov_x, self.use_fp16, grid,
                     self.mask_threshold, self.publish_threshold)


def load_moge2(path: str | os.PathLike, config: MoGe2Config | None = None,
               dtype: torch.dtype = torch.float32) -> MoGe2Model:
    """Official ``model.pt`` (config read from the file), or a .safetensors state dict + ``config``."""
    p = Path(path)
    layout = CHECKPOINT_LAYOUTS["moge2"]
    if p.suffix == ".safetensors":
        if config is None:
            raise CheckpointError(f"{p}: a safetensors state dict carries no model_config; pass config=")
        state = read_state_dict(p)
    else:
        obj = read_checkpoint_object(p)
        if not isinstance(obj, dict) or "model" not in obj or "model_config" not in obj:
            found = sorted(map(str, obj))[:5] if isinstance(obj, dict) else type(obj).__name__
            raise CheckpointError(f"{p} is not a MoGe-2 model.pt: expected a dict with 'model' and "
                                  f"'model_config', found {found}")
        if not isinstance(obj["model_config"], dict) or not isinstance(obj["model"], dict):
            raise CheckpointError(f"{p}: 'model' and 'model_config' must both be dicts")
        if config is None:
            try:
                config = moge2_config_from_official(obj["model_config"])
            except (ConfigError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{p}: unusable model_config: {exc}") from None
        state = obj["model"]
        bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{p}: 'model' entries that are not tensors: {bad[:5]}")
    cfg = config
    return load_into(lambda: MoGe2Model(cfg), select_keys(state, layout), f"{p} (expected {layout.name})", dtype)
