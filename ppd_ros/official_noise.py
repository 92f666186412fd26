"""The official PPVD demo's window noise, reproduced from a saved CPU generator state.

run_video.py seeds 666, builds the models on the CPU (their random initialisers consume numbers),
then draws ``torch.randn(16, 1, 512, 512)`` once per video; row j is the noise of window position
j in every window. The fixture ``official_demo_noise`` stores the generator state right before that
draw, so exact mode can start from bit-identical noise without re-running the official constructors.
"""
from __future__ import annotations

import hashlib

import torch

from .errors import InputError


def official_demo_noise(rng_state: torch.Tensor, frames: int = 16, size: int = 512) -> torch.Tensor:
    """(frames, 1, size, size) float32 CPU normals drawn from ``rng_state`` (a ``torch.get_rng_state()``).

    Uses a private generator, so the process-wide RNG is left untouched. Only the defaults
    (16, 512) reproduce the official demo; other shapes are other draws from the same state.
    """
    if rng_state.dtype != torch.uint8 or rng_state.dim() != 1:
        raise InputError(f"rng_state must be a 1-D uint8 CPU generator state, got {rng_state.dtype} "
                         f"{tuple(rng_state.shape)}")
    if frames < 1 or size < 1:
        raise InputError(f"noise shape must be positive, got frames={frames}, size={size}")
    gen = torch.Generator(device="cpu")
    try:
        gen.set_state(rng_state.cpu())
    except RuntimeError as exc:
        raise InputError(f"not a CPU generator state ({rng_state.numel()} bytes): {exc}") from None
    return torch.randn(size=[frames, 1, size, size], generator=gen, dtype=torch.float32)


def noise_sha256(noise: torch.Tensor) -> str:
    """sha256 of the tensor's contiguous float32 bytes (the checksum the fixture publishes)."""
    return hashlib.sha256(noise.detach().to(torch.float32).contiguous().cpu().numpy().tobytes()).hexdigest()
