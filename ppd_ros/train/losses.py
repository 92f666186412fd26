"""Losses: PPD's flow-matching velocity MSE and a gradient-matching depth loss for the decoder."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..diffusion import FlowMatchingSchedule


def flow_matching_inputs(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                         schedule: FlowMatchingSchedule = FlowMatchingSchedule()) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = (1 - t/T) x0 + (t/T) noise and the velocity target noise - x0; t (B,) integer timesteps."""
    a = (t.to(torch.float32) / schedule.num_train_timesteps).view(-1, 1, 1, 1)
    return (1 - a) * x0 + a * noise, noise - x0


def velocity_loss(v_pred: torch.Tensor, v_target: torch.Tensor) -> torch.Tensor:
    """The DiT's training loss: mean squared error on the velocity (PPD / rectified flow)."""
    return F.mse_loss(v_pred.float(), v_target)


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Multi-scale L1 on image-space gradients of (pred - target): rewards sharp, aligned edges."""
    total = pred.new_zeros(())
    diff = pred - target
    for s in range(scales):
        d = diff if s == 0 else F.avg_pool2d(diff, 2 ** s)
        total = total + (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()
    return total / scales


def depth_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Decoder loss on the normalised log-depth target: L1 + 0.5 * gradient matching."""
    return (pred - target).abs().mean() + 0.5 * gradient_loss(pred, target)


def side_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, jump: float = 0.05) -> torch.Tensor:
    """Flying-pixel penalty: where the target's 3x3 window spans a jump > ``jump``, the distance of the
    prediction to the *nearer* side (window min or max); 0 for a prediction on either side. ``weight``
    (B, 1, 1, 1) per sample (e.g. 1 - t/T: the x0 estimate is only sharp at low noise)."""
    hi = F.max_pool2d(target, 3, 1, 1)
    lo = -F.max_pool2d(-target, 3, 1, 1)
    band = (hi - lo > jump).float()
    dist = torch.minimum((pred - lo).abs(), (pred - hi).abs())
    return (weight * band * dist).sum() / band.sum().clamp_min(1.0)
