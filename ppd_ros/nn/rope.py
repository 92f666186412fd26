"""2-D rotary position embedding (RoPE) in the "rotate-half" layout used by PPD's DiT and π3."""
from __future__ import annotations

import torch
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotate_quarters(x: torch.Tensor) -> torch.Tensor:
    """rotate_half applied to each half of the last axis at once: [a1 a2 | b1 b2] -> [-a2 a1 | -b2 b1]."""
    q = x.unflatten(-1, (2, 2, x.shape[-1] // 4))  # (..., half, quarter, d/4)
    return torch.stack((-q[..., 1, :], q[..., 0, :]), dim=-2).flatten(-3)


class RoPE2D(nn.Module):
    """Rotates q/k head vectors by 2-D integer positions.

    The first half of each head's channels encodes the row (y), the second half the column (x).
    Within a half of width d, channel pair (j, j + d/2) turns by ``pos * base**(-2j/d)``.
    Parameter-free; produces no state-dict keys.

    ``cache_tables`` (off by default; ``runtime.set_rope_cache`` turns it on for one model and
    clears it around each forward) keeps the cos/sin tables of the positions tensors seen, keyed by
    identity: a DiT forward rotates q and k of every block with the same two position grids, so
    the tables are built twice per forward instead of 4 x depth times. Same arithmetic per element,
    so the results are bit-identical.
    """

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        self.base = float(base)
        self.cache_tables = False
        self._tables: dict[int, tuple[torch.Tensor, torch.dtype, torch.Tensor, torch.Tensor]] = {}

    def _rope1d(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # x (B, heads, N, d); pos (B, N) integer
        d = x.shape[-1]
        angles = self._angles(pos, d, x.dtype, x.device)  # (B, N, d/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, N, d)
        return x * angles.cos() + _rotate_half(x) * angles.sin()

    def _angles(self, pos: torch.Tensor, d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, device=device).float() / d))  # (d/2,)
        # Angles are formed in float32 and cast to the q/k dtype *before* cos/sin (official quirk).
        return (pos.to(torch.float32)[..., None] * inv_freq).to(dtype)

    def tables(self, pos: torch.Tensor, head_dim: int, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-width (B, 1, N, head_dim) cos and sin tables for positions (B, N, 2)."""
        if pos.dim() == 2:
            pos = pos[None]  # (1, N, 2): broadcast over the batch
        half = head_dim // 2
        ay = self._angles(pos[..., 0], half, dtype, device)  # (B, N, half/2)
        ax = self._angles(pos[..., 1], half, dtype, device)
        angles = torch.cat((ay, ay, ax, ax), dim=-1)[:, None]  # (B, 1, N, head_dim)
        return angles.cos(), angles.sin()

    def _cached_tables(self, pos: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = id(pos)
        hit = self._tables.get(key)
        # The entry holds a strong reference to ``pos``, so its id cannot be reused while cached.
        if hit is not None and hit[0] is pos and hit[1] == x.dtype and hit[2].device == x.device \
                and hit[2].shape[-1] == x.shape[-1]:
            return hit[2], hit[3]
        cos, sin = self.tables(pos, x.shape[-1], x.dtype, x.device)
        self._tables[key] = (pos, x.dtype, cos, sin)
        return cos, sin

    def clear_cache(self) -> None:
        self._tables.clear()

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x (B, heads, N, D) with D % 4 == 0; pos (B, N, 2) or (N, 2) as (row, col)."""
        if x.shape[-1] % 4 != 0:
            raise ValueError(f"RoPE2D needs a head width divisible by 4, got {x.shape[-1]}")
        if self.cache_tables and not torch.compiler.is_compiling():
            cos, sin = self._cached_tables(pos, x)  # (1 or B, 1, N, D), broadcast over batch and heads
            return x * cos + _rotate_quarters(x) * sin
        if pos.dim() == 2:
            pos = pos[None].expand(x.shape[0], -1, -1)
        y_part, x_part = x.chunk(2, dim=-1)
        return torch.cat((self._rope1d(y_part, pos[..., 0]), self._rope1d(x_part, pos[..., 1])), dim=-1)


def grid_positions(rows: int, cols: int, device: torch.device | str | None = None,
                   offset: int = 0) -> torch.Tensor:
    """Row-major (rows*cols, 2) integer grid of (row, col) positions, each shifted by ``offset``."""
    r = torch.arange(rows, device=device) + offset
    c = torch.arange(cols, device=device) + offset
    return torch.stack(torch.meshgrid(r, c, indexing="ij"), dim=-1).reshape(-1, 2)
