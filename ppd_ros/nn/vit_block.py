"""Pre-norm transformer blocks assembled from injected parts.

``Block`` is the DINOv2/π3 block (``norm1, attn, ls1, norm2, mlp, ls2``); ``AdaLNBlock`` is the
DiT block whose norms are modulated by a conditioning vector (``adaLN_modulation.1``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .layer_scale import LayerScale
from .mlp import Mlp


class Block(nn.Module):
    """x += ls1(attn(norm1 x)); x += ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, attn: Attention, mlp: Mlp, ls_init: float | None = 1.0,
                 norm_layer: Callable[[int], nn.Module] = lambda d: nn.LayerNorm(d, eps=1e-6)) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn
        self.ls1 = LayerScale(dim, ls_init) if ls_init is not None else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = mlp
        self.ls2 = LayerScale(dim, ls_init) if ls_init is not None else nn.Identity()

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), pos))
        return x + self.ls2(self.mlp(self.norm2(x)))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, N, D) * (1 + scale) + shift, with shift/scale (B, D) broadcast over tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLNBlock(nn.Module):
    """adaLN-Zero DiT block: six modulation chunks (shift/scale/gate for attention, then MLP)."""

    def __init__(self, dim: int, attn: Attention, mlp: Mlp) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        # Opt-in (runtime.Speedups.fused_norm): LayerNorm + modulate as one layer_norm call whose
        # affine slots take (1 + scale, shift) when the modulation is shared by the whole batch,
        # and the gated residual as one addcmul. Same maths, fewer passes over (B, N, D).
        self.fused_norm = False

    def modulation(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """c (B, D) -> six (B, D) chunks; cacheable per timestep since c depends on t only."""
        return self.adaLN_modulation(c).chunk(6, dim=-1)

    def forward(self, x: torch.Tensor, c: torch.Tensor, pos: torch.Tensor | None = None,
                extra: torch.Tensor | None = None, mod: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """x (B, N, D); c (B, D). ``extra`` (B, M, D): key/value-only tokens (see Attention)."""
        sh1, sc1, g1, sh2, sc2, g2 = mod if mod is not None else self.modulation(c)
        if self.fused_norm:
            return self._forward_fused(x, (sh1, sc1, g1, sh2, sc2, g2), pos, extra)
        h_extra = modulate(self.norm1(extra), sh1, sc1) if extra is not None else None
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh1, sc1), pos, extra=h_extra)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh2, sc2))

    def _norm_mod(self, norm: nn.LayerNorm, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        if shift.shape[0] == 1 and scale.shape[0] == 1:  # one (D,) affine for every row: a single kernel
            return F.layer_norm(x, norm.normalized_shape, 1 + scale[0], shift[0], norm.eps)
        return modulate(norm(x), shift, scale)

    def _forward_fused(self, x: torch.Tensor, mod: tuple[torch.Tensor, ...], pos: torch.Tensor | None,
                       extra: torch.Tensor | None) -> torch.Tensor:
        sh1, sc1, g1, sh2, sc2, g2 = mod
        h_extra = self._norm_mod(self.norm1, extra, sh1, sc1) if extra is not None else None
        x = torch.addcmul(x, g1.unsqueeze(1), self.attn(self._norm_mod(self.norm1, x, sh1, sc1), pos, extra=h_extra))
        return torch.addcmul(x, g2.unsqueeze(1), self.mlp(self._norm_mod(self.norm2, x, sh2, sc2)))
