"""π3 as PPVD's multi-view semantic encoder (encoder + alternating frame/global decoder, no 3-D heads).

Attribute names equal the official ``model.safetensors`` keys: ``encoder.*`` (DINOv2 ViT with 4
registers), ``decoder.{i}.*`` (RoPE blocks with q/k LayerNorm), ``register_token`` and the persistent
``image_mean``/``image_std`` buffers. The point/conf/camera heads are never built (their keys are
dropped by the declared ``CHECKPOINT_LAYOUTS["pi3"]`` list).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Pi3Config
from ..errors import InputError
from ..nn import Attention, Block, Mlp, RoPE2D, attend, grid_positions
from .dinov2 import IMAGENET_MEAN, IMAGENET_STD, DinoVisionTransformer


class GlobalKV(NamedTuple):
    """Keys (q/k-norm and RoPE applied) and values of F frames at every global (odd) decoder block.

    ``keys``/``values``: (G, heads, F, T, head_dim) with G = dec_depth // 2 (global block ``2g+1``),
    T = registers + patches per frame. Frames sit on their own axis so a caller can preallocate a
    cache of its maximum size and overwrite frames in place by index.
    """

    keys: torch.Tensor
    values: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.keys.shape[2]

    @property
    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size() + self.values.numel() * self.values.element_size()

    def frames(self, index: Sequence[int] | slice) -> GlobalKV:
        """The cache restricted to some frames (a copy for index lists, a view for slices)."""
        if isinstance(index, slice):
            return GlobalKV(self.keys[:, :, index], self.values[:, :, index])
        idx = torch.as_tensor(list(index), dtype=torch.long, device=self.keys.device)
        return GlobalKV(self.keys.index_select(2, idx), self.values.index_select(2, idx))

    @staticmethod
    def cat(parts: Sequence[GlobalKV]) -> GlobalKV:
        """Concatenate caches along the frame axis."""
        return GlobalKV(torch.cat([p.keys for p in parts], 2), torch.cat([p.values for p in parts], 2))


class RopeAttention(Attention):
    """π3's decoder attention; adds a path that attends to cached keys/values and returns its own."""

    def forward_kv(self, x: torch.Tensor, pos: torch.Tensor, past_k: torch.Tensor | None = None,
                   past_v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, N, D), pos (N, 2); past_k/v (B, heads, M, hd) already rotated -> (out, k, v) of x."""
        b, n, d = x.shape
        q, k, v = self._split(x)
        q, k = self.rope(q, pos), self.rope(k, pos)  # (B, heads, N, hd)
        keys, vals = k, v
        if past_k is not None and past_v is not None:
            keys = torch.cat((k, past_k.to(k.dtype)), dim=2)  # key order does not change softmax
            vals = torch.cat((v, past_v.to(v.dtype)), dim=2)
        out = attend(q, keys, vals, self.backend)
        return self.proj(out.transpose(1, 2).reshape(b, n, d)), k, v


class RopeBlock(Block):
    """π3 ``BlockRope``: the shared pre-norm block with RoPE attention, plus the cached-K/V path."""

    def forward_kv(self, x: torch.Tensor, pos: torch.Tensor, past_k: torch.Tensor | None = None,
                   past_v: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, k, v = self.attn.forward_kv(self.norm1(x), pos, past_k, past_v)
        x = x + self.ls1(h)
        return x + self.ls2(self.mlp(self.norm2(x))), k, v


class Pi3Semantic(nn.Module):
    """π3 trunk for ``forward_semantics``: (N, 3, h, w) in [0, 1] -> (N, (h//16)*(w//16), 2*dim)."""

    def __init__(self, cfg: Pi3Config) -> None:
        super().__init__()
        self.cfg = cfg
        d, heads = cfg.dim, cfg.num_heads
        self.encoder = DinoVisionTransformer(cfg.encoder_config())
        self.decoder = nn.ModuleList([
            RopeBlock(d, RopeAttention(d, heads, qkv_bias=True, qk_norm=True, qk_norm_eps=cfg.qk_norm_eps,
                                       rope=RoPE2D(cfg.rope_base)),
                      Mlp(d, int(d * cfg.mlp_ratio)), ls_init=0.01)
            for _ in range(cfg.dec_depth)])
        self.register_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_registers, d))
        # Persistent: the official file stores them (strict loading needs them).
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    # --- per-frame (exactly pre-computable) part ---------------------------------------------
    def grid(self, h: int, w: int) -> tuple[int, int]:
        """Output token grid for an h x w input: (h//16, w//16), the PPVD DiT's coarse grid."""
        s = self.cfg.semantic_stride
        return h // s, w // s

    def prepare(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> bilinear (no antialias) to (gh*14, gw*14), then ImageNet-normalised."""
        if imgs.dim() != 4 or imgs.shape[1] != 3:
            raise InputError(f"π3 expects frames shaped (N, 3, h, w), got {tuple(imgs.shape)}")
        gh, gw = self.grid(*imgs.shape[-2:])
        if gh < 1 or gw < 1:
            raise InputError(f"frames of {tuple(imgs.shape[-2:])} px are smaller than one "
                             f"{self.cfg.semantic_stride}-px semantic cell")
        p = self.cfg.patch_size
        x = F.interpolate(imgs, size=(gh * p, gw * p), mode="bilinear", align_corners=False, antialias=False)
        return (x - self.image_mean) / self.image_std  # resize first, normalise second (official order)

    def encode(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, gh*gw, dim) final-norm encoder patch tokens (frame-local)."""
        tok = self.encoder.forward_features(self.prepare(imgs))
        return tok[:, self.encoder.num_prefix_tokens:]  # drop cls + registers

    def decoder_input(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        """(N, P, dim) -> (N, R + P, dim) with π3's R decoder registers in front of every frame."""
        regs = self.register_token[0].expand(patch_tokens.shape[0], -1, -1).to(patch_tokens.dtype)
        return torch.cat([regs, patch_tokens], dim=1)

    def positions(self, grid: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
        """(R + gh*gw, 2) RoPE positions of one frame: registers (0, 0), patch (r, c) -> (r+1, c+1)."""
        regs = torch.zeros(self.cfg.dec_registers, 2, dtype=torch.long, device=device)
        return torch.cat([regs, grid_positions(*grid, device=device, offset=1)], dim=0)

    # --- decoder ------------------------------------------------------------------------------
    def _check_tokens(self, x: torch.Tensor, grid: tuple[int, int]) -> None:
        t = self.cfg.dec_registers + grid[0] * grid[1]
        if x.dim() != 3 or x.shape[1] != t or x.shape[2] != self.cfg.dim:
            raise InputError(f"decoder tokens {tuple(x.shape)} do not fit grid {grid}: expected (N, {t}, "
                             f"{self.cfg.dim})")

    def _semantics(self, outs: list[torch.Tensor]) -> torch.Tensor:
        # concat(second-to-last block, last block) along channels, registers dropped
        return torch.cat(outs, dim=-1)[:, self.cfg.dec_registers:]  # (N, P, 2*dim)

    def decode(self, x: torch.Tensor, grid: tuple[int, int], start: int = 0) -> torch.Tensor:
        """Exact multi-view decoder over one set of N frames.

        Args:
            x: (N, T, dim) hidden state entering decoder block ``start`` (``decoder_input`` output for
               start 0). Even blocks attend within each frame, odd blocks over all N*T tokens.
            grid: (gh, gw) patch grid of every frame.
            start: first block to run (e.g. 1 after pre-computing the frame-local block 0 per frame).
        Returns:
            (N, gh*gw, 2*dim) semantics.
        """
        self._check_tokens(x, grid)
        depth = len(self.decoder)
        if not 0 <= start <= depth - 2:
            raise InputError(f"decode start {start} outside 0..{depth - 2}")
        n, t, c = x.shape
        pos = self.positions(grid, x.device)
        pos_all = pos.repeat(n, 1)  # frame-major; nothing encodes the frame index
        outs = []
        for i in range(start, depth):
            if i % 2 == 0:
                x = self.decoder[i](x, pos)  # (N, T, D)
            else:
                x = self.decoder[i](x.reshape(1, n * t, c), pos_all).reshape(n, t, c)
            if i >= depth - 2:
                outs.append(x)
        return self._semantics(outs)

    def decode_with_cache(self, x: torch.Tensor, grid: tuple[int, int],
                          past: GlobalKV | None = None) -> tuple[torch.Tensor, GlobalKV]:
        """Decoder for n live frames that also attend to cached frames in every global block.

        At each odd block the live frames' queries attend to their own keys/values *and* the cached
        frames' (``past``: rotated K and V at that block). The cached frames are not updated, so
        this equals the exact ``decode`` of the union set only for the live frames and only when
        ``past`` was computed in that same union set (e.g. sliced from a ``decode_with_cache`` run
        over all frames). With K/V cached from an earlier window it is the streaming approximation:
        the cached frames do not see the live ones. ``past=None`` is the exact set computation.

        Args:
            x: (n, T, dim) live frames' ``decoder_input``.
            grid: (gh, gw) patch grid (cached frames must share it).
            past: cached frames' K/V, (G, heads, F, T, head_dim) each, or None.
        Returns:
            (n, gh*gw, 2*dim) semantics of the live frames and their own ``GlobalKV`` (F = n).
        """
        self._check_tokens(x, grid)
        n, t, c = x.shape
        heads, hd = self.cfg.num_heads, c // self.cfg.num_heads
        if past is not None:
            want = (len(self.decoder) // 2, heads, t, hd)
            got = tuple(past.keys.shape[:2]) + tuple(past.keys.shape[3:])
            if got != want or past.values.shape != past.keys.shape:
                raise InputError(f"cached K/V {tuple(past.keys.shape)} do not fit (G, heads, F, T, hd) = "
                                 f"({want[0]}, {heads}, F, {t}, {hd})")
        pos = self.positions(grid, x.device)
        pos_all = pos.repeat(n, 1)
        keys, vals, outs = [], [], []
        depth = len(self.decoder)
        for i, blk in enumerate(self.decoder):
            if i % 2 == 0:
                x = blk(x, pos)  # (n, T, D)
            else:
                pk = pv = None
                if past is not None and past.num_frames:
                    f = past.num_frames
                    pk = past.keys[i // 2].reshape(heads, f * t, hd)[None]  # (1, heads, F*T, hd)
                    pv = past.values[i // 2].reshape(heads, f * t, hd)[None]
                h, k, v = blk.forward_kv(x.reshape(1, n * t, c), pos_all, pk, pv)
                x = h.reshape(n, t, c)
                keys.append(k[0].reshape(heads, n, t, hd))
                vals.append(v[0].reshape(heads, n, t, hd))
            if i >= depth - 2:
                outs.append(x)
        return self._semantics(outs), GlobalKV(torch.stack(keys), torch.stack(vals))

    # --- public entry points ------------------------------------------------------------------
    def forward_semantics(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) in [0, 1], one multi-view set -> (N, (h//16)*(w//16), 2*dim), as the official."""
        grid = self.grid(*imgs.shape[-2:])
        return self.decode(self.decoder_input(self.encode(imgs)), grid)

    def forward_semantics_with_cache(self, imgs: torch.Tensor,
                                     past: GlobalKV | None = None) -> tuple[torch.Tensor, GlobalKV]:
        """Semantics of the frames in ``imgs`` against cached reference K/V (see ``decode_with_cache``)."""
        grid = self.grid(*imgs.shape[-2:])
        return self.decode_with_cache(self.decoder_input(self.encode(imgs)), grid, past)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.forward_semantics(imgs)
