"""PPVD's DiT_Video (checkpoint keys ``dit_video.*`` of ppvd.pth, prefix stripped).

The image DiT (``models/dit.py``) with three differences, all injected rather than copied:
a fixed 2-D sin-cos ``pos_embed`` added after the patch embedding (instead of RoPE), ``temporal_blocks``
that attend across frames at every fine-grid position before the last spatial blocks, and
reference-guided token propagation (RGTP): from ``rgtp_from`` on, every frame also attends to the
4x4-pooled tokens of the reference frames. Where the cross-frame tokens come from is a ``VideoContext``:
the official window (references = frames 0..2 of the batch) or a caller's streaming cache.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiTVideoConfig
from ..errors import InputError
from ..nn import AdaLNBlock, sincos_2d_table
from .dit import DiT, make_dit_block


class VideoContext(Protocol):
    """Supplies the cross-frame key/value-only tokens of one DiT_Video call."""

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        """RGTP tokens for spatial ``block`` given the batch's tokens (B, L, D) -> (B, M, D)."""
        ...

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        """Extra frames for temporal block ``j`` given tokens (L, B, D) -> (L, M, D) or None."""
        ...


def pool_tokens(tok: torch.Tensor, grid: int, kernel: int) -> torch.Tensor:
    """(B, grid*grid, D) row-major fine tokens -> (B, (grid/kernel)^2, D) average-pooled, row-major."""
    b, _, d = tok.shape
    img = tok.transpose(1, 2).reshape(b, d, grid, grid)  # (B, D, g, g)
    return F.avg_pool2d(img, kernel, kernel).flatten(2).transpose(1, 2)  # (B, P, D)


class WindowContext:
    """The official window: frames 0..num_refs-1 of the batch are the references; no extra frames."""

    def __init__(self, cfg: DiTVideoConfig) -> None:
        self.cfg = cfg

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        refs = pool_tokens(tok[: self.cfg.num_refs], self.cfg.fine_grid, self.cfg.ref_pool)  # (R, P, D)
        # [ref0 | ref1 | ref2] appended to every frame, references included (they see themselves)
        return refs.reshape(1, -1, tok.shape[-1]).expand(tok.shape[0], -1, -1)  # (B, R*P, D)

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        return None


class DiT_Video(DiT):  # noqa: N801 - official class name
    """x (N, 4, S, S), semantics (N, (S/16)^2, sem), timestep -> velocity (N, 1, S, S); S = input_size."""

    def __init__(self, cfg: DiTVideoConfig) -> None:
        # the official video DiT has no RoPE (position = the additive table); cfg.rope keeps it (small PPVD)
        super().__init__(cfg, use_rope=cfg.rope)
        self.cfg: DiTVideoConfig = cfg
        grid = cfg.input_size // (2 * cfg.patch_size)
        # A frozen Parameter (not a buffer) because ppvd.pth stores it as ``pos_embed``.
        self.pos_embed = nn.Parameter(sincos_2d_table(cfg.hidden_size, grid), requires_grad=False)
        self.temporal_blocks = nn.ModuleList([make_dit_block(cfg, None) for _ in range(cfg.num_temporal)])

    def spatial_block(self, i: int, tok: torch.Tensor, c: torch.Tensor, ctx: VideoContext,
                      pos: torch.Tensor | None = None) -> torch.Tensor:
        """Spatial block i; from ``rgtp_from`` on, the context's reference tokens join as keys/values
        (position-free keys when the block uses RoPE)."""
        blk: AdaLNBlock = self.blocks[i]
        mod = blk.modulation(c)  # (1, D) chunks, broadcast over frames (c depends on t only)
        extra = ctx.reference_tokens(i, tok) if i >= self.cfg.rgtp_from else None
        # Skipping the appended tokens' queries/MLP is exact: their outputs are discarded (spec 2.4).
        return blk(tok, c, pos, extra=extra, mod=mod)

    def temporal_block(self, j: int, tok: torch.Tensor, c: torch.Tensor, ctx: VideoContext) -> torch.Tensor:
        """Temporal block j: each fine-grid position is a sequence over the frames (no order, no mask)."""
        blk: AdaLNBlock = self.temporal_blocks[j]
        seq = tok.transpose(0, 1)  # (L, N, D)
        out = blk(seq, c, None, extra=ctx.temporal_tokens(j, seq), mod=blk.modulation(c))
        return out.transpose(0, 1)  # (N, L, D)

    def run_block(self, i: int, tok: torch.Tensor, c: torch.Tensor, pos: torch.Tensor | None,
                  ctx: VideoContext | None = None) -> torch.Tensor:
        ctx = ctx or WindowContext(self.cfg)
        if i >= self.cfg.temporal_from:
            tok = self.temporal_block(i - self.cfg.temporal_from, tok, c, ctx)
        return self.spatial_block(i, tok, c, ctx, pos)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor, timestep: torch.Tensor,
                context: VideoContext | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.cfg.input_size
        if (h, w) != (s, s):
            raise InputError(f"DiT_Video runs at {s}x{s} only (fixed position table), got {h}x{w}")
        ctx = context or WindowContext(self.cfg)
        g = s // (2 * self.cfg.patch_size)
        tok = self.x_embedder(x) + self.pos_embed  # (N, g*g, D), added once, never again
        c = self.embed_timestep(torch.as_tensor(timestep, device=x.device), 1)  # (1, D), shared by all frames
        pos0, pos1 = self.positions(g, g, x.device) if self.rope is not None else (None, None)
        for i in range(self.cfg.depth):
            tok = self.run_block(i, tok, c, pos0 if i <= self.cfg.fusion_after else pos1, ctx)
            if i == self.cfg.fusion_after:
                tok = self.fuse(tok, semantics, g, g)  # (N, 4*g*g, D)
        return self.unpatchify(self.final_layer(tok, c), 2 * g, 2 * g)  # (N, 1, S, S)
