"""Frozen architecture configs, run-time inference settings, and the exact-name preset registry."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Literal

from .errors import ConfigError


@dataclass(frozen=True)
class DiTConfig:
    """PPD's pixel-space DiT (also the base of PPVD's DiT_Video)."""

    hidden_size: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 8  # fine patch; the input embedding uses 2 * patch_size
    mlp_ratio: float = 4.0
    in_channels: int = 4
    out_channels: int = 1
    semantics_dim: int = 1024  # hard-wired to 1024 in the official image DiT (fusion input D + 1024)
    rope_base: float = 100.0
    frequency_embedding_size: int = 256

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        if (self.hidden_size // self.num_heads) % 4:
            raise ConfigError("2-D RoPE needs a head width divisible by 4")
        if self.depth < 2 or self.depth % 2:
            raise ConfigError(f"depth must be even and >= 2 (coarse half + fine half), got {self.depth}")

    @property
    def fusion_after(self) -> int:
        """Index of the last coarse block; semantic fusion follows it."""
        return self.depth // 2 - 1

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


@dataclass(frozen=True)
class ViTConfig:
    """DINOv2-style ViT (DA2 / MoGe-2 / π3 encoders)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 14
    img_size: int = 518
    mlp_ratio: float = 4.0
    num_register_tokens: int = 0
    interpolate_offset: float = 0.1
    interpolate_antialias: bool = False
    ls_init: float = 1.0
    has_mask_token: bool = True

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if self.img_size % self.patch_size:
            raise ConfigError(f"img_size {self.img_size} is not a multiple of patch {self.patch_size}")

    @property
    def pos_grid(self) -> int:
        return self.img_size // self.patch_size


@dataclass(frozen=True)
class InferenceConfig:
    """Run-time knobs (never architecture)."""

    steps: int = 4
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    target_area: int = 1024 * 768  # working-resolution area of the official resize_keep_aspect
    max_aspect: float = 8.0  # reject inputs more extreme than this (the official code never clamps)
    attention_backend: Literal["sdpa", "math"] = "sdpa"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.target_area < 256:
            raise ConfigError(f"target_area must be >= 256 pixels, got {self.target_area}")


def from_kwargs(cls: type, kwargs: dict[str, Any], renames: dict[str, str] | None = None, **extra: Any):
    """Build a config dataclass from an official constructor dict; unknown keys are an error."""
    renames = renames or {}
    names = {f.name for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in {**kwargs, **extra}.items():
        key = renames.get(key, key)
        if key not in names:
            raise ConfigError(f"{cls.__name__} has no field {key!r} (from constructor argument)")
        out[key] = value
    return cls(**out)


# --- preset registry: exact names only -------------------------------------------------------
PRESETS: dict[str, Callable[[], Any]] = {}


def register(name: str, factory: Callable[[], Any]) -> None:
    if name in PRESETS:
        raise ConfigError(f"preset {name!r} registered twice")
    PRESETS[name] = factory


def preset(name: str) -> Any:
    """The config registered under exactly ``name``."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None


# Full-size official architectures.
register("ppd_dit", lambda: DiTConfig())
register("da2_vitl", lambda: ViTConfig())
# Reduced ones used by the shared parity fixtures (shared/fixtures/ppd/*/meta.json).
register("fixture_ppd_dit_small", lambda: DiTConfig(hidden_size=96, depth=4, num_heads=2))
register("fixture_ppd_e2e_dit", lambda: DiTConfig(hidden_size=128, depth=2, num_heads=2, mlp_ratio=2.0,
                                                   semantics_dim=128))
register("fixture_da2_vit_small", lambda: ViTConfig(embed_dim=128, depth=2, num_heads=2))

__all__ = ["DiTConfig", "ViTConfig", "InferenceConfig", "from_kwargs", "register", "preset", "PRESETS",
           "replace", "field"]


def dit_config_from_official(kwargs: dict[str, Any], semantics_dim: int = 1024) -> DiTConfig:
    """DiTConfig from the official ``DiT(...)`` constructor keywords (+ the fusion's semantics width)."""
    kw = {k: v for k, v in kwargs.items() if k != "input_size"}  # input_size only sizes a checked assert
    return from_kwargs(DiTConfig, kw, semantics_dim=semantics_dim)


def vit_config_from_official(kwargs: dict[str, Any]) -> ViTConfig:
    """ViTConfig from the official ``DinoVisionTransformer(...)`` keywords."""
    kw = dict(kwargs)
    if kw.pop("ffn_layer", "mlp") != "mlp":
        raise ConfigError("only the 'mlp' FFN of DINOv2 ViT-S/B/L is supported")
    kw.pop("block_chunks", None)  # a memory-layout option; no effect on keys after flattening
    return from_kwargs(ViTConfig, kw, renames={"init_values": "ls_init"})
