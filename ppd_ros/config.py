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


@dataclass(frozen=True)
class Pi3Config:
    """π3 used as PPVD's semantic encoder: DINOv2-reg encoder + alternating frame/global RoPE decoder.

    Field names of the first five follow the fixture constructor ``Pi3_semantic(...)``.
    """

    dim: int = 1024
    num_heads: int = 16
    enc_depth: int = 24
    dec_depth: int = 36
    img_size: int = 518  # encoder's learned pos-embed covers img_size/14 squared patches
    patch_size: int = 14
    mlp_ratio: float = 4.0
    enc_registers: int = 4  # DINOv2 "_reg" register tokens
    dec_registers: int = 5  # π3's own register_token, prepended per frame in the decoder
    rope_base: float = 100.0
    qk_norm_eps: float = 1e-5
    semantic_stride: int = 16  # output grid = (h//16, w//16): the PPVD DiT's coarse grid

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ConfigError(f"dim {self.dim} not divisible by num_heads {self.num_heads}")
        if (self.dim // self.num_heads) % 4:
            raise ConfigError("2-D RoPE needs a head width divisible by 4")
        if self.dec_depth < 2 or self.dec_depth % 2:
            raise ConfigError(f"dec_depth must be even and >= 2 (frame/global pairs), got {self.dec_depth}")
        if self.enc_depth < 1:
            raise ConfigError(f"enc_depth must be >= 1, got {self.enc_depth}")

    def encoder_config(self) -> ViTConfig:
        """dinov2_vitl14_reg as π3 builds it: size-based antialiased pos-embed resize, no mask_token."""
        return ViTConfig(embed_dim=self.dim, depth=self.enc_depth, num_heads=self.num_heads,
                         patch_size=self.patch_size, img_size=self.img_size, mlp_ratio=self.mlp_ratio,
                         num_register_tokens=self.enc_registers, interpolate_offset=0.0,
                         interpolate_antialias=True, ls_init=1.0, has_mask_token=False)


def pi3_config_from_official(kwargs: dict[str, Any]) -> Pi3Config:
    """Pi3Config from a fixture's ``Pi3_semantic(...)`` constructor keywords."""
    return from_kwargs(Pi3Config, kwargs)


register("pi3", lambda: Pi3Config())
register("fixture_pi3_semantics_small", lambda: Pi3Config(dim=48, num_heads=3))


# --- PPVD (video) ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiTVideoConfig(DiTConfig):
    """PPVD's DiT_Video: the image DiT plus a fixed sin-cos table, temporal blocks and RGTP.

    The official thresholds are absolute (RGTP from block 18, temporal blocks before 21..23 of 24);
    reduced presets scale them with the depth so small test models exercise every path.
    """

    semantics_dim: int = 2048  # two concatenated π3 layers; hard-coded in the official fusion Linear
    input_size: int = 512  # the official model only runs at 512x512 (pos_embed is a 32x32 table)
    rgtp_from: int = 18  # first block that attends to the pooled reference tokens
    temporal_from: int = 21  # temporal block j runs right before spatial block temporal_from + j
    num_refs: int = 3  # frames 0..num_refs-1 of a batch are the references
    ref_pool: int = 4  # average-pool kernel/stride on the fine grid for the reference tokens

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.input_size % (2 * self.patch_size):
            raise ConfigError(f"input_size {self.input_size} is not a multiple of {2 * self.patch_size}")
        if (self.input_size // self.patch_size) % self.ref_pool:
            raise ConfigError(f"fine grid {self.input_size // self.patch_size} not divisible by ref_pool {self.ref_pool}")
        if not self.fusion_after < self.rgtp_from < self.depth:
            raise ConfigError(f"rgtp_from {self.rgtp_from} must lie in the fine half ({self.fusion_after + 1}..{self.depth - 1})")
        if not self.fusion_after < self.temporal_from < self.depth:
            raise ConfigError(f"temporal_from {self.temporal_from} must lie in the fine half")
        if self.num_refs < 1:
            raise ConfigError(f"num_refs must be >= 1, got {self.num_refs}")

    @property
    def num_temporal(self) -> int:
        return self.depth - self.temporal_from

    @property
    def fine_grid(self) -> int:
        return self.input_size // self.patch_size

    @property
    def ref_tokens_per_frame(self) -> int:
        return (self.fine_grid // self.ref_pool) ** 2


def dit_video_config_from_official(kwargs: dict[str, Any], **overrides: Any) -> DiTVideoConfig:
    """DiTVideoConfig from the official ``DiT_Video(...)`` keywords (``sem_dim`` = fusion semantics width)."""
    return from_kwargs(DiTVideoConfig, dict(kwargs), renames={"sem_dim": "semantics_dim"}, **overrides)


def reduced_dit_video(hidden_size: int, depth: int, num_heads: int, semantics_dim: int,
                      input_size: int = 512, **kw: Any) -> DiTVideoConfig:
    """A reduced DiT_Video whose thresholds scale with depth like the official 18/24 and 21/24."""
    return DiTVideoConfig(hidden_size=hidden_size, depth=depth, num_heads=num_heads, semantics_dim=semantics_dim,
                          input_size=input_size, rgtp_from=kw.pop("rgtp_from", depth * 3 // 4),
                          temporal_from=kw.pop("temporal_from", depth - 3), **kw)


@dataclass(frozen=True)
class VideoConfig:
    """Run-time settings of the PPVD pipeline (exact chunked and streaming modes)."""

    window: int = 16  # INFER_LEN
    keyframes: tuple[int, ...] = (0, 8, 15)  # window positions carried over as the next references
    resolution: int = 512  # frames are stretched to resolution x resolution (aspect ratio dropped)
    # The official video path swaps BGR<->RGB twice, so the networks see B,G,R; True reproduces that.
    bgr_quirk: bool = True
    # streaming mode
    refresh_every: int = 13  # a new reference set every K frames (K = stride keeps the official cadence)
    keep_frame0: bool = True  # reference slot 0 stays the stream's first frame (official anchor)
    temporal_frames: int = 12  # recent frames kept for the temporal blocks (plus the references)
    scene_cut_threshold: float = 0.25  # mean |diff| of 16x16 grey thumbnails in [0, 1]; <= 0 disables
    reset_on_time_jump: bool = True  # a stamp older than the previous one resets the stream

    def __post_init__(self) -> None:
        if len(self.keyframes) < 1 or self.keyframes[0] != 0:
            raise ConfigError(f"keyframes must start with position 0, got {self.keyframes}")
        if any(not 0 <= k < self.window for k in self.keyframes) or list(self.keyframes) != sorted(set(self.keyframes)):
            raise ConfigError(f"keyframes {self.keyframes} must be increasing positions inside the window {self.window}")
        if self.window <= len(self.keyframes):
            raise ConfigError(f"window {self.window} must exceed the {len(self.keyframes)} references")
        if self.refresh_every < 1 or self.temporal_frames < 0:
            raise ConfigError("refresh_every must be >= 1 and temporal_frames >= 0")

    @property
    def num_refs(self) -> int:
        return len(self.keyframes)

    @property
    def stride(self) -> int:
        return self.window - self.num_refs


register("ppvd_dit_video", lambda: DiTVideoConfig())
register("ppvd_video", lambda: VideoConfig())
