"""DINOv2 ViT backbone (DA2 ``pretrained.*``, MoGe-2 ``encoder.backbone.*``, π3 ``encoder.*``)."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ..config import ViTConfig
from ..nn import Attention, Block, Mlp, PatchEmbed


class DinoVisionTransformer(nn.Module):
    """Class token (+ optional registers) + patch tokens with a resampled learned position table."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_grid ** 2 + 1, d))
        if cfg.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, d))
        if cfg.has_mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, d))  # unused at inference; kept for the checkpoint
        self.patch_embed = PatchEmbed(cfg.patch_size, 3, d)
        self.blocks = nn.ModuleList([
            Block(d, Attention(d, cfg.num_heads, qkv_bias=True), Mlp(d, int(d * cfg.mlp_ratio)), cfg.ls_init)
            for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)

    def interpolate_pos_encoding(self, gh: int, gw: int, dtype: torch.dtype) -> torch.Tensor:
        """(1, 1 + gh*gw, D) position table for a gh x gw patch grid."""
        m = self.cfg.pos_grid
        if gh == m and gw == m:
            return self.pos_embed.to(dtype)
        table = self.pos_embed.float()
        grid = table[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)  # (1, D, m, m)
        offset = self.cfg.interpolate_offset
        if offset:
            # Historical DINOv2 kludge kept for parity: scale factors (g + 0.1)/m, not a target size.
            kwargs = {"scale_factor": ((gh + offset) / m, (gw + offset) / m)}
        else:
            kwargs = {"size": (gh, gw)}
        grid = F.interpolate(grid, mode="bicubic", antialias=self.cfg.interpolate_antialias,
                             align_corners=False, **kwargs)
        if grid.shape[-2:] != (gh, gw):
            raise RuntimeError(f"position table resampled to {tuple(grid.shape[-2:])}, expected {(gh, gw)}")
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
        return torch.cat([table[:, :1], grid], dim=1).to(dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 14*gh, 14*gw) normalised image -> (B, 1 + R + gh*gw, D)."""
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        tok = self.patch_embed(x)  # (B, N, D)
        tok = torch.cat([self.cls_token.expand(tok.shape[0], -1, -1).to(tok.dtype), tok], dim=1)
        tok = tok + self.interpolate_pos_encoding(gh, gw, tok.dtype)
        if self.cfg.num_register_tokens:
            regs = self.register_tokens.expand(tok.shape[0], -1, -1).to(tok.dtype)
            tok = torch.cat([tok[:, :1], regs, tok[:, 1:]], dim=1)
        return tok

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + self.cfg.num_register_tokens

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm tokens of the last block, class and register tokens included."""
        tok = self.prepare_tokens(x)
        for blk in self.blocks:
            tok = blk(tok)
        return self.norm(tok)

    def get_intermediate_layers(self, x: torch.Tensor, indices: list[int], norm: bool = True) -> list[torch.Tensor]:
        """Outputs (all tokens) after the blocks in ``indices``, each final-normed when ``norm``."""
        tok = self.prepare_tokens(x)
        outs = []
        for i, blk in enumerate(self.blocks[:max(indices) + 1]):
            tok = blk(tok)
            if i in indices:
                outs.append(self.norm(tok) if norm else tok)
        return outs


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class DA2SemanticEncoder(nn.Module):
    """Depth-Anything-V2's ViT as PPD uses it: ``pretrained`` only (the DPT head is never built)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.pretrained = DinoVisionTransformer(cfg)

    def vit_input(self, image: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) RGB [0,1] -> normalised, bicubic (no antialias) to (H//16*14, W//16*14)."""
        h, w = image.shape[-2:]
        p = self.pretrained.patch_size
        x = imagenet_normalize(image)  # DA2 normalises *before* resizing
        return F.interpolate(x, size=((h // 16) * p, (w // 16) * p), mode="bicubic", align_corners=False)

    def forward_semantics(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, (H//16)*(W//16), C) final-norm patch tokens."""
        tok = self.pretrained.forward_features(self.vit_input(image))
        return tok[:, self.pretrained.num_prefix_tokens:]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_semantics(image)


def vit_token_grid(h: int, w: int, patch: int) -> tuple[int, int]:
    return h // patch, w // patch


