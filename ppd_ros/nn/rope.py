"""2-D rotary position embedding (RoPE) in the "rotate-half" layout used by PPD's DiT and π3."""
from __future__ import annotations

import torch
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RoPE2D(nn.Module):
    """Rotates q/k head vectors by 2-D integer positions.

    The first half of each head's channels encodes the row (y), the second half the column (x).
    Within a half of width d, channel pair (j, j + d/2) turns by ``pos * base**(-2j/d)``.
    Parameter-free; produces no state-dict keys.
    """

    def __init__(self, base: float = 100.0) -> None:
        super().__init__()
        self.base = float(base)

    def _rope1d(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        # x (B, heads, N, d); pos (B, N) integer
        d = x.shape[-1]
        inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, device=x.device).float() / d))  # (d/2,)
        # Angles are formed in float32 and cast to the q/k dtype *before* cos/sin (official quirk).
        angles = (pos.to(torch.float32)[..., None] * inv_freq).to(x.dtype)  # (B, N, d/2)
        angles = torch.cat((angles, angles), dim=-1)[:, None]  # (B, 1, N, d)
        return x * angles.cos() + _rotate_half(x) * angles.sin()

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """x (B, heads, N, D) with D % 4 == 0; pos (B, N, 2) or (N, 2) as (row, col)."""
        if x.shape[-1] % 4 != 0:
            raise ValueError(f"RoPE2D needs a head width divisible by 4, got {x.shape[-1]}")
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
