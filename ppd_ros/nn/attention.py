"""Multi-head self-attention over ``scaled_dot_product_attention`` with optional q/k norm and RoPE."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .rope import RoPE2D


class Attention(nn.Module):
    """Fused-qkv attention; names (``qkv``, ``q_norm``, ``k_norm``, ``proj``) follow timm/DINOv2/DiT.

    ``extra_kv`` lets callers attend to additional tokens whose outputs are not needed (PPVD's
    appended reference tokens): only their keys and values are computed.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_norm: bool = False,
                 qk_norm_eps: float = 1e-5, rope: RoPE2D | None = None) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=qk_norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope
        # "sdpa" (fused kernels) or "math" (explicit softmax, as the official code runs): same maths.
        self.backend = "sdpa"

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, hd)
        return self.q_norm(q), self.k_norm(k), v

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None,
                extra: torch.Tensor | None = None, extra_pos: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D). ``extra`` (B, M, D): tokens used as keys/values only."""
        b, n, d = x.shape
        q, k, v = self._split(x)
        if self.rope is not None:
            if pos is None:
                raise ValueError("this attention uses RoPE and needs token positions")
            q, k = self.rope(q, pos), self.rope(k, pos)
        if extra is not None:
            _, ek, ev = self._split(extra)
            if self.rope is not None and extra_pos is not None:  # no positions: position-free keys
                ek = self.rope(ek, extra_pos)
            k = torch.cat((k, ek), dim=2)
            v = torch.cat((v, ev), dim=2)
        out = attend(q, k, v, self.backend)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "sdpa") -> torch.Tensor:
    """Softmax attention with scale 1/sqrt(head_dim); (B, h, N, d) x (B, h, M, d) -> (B, h, N, d)."""
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v)
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    return attn.softmax(dim=-1) @ v
