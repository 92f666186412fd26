"""Image to patch tokens with a strided convolution (``proj``, as timm names it)."""
from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, (H/p)*(W/p), D), row-major; H and W must be multiples of the patch."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"input {h}x{w} is not a multiple of the {self.patch_size}-px patch")
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
