"""Device and precision policy, and the opt-in compile of one denoiser step."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' -> bf16 on CUDA with bf16 support, fp16 on other CUDA, fp32 on CPU."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Weights stay fp32; matmuls/convs/SDPA run in ``dtype`` (the official inference policy)."""
    if dtype == torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def maybe_compile(fn: Callable, enabled: bool, mode: str = "max-autotune-no-cudagraphs") -> Callable:
    """Compile one denoiser step when asked (never at import, never a global rebinding)."""
    return torch.compile(fn, mode=mode, dynamic=False) if enabled else fn


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_attention_backend(model: torch.nn.Module, backend: str) -> None:
    """'sdpa' (fused kernels) or 'math' (explicit softmax, the official code's path) for every Attention."""
    from .nn import Attention
    for m in model.modules():
        if isinstance(m, Attention):
            m.backend = backend
