"""Numeric tolerances derived from the dtype, never from what one processor happened to produce.

oneDNN and ATen pick their CPU kernels by instruction set (AVX2, AVX-512, AVX-512-BF16, AMX): the
blocking, the order of the partial sums and, for bf16, where products are rounded all change between
processors, so two correct machines disagree by rounding noise. A bound that holds on any x86-64 is
therefore written in units of the dtype's unit roundoff ``u`` (half the machine epsilon: 2^-24 for
float32, 2^-11 for float16, 2^-8 for bfloat16, whose significand has 8 bits), grown with the number
of rounded operations the way rounding errors grow: a length-n dot product or sum with independent
rounding errors is off by about ``sqrt(n) * u`` relative to the magnitude of its terms (Higham & Mary,
"A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput. 2019, with their
small confidence factor lambda), and a chain of L such layers by about ``sqrt(L)`` times that.

``./bootstrap.sh test`` reruns every test marked ``numeric`` under ``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``, so kernel differences show up here; a newer ISA (AMX) cannot be emulated,
which is why the bounds come from these formulas and not from an observed maximum.
"""
from __future__ import annotations

import math

import torch

from ppd_ros.config import DiTConfig, ViTConfig

LAMBDA = 4.0  # confidence factor of the probabilistic bound: exceeded with probability ~2*exp(-LAMBDA^2/2) < 1e-3


def unit_roundoff(dtype: torch.dtype) -> float:
    """u = eps / 2: the largest relative error of rounding one real number to ``dtype``."""
    return torch.finfo(dtype).eps / 2


def rel_bound(dtype: torch.dtype, layers: int, n: int = 1, lam: float = LAMBDA) -> float:
    """Relative (L2) error bound of an output whose path holds ``layers`` rounded matmul-like layers.

    Low precision (bf16/fp16 operands, float32 accumulation, as oneDNN and ATen do on CPU): each layer's
    operand rounding costs about u relative to its output, so ``n`` stays 1. Float32 evaluated in another
    summation order: each layer's length-``n`` reduction costs about ``sqrt(n) * u``; pass the longest
    inner dimension. Independent layer errors add in quadrature: ``lam * sqrt(layers * n) * u``.
    """
    return lam * math.sqrt(layers * n) * unit_roundoff(dtype)


def reduction_atol(dtype: torch.dtype, n: int, scale: float = 1.0, layers: int = 1, lam: float = LAMBDA) -> float:
    """Absolute form of ``rel_bound`` for outputs of magnitude ``scale`` (summation order only)."""
    return rel_bound(dtype, layers, n, lam) * scale


def fp32_same_maths(layers: int, n: int) -> dict[str, float]:
    """``assert_close`` keywords for two float32 evaluations of the same maths (``rel_bound`` as rtol and atol)."""
    b = rel_bound(torch.float32, layers, n)
    return {"rtol": b, "atol": b}


def dit_layers(cfg: DiTConfig) -> int:
    """Rounded matmul layers on one DiT step's path: patch embed, per block adaLN + qkv + QK^T + AV + proj +
    fc1 + fc2, semantic fusion (3), final layer."""
    return 1 + 7 * cfg.depth + 3 + 1


def dit_longest_reduction(cfg: DiTConfig) -> int:
    """The DiT's longest inner dimension: the semantic-fusion input or the 2p x 2p x C patch embedding."""
    return max(cfg.semantics_dim + cfg.hidden_size, cfg.in_channels * (2 * cfg.patch_size) ** 2,
               int(cfg.hidden_size * cfg.mlp_ratio))


def vit_layers(cfg: ViTConfig) -> int:
    """Patch embed, then per block qkv + QK^T + AV + proj + fc1 + fc2."""
    return 1 + 6 * cfg.depth
