"""Device and precision policy, the reference path, and the speed-ups of one denoiser step.

Everything here is called explicitly by a pipeline, the node's factory or a benchmark; nothing runs at
import and no global is rebound.

``REFERENCE`` is the official procedure (``ppd_image_spec.md`` §5.3, §7): ``F.scaled_dot_product_attention``
(the official Attention's ``fused_attn=True``), RoPE tables rebuilt in every block, one adaLN product per
block, fp32 weights under the autocast dtype. ``MATH`` swaps in the explicit softmax, a path the official
code never takes (kept only as a labelled extra row in the benches). ``DEFAULT`` (= ``Speedups()``) adds
every speed-up below that keeps outputs within fp32 rounding; the node's factory applies it
(``speedups_for`` / ``apply_pipeline_speedups``), and ``InferenceConfig.speedups=False`` (node parameter
``speedups``) turns it back into ``REFERENCE``. The speed-ups keep the maths of the official model:

* ``set_attention_backend``: 'sdpa' (the official kernel) or 'math' (explicit softmax, slower).
* ``set_rope_cache``: cos/sin tables built once per position grid per forward, not per block.
* ``fuse_modulation``: every adaLN block's six modulation chunks from ONE matrix product per step
  (they depend on the timestep only), instead of one small product per block.
* ``set_fused_norm``: adaLN LayerNorm + modulation as one ``layer_norm`` call, gated residuals as
  one ``addcmul`` (fewer passes over the token tensor).
* ``cast_matmul_weights``: linear/conv weights stored in the autocast dtype, so autocast stops
  re-casting ~all parameters on every step (its weight cache only serves tensors that need grad).
* ``maybe_compile`` / ``CudaGraphStep`` / ``StepBuckets``: one denoiser step compiled or captured
  as a CUDA graph per resolution bucket. Opt-in only: no GPU bench has shown them faster yet.
"""
from __future__ import annotations

import contextlib
import types
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Literal

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .config import InferenceConfig

StepMode = Literal["eager", "compile", "cudagraph", "compile+cudagraph"]


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
    """'sdpa' (fused kernels, as the official code runs) or 'math' (explicit softmax) for every Attention."""
    from .nn import Attention
    for m in model.modules():
        if isinstance(m, Attention):
            m.backend = backend


# --- RoPE tables ----------------------------------------------------------------------------
def _clear_rope(model: torch.nn.Module) -> None:
    from .nn import RoPE2D
    for m in model.modules():
        if isinstance(m, RoPE2D):
            m.clear_cache()


def set_rope_cache(model: torch.nn.Module, enabled: bool) -> None:
    """Cache RoPE cos/sin per position grid, cleared on entry to and exit from each ``model`` call.

    Clearing around every forward keeps the identity-keyed cache safe even for callers that update
    a position buffer in place between calls.
    """
    from .nn import RoPE2D
    for m in model.modules():
        if isinstance(m, RoPE2D):
            m.cache_tables = enabled
            m.clear_cache()
    for h in getattr(model, "_ppd_rope_hooks", ()):
        h.remove()
    hooks = []
    if enabled:
        hooks = [model.register_forward_pre_hook(lambda mod, args: _clear_rope(mod)),
                 model.register_forward_hook(lambda mod, args, out: _clear_rope(mod))]
    object.__setattr__(model, "_ppd_rope_hooks", hooks)


# --- adaLN modulation -----------------------------------------------------------------------
class FusedModulation:
    """All AdaLNBlocks' ``adaLN_modulation`` Linears stacked into one (n*6D, D) matrix.

    Installed as each block's instance-level ``modulation(c)``; the product runs once per distinct
    conditioning tensor ``c`` (one per denoiser step, shared by all blocks) and each block reads
    its six (B, D) chunks as views. Build it after loading/casting the weights: it copies them.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        from .nn import AdaLNBlock
        self.blocks = [m for m in model.modules() if isinstance(m, AdaLNBlock)]
        if not self.blocks:
            raise ValueError("model has no AdaLNBlock to fuse")
        lins = [b.adaLN_modulation[1] for b in self.blocks]
        self.weight = torch.cat([lin.weight.detach() for lin in lins], dim=0)  # (n*6D, D)
        self.bias = torch.cat([lin.bias.detach() for lin in lins], dim=0)  # (n*6D,)
        self._c: torch.Tensor | None = None
        self._out: torch.Tensor | None = None
        for i, b in enumerate(self.blocks):
            object.__setattr__(b, "modulation", self._reader(i))

    def _reader(self, i: int) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
        def modulation(c: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return tuple(self.all_chunks(c)[:, i].unbind(1))  # six (B, D) views
        return modulation

    def all_chunks(self, c: torch.Tensor) -> torch.Tensor:
        """c (B, D) -> (B, n_blocks, 6, D); memoised on the identity of ``c``."""
        if self._c is not c:
            out = F.linear(F.silu(c), self.weight, self.bias)  # (B, n*6D)
            self._c, self._out = c, out.unflatten(-1, (len(self.blocks), 6, -1))
        return self._out

    def remove(self) -> None:
        for b in self.blocks:
            b.__dict__.pop("modulation", None)
        self._c = self._out = None


def fuse_modulation(model: torch.nn.Module) -> FusedModulation:
    """Opt-in: one adaLN product per step for all blocks; ``.remove()`` restores the per-block path."""
    return FusedModulation(model)


def cast_matmul_weights(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Store Linear/Conv weights and biases in ``dtype`` (inference only; run under autocast(dtype)).

    Autocast would cast these to ``dtype`` on every call anyway, so outputs are unchanged; norms
    keep their float32 parameters because autocast runs them in float32.
    """
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.to(dtype)
    return model


@dataclass(frozen=True)
class Speedups:
    """Which opt-in speed-ups ``apply_speedups`` turns on (defaults: all, eager)."""

    attention: Literal["sdpa", "math"] = "sdpa"
    rope_cache: bool = True
    fused_modulation: bool = True
    cast_weights: bool = True  # only acts when the compute dtype is not float32
    fused_norm: bool = True  # AdaLNBlock: LayerNorm+modulate in one layer_norm, gated residual in one addcmul


DEFAULT = Speedups()  # what the node's pipelines run (InferenceConfig.speedups=True)
# The official procedure: SDPA, per-block RoPE tables and adaLN products, fp32 weights under autocast.
REFERENCE = Speedups(attention="sdpa", rope_cache=False, fused_modulation=False, cast_weights=False,
                     fused_norm=False)
# REFERENCE with the explicit softmax: not the official path, only a labelled extra row in the benches.
MATH = Speedups(attention="math", rope_cache=False, fused_modulation=False, cast_weights=False, fused_norm=False)
PLAIN = MATH  # the former name of MATH (it was wrongly called "how the official code runs")


def speedups_for(cfg: "InferenceConfig") -> Speedups:
    """The speed-ups an ``InferenceConfig`` asks for: ``DEFAULT`` or ``REFERENCE`` (attention from the config)."""
    from dataclasses import replace
    return replace(DEFAULT if cfg.speedups else REFERENCE, attention=cfg.attention_backend)


def set_fused_norm(model: torch.nn.Module, enabled: bool) -> None:
    """Toggle AdaLNBlock.fused_norm on every adaLN block of ``model``."""
    from .nn import AdaLNBlock
    for m in model.modules():
        if isinstance(m, AdaLNBlock):
            m.fused_norm = enabled


def apply_speedups(model: torch.nn.Module, sp: Speedups, dtype: torch.dtype) -> FusedModulation | None:
    """Configure ``model`` in place; returns the FusedModulation handle when one was installed."""
    set_attention_backend(model, sp.attention)
    set_rope_cache(model, sp.rope_cache)
    set_fused_norm(model, sp.fused_norm)
    if sp.cast_weights and dtype != torch.float32:
        cast_matmul_weights(model, dtype)
    from .nn import AdaLNBlock
    if sp.fused_modulation and any(isinstance(m, AdaLNBlock) for m in model.modules()):
        return fuse_modulation(model)
    return None


# --- whole pipelines (what the node's factory builds) ------------------------------------------
@dataclass
class AppliedSpeedups:
    """What ``apply_pipeline_speedups`` configured: the settings, the models, the fused-modulation handles."""

    speedups: Speedups
    models: list[torch.nn.Module]
    fused: list[FusedModulation]

    def remove(self) -> None:
        """Back to ``REFERENCE`` maths (the attention backend stays as configured)."""
        for h in self.fused:
            h.remove()
        for m in self.models:
            set_rope_cache(m, False)
            set_fused_norm(m, False)
        self.fused = []


def pipeline_models(obj: object, depth: int = 3) -> list[torch.nn.Module]:
    """The top-level ``nn.Module``s a pipeline object (or a list of them) holds, through plain wrappers
    such as the node's ``VideoStream``, ``MoGe2Runner`` or ``SharedMoGe2``; each module once."""
    found: dict[int, torch.nn.Module] = {}

    def walk(o: object, d: int) -> None:
        if isinstance(o, torch.nn.Module):
            found.setdefault(id(o), o)
            return
        if isinstance(o, (list, tuple)):
            for v in o:
                walk(v, d)
            return
        if d == 0 or not hasattr(o, "__dict__") or isinstance(o, type):
            return
        for v in vars(o).values():
            if not isinstance(v, (types.FunctionType, types.MethodType, torch.Tensor, torch.Generator)):
                walk(v, d - 1)

    walk(obj, depth)
    return list(found.values())


def apply_pipeline_speedups(pipe: object, sp: Speedups, dtype: torch.dtype = torch.float32) -> AppliedSpeedups:
    """``apply_speedups`` on every model of a pipeline or list of pipelines (image, video, metric stage).

    Weights are cast to ``dtype`` (``sp.cast_weights``) only in DiTs (modules with adaLN blocks),
    whose every call runs under the pipeline's autocast; encoders keep fp32 weights.
    """
    from .nn import AdaLNBlock
    models, fused = pipeline_models(pipe), []
    for m in models:
        has_adaln = any(isinstance(b, AdaLNBlock) for b in m.modules())
        h = apply_speedups(m, sp, dtype if has_adaln else torch.float32)
        if h is not None:
            fused.append(h)
    return AppliedSpeedups(sp, models, fused)


# --- one denoiser step per resolution bucket --------------------------------------------------
class CudaGraphStep:
    """``fn(*tensors) -> tensor`` captured once as a CUDA graph at fixed shapes, then replayed.

    Inputs are copied into static buffers before each replay and the output is cloned, so callers
    keep ordinary tensor semantics. Why: eager launches of ~30 small kernels per block leave the
    GPU idle between them; a replay issues the whole step at once.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], example: tuple[torch.Tensor, ...], warmup: int = 2) -> None:
        self.static_in = tuple(t.detach().clone() for t in example)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (allocator, cuBLAS handles) off the capture stream
            for _ in range(warmup):
                fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = fn(*self.static_in)

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        for dst, src in zip(self.static_in, args):
            if dst.shape != src.shape:
                raise ValueError(f"CUDA graph captured for {tuple(dst.shape)}, got {tuple(src.shape)}")
            dst.copy_(src)
        self.graph.replay()
        return self.static_out.clone()


class StepBuckets:
    """One prepared step per input-shape bucket: eager, ``torch.compile``d, a captured CUDA graph, or both."""

    def __init__(self, fn: Callable[..., torch.Tensor], mode: StepMode = "eager",
                 compile_mode: str = "max-autotune-no-cudagraphs") -> None:
        if "cudagraph" in mode and not torch.cuda.is_available():
            raise RuntimeError("CUDA graph capture needs a CUDA device")
        self.fn, self.mode, self.compile_mode = fn, mode, compile_mode
        self.buckets: dict[tuple, Callable[..., torch.Tensor]] = {}
        self.errors: list[str] = []  # buckets whose capture failed and run uncaptured instead

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        step = self.buckets.get(key)
        if step is None:
            step = self.fn
            if "compile" in self.mode:
                step = torch.compile(self.fn, mode=self.compile_mode, dynamic=False)
            if "cudagraph" in self.mode:  # warm-up inside CudaGraphStep also runs inductor's autotuning
                try:
                    step = CudaGraphStep(step, args)
                except RuntimeError as exc:  # e.g. a host->device copy or sync inside the step
                    self.errors.append(f"CUDA graph capture failed for {key}: {exc}")
                    warnings.warn(self.errors[-1], RuntimeWarning, stacklevel=2)
            self.buckets[key] = step
        return step(*args)


def bucket_method(obj: object, name: str, mode: StepMode,
                  compile_mode: str = "max-autotune-no-cudagraphs") -> StepBuckets:
    """Replace ``obj.name`` (e.g. an encoder's ``forward_semantics``) on this instance only by a
    per-bucket compiled / captured version; ``del obj.name`` restores the class method."""
    steps = StepBuckets(getattr(obj, name), mode, compile_mode)
    object.__setattr__(obj, name, steps)
    return steps
