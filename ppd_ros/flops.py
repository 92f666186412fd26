"""FLOP counts of the models' forward passes, counted by PyTorch on meta tensors (not estimated).

``torch.utils.flop_counter.FlopCounterMode`` adds 2 FLOP per multiply-add of every matmul,
convolution and attention product (QK^T and AV); norms, softmax, activations and RoPE count zero,
the same convention as ``ppvd_spec.md`` §6.4. Running on the ``meta`` device costs no memory or
time, so full-size models can be counted anywhere.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import DiTConfig, ViTConfig


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of the tensor operations ``fn()`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def dit_step_flops(cfg: DiTConfig, height: int, width: int, batch: int = 1) -> int:
    """One denoiser call of the image DiT at (height, width): x (B, 4, H, W) -> v (B, 1, H, W)."""
    from .models import DiT
    with torch.device("meta"):
        dit = DiT(cfg)
        x = torch.empty(batch, cfg.in_channels, height, width)
        sem = torch.empty(batch, (height // 16) * (width // 16), cfg.semantics_dim)
        t = torch.tensor(500, dtype=torch.int32)
    with torch.no_grad():
        return count_flops(lambda: dit(x, sem, t))


def da2_semantics_flops(cfg: ViTConfig, height: int, width: int, batch: int = 1) -> int:
    """DA2 semantic encoder (ViT on the 14/16-rescaled image) for one (B, 3, H, W) frame batch."""
    from .models import DA2SemanticEncoder
    with torch.device("meta"):
        enc = DA2SemanticEncoder(cfg)
        img = torch.empty(batch, 3, height, width)
    with torch.no_grad():
        return count_flops(lambda: enc.forward_semantics(img))
