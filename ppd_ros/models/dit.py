"""PPD's semantics-prompted cascade DiT (checkpoint keys ``dit.*`` of ppd.pth).

Blocks 0..depth/2-1 run on 16-px tokens, the rest on 8-px tokens; after the coarse half the
L2-normalised semantic tokens are fused in and each coarse token becomes a 2x2 group of fine ones.
Position information is 2-D RoPE only (no additive table).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiTConfig
from ..nn import AdaLNBlock, Attention, Mlp, PatchEmbed, RoPE2D, TimestepEmbedder, gelu_tanh, grid_positions
from ..nn.vit_block import modulate


class FinalLayer(nn.Module):
    """adaLN-modulated LayerNorm then Linear to p*p*out values per fine token."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def make_dit_block(cfg: DiTConfig, rope: RoPE2D | None) -> AdaLNBlock:
    """One adaLN-Zero block with q/k LayerNorm (eps 1e-5) and tanh-GELU MLP."""
    attn = Attention(cfg.hidden_size, cfg.num_heads, qkv_bias=True, qk_norm=True, qk_norm_eps=1e-5, rope=rope)
    return AdaLNBlock(cfg.hidden_size, attn, Mlp(cfg.hidden_size, cfg.mlp_hidden, act_layer=gelu_tanh))


class DiT(nn.Module):
    """x (B, 4, H, W), semantics (B, Tc, S), timestep -> velocity (B, 1, H, W); H, W multiples of 16."""

    def __init__(self, cfg: DiTConfig, use_rope: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.rope = RoPE2D(cfg.rope_base) if use_rope else None
        self.x_embedder = PatchEmbed(cfg.patch_size * 2, cfg.in_channels, d)
        self.t_embedder = TimestepEmbedder(d, cfg.frequency_embedding_size)
        self.blocks = nn.ModuleList([make_dit_block(cfg, self.rope) for _ in range(cfg.depth)])
        self.proj_fusion = nn.Sequential(nn.Linear(d + cfg.semantics_dim, 4 * d), nn.SiLU(),
                                         nn.Linear(4 * d, 4 * d), nn.SiLU(), nn.Linear(4 * d, 4 * d))
        self.final_layer = FinalLayer(d, cfg.patch_size, cfg.out_channels)

    # --- pieces shared with DiT_Video -------------------------------------------------------
    def embed_timestep(self, timestep: torch.Tensor, batch: int) -> torch.Tensor:
        t = timestep.reshape(-1)
        c = self.t_embedder(t)  # (1 or B, D)
        return c.expand(batch, -1) if c.shape[0] == 1 else c

    def fuse(self, tok: torch.Tensor, semantics: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        """(B, gh*gw, D) coarse tokens + (B, gh*gw, S) semantics -> (B, 4*gh*gw, D) fine tokens."""
        b, n, d = tok.shape
        if semantics.shape[:2] != (b, n):
            raise ValueError(f"semantics {tuple(semantics.shape)} do not match {n} coarse tokens of batch {b}")
        s = F.normalize(semantics, dim=-1, eps=1e-12)
        z = self.proj_fusion(torch.cat([tok, s.to(tok.dtype)], dim=-1))  # (B, Tc, 4D)
        # chunk k = 2*dy + dx of coarse token (r, q) becomes fine token (2r + dy, 2q + dx)
        z = z.reshape(b, gh, gw, 2, 2, d).permute(0, 1, 3, 2, 4, 5)
        return z.reshape(b, 4 * n, d)

    def unpatchify(self, y: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
        """(B, fh*fw, p*p*C) -> (B, C, fh*p, fw*p); value (py*p + px)*C + c -> pixel (p*r+py, p*q+px)."""
        p, ch = self.cfg.patch_size, self.cfg.out_channels
        y = y.reshape(y.shape[0], fh, fw, p, p, ch).permute(0, 5, 1, 3, 2, 4)
        return y.reshape(y.shape[0], ch, fh * p, fw * p)

    def positions(self, gh: int, gw: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return grid_positions(gh, gw, device), grid_positions(2 * gh, 2 * gw, device)

    def run_block(self, i: int, tok: torch.Tensor, c: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Hook for DiT_Video (temporal blocks, reference tokens); the image DiT just runs block i."""
        return self.blocks[i](tok, c, pos)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        gh, gw = h // (2 * self.cfg.patch_size), w // (2 * self.cfg.patch_size)
        tok = self.x_embedder(x)  # (B, Tc, D)
        c = self.embed_timestep(torch.as_tensor(timestep, device=x.device), b)  # (B, D)
        pos0, pos1 = self.positions(gh, gw, x.device)
        for i in range(self.cfg.depth):
            tok = self.run_block(i, tok, c, pos0 if i <= self.cfg.fusion_after else pos1)
            if i == self.cfg.fusion_after:
                tok = self.fuse(tok, semantics, gh, gw)  # (B, Tf, D)
        y = self.final_layer(tok, c)  # (B, Tf, p*p*C)
        return self.unpatchify(y, 2 * gh, 2 * gw)
