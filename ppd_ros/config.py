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
    # --- streams (docs/stable_streams.md) ---
    # "fixed": a stream draws its initial noise once (from its seed) and reuses it for every frame, so
    # an unchanged scene gives an unchanged depth; "fresh": a new draw per frame (the official image code)
    noise: Literal["fixed", "fresh"] = "fixed"
    # warm start: a frame whose image barely moved starts at timesteps[warm_start_step] from the previous
    # frame's result re-noised with the stream's noise (steps - warm_start_step evaluations); needs
    # noise="fixed" and steps > warm_start_step, else every frame is cold
    warm_start: bool = False
    warm_start_step: int = 1
    motion_threshold: float = 0.01  # mean |grey difference| in [0, 1] (quarter-size working image) above
    # which a frame cold-starts
    scene_cut_threshold: float = 0.25  # mean |diff| of 16x16 grey thumbnails in [0, 1]; <= 0 disables
    # runtime.DEFAULT speed-ups (outputs within fp32 rounding of the official procedure) where the
    # pipeline is built by the node's factory; False = runtime.REFERENCE, the official procedure.
    speedups: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.noise not in ("fixed", "fresh"):
            raise ConfigError(f"noise must be 'fixed' or 'fresh', got {self.noise!r}")
        if self.warm_start_step < 1:
            raise ConfigError(f"warm_start_step must be >= 1, got {self.warm_start_step}")
        if self.motion_threshold < 0:
            raise ConfigError(f"motion_threshold must be >= 0, got {self.motion_threshold}")

    @property
    def warm_start_active(self) -> bool:
        """True when warm starts can happen with these settings."""
        return self.warm_start and self.noise == "fixed" and self.steps > self.warm_start_step
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
    # The official DiT_Video has no RoPE (position = the additive table). Our small PPVD keeps the image
    # DiT's 2-D RoPE in its spatial blocks: it is initialised from a RoPE-trained image DiT and 2 CPU cores
    # cannot re-learn positions from the table (see ppd_ros/train/video.py).
    rope: bool = False

    def __post_init__(self) -> None:
        # Not DiTConfig's checks: without RoPE any head width works.
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")
        if self.rope and (self.hidden_size // self.num_heads) % 4:
            raise ConfigError("2-D RoPE needs a head width divisible by 4")
        if self.depth < 2 or self.depth % 2:
            raise ConfigError(f"depth must be even and >= 2 (coarse half + fine half), got {self.depth}")
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
                          temporal_from=kw.pop("temporal_from", max(depth - 3, depth // 2)), **kw)


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
    # "fixed": every streamed frame (and reference pass) uses the stream's first noise row; "fresh": the row
    # of its virtual window position (the official rows cycle). Exact windows always use the official rows.
    noise: Literal["fixed", "fresh"] = "fixed"

    def __post_init__(self) -> None:
        if len(self.keyframes) < 1 or self.keyframes[0] != 0:
            raise ConfigError(f"keyframes must start with position 0, got {self.keyframes}")
        if any(not 0 <= k < self.window for k in self.keyframes) or list(self.keyframes) != sorted(set(self.keyframes)):
            raise ConfigError(f"keyframes {self.keyframes} must be increasing positions inside the window {self.window}")
        if self.window <= len(self.keyframes):
            raise ConfigError(f"window {self.window} must exceed the {len(self.keyframes)} references")
        if self.refresh_every < 1 or self.temporal_frames < 0:
            raise ConfigError("refresh_every must be >= 1 and temporal_frames >= 0")
        if self.noise not in ("fixed", "fresh"):
            raise ConfigError(f"noise must be 'fixed' or 'fresh', got {self.noise!r}")

    @property
    def num_refs(self) -> int:
        return len(self.keyframes)

    @property
    def stride(self) -> int:
        return self.window - self.num_refs


register("ppvd_dit_video", lambda: DiTVideoConfig())
register("ppvd_video", lambda: VideoConfig())


# --- MoGe-2 (metric scale, intrinsics, and PPD's second semantic encoder) --------------------
Resampler = Literal["conv_transpose", "bilinear", "nearest"]


@dataclass(frozen=True)
class ConvStackConfig:
    """One MoGe ConvStack (neck or head): per-level 1x1 input conv, residual blocks, 2x resamplers.

    Lists run over levels (coarse to fine); ``None`` in ``dim_in``/``dim_out`` means no conv there.
    """

    dim_in: tuple[int | None, ...]
    dim_res_blocks: tuple[int, ...]
    num_res_blocks: tuple[int, ...]
    dim_out: tuple[int | None, ...] | None
    resamplers: tuple[Resampler, ...]
    res_block_in_norm: Literal["none"] = "none"
    res_block_hidden_norm: Literal["none"] = "none"
    dim_times_res_block_hidden: int = 1
    activation: Literal["relu"] = "relu"

    def __post_init__(self) -> None:
        n = len(self.dim_res_blocks)
        lists = {"dim_in": self.dim_in, "num_res_blocks": self.num_res_blocks, "dim_out": self.dim_out}
        for name, val in lists.items():
            if val is not None and len(val) != n:
                raise ConfigError(f"ConvStack {name} has {len(val)} levels, dim_res_blocks has {n}")
        if len(self.resamplers) != n - 1:
            raise ConfigError(f"ConvStack needs {n - 1} resamplers between {n} levels, got {len(self.resamplers)}")
        bad = [r for r in self.resamplers if r not in ("conv_transpose", "bilinear", "nearest")]
        if bad:
            raise ConfigError(f"unsupported ConvStack resampler(s) {bad}")
        # why only "none": the released MoGe-2 checkpoints use no norm layers; others would add keys
        if self.res_block_in_norm != "none" or self.res_block_hidden_norm != "none":
            raise ConfigError("only res_block norms 'none' are supported (the released MoGe-2 config)")
        if self.activation != "relu":
            raise ConfigError(f"only the 'relu' ConvStack activation is supported, got {self.activation!r}")

    @property
    def levels(self) -> int:
        return len(self.dim_res_blocks)


@dataclass(frozen=True)
class MoGe2Config:
    """MoGe-2 ``MoGeModel(**model_config)`` with its DINOv2 backbone spelled out."""

    vit: ViTConfig
    intermediate_layers: tuple[int, ...]
    dim_out: int  # width of the per-layer 1x1 projections (= semantics width)
    neck: ConvStackConfig
    points_head: ConvStackConfig
    mask_head: ConvStackConfig
    normal_head: ConvStackConfig | None
    scale_head: tuple[int, ...]
    remap_output: Literal["linear", "sinh", "exp", "sinh_exp"] = "exp"
    num_tokens_range: tuple[int, int] = (1200, 3600)

    def __post_init__(self) -> None:
        if not self.intermediate_layers or max(self.intermediate_layers) >= self.vit.depth:
            raise ConfigError(f"intermediate_layers {self.intermediate_layers} outside a {self.vit.depth}-block ViT")
        if self.neck.dim_in[0] != self.dim_out + 2:
            raise ConfigError(f"neck.dim_in[0] must be dim_out + 2 (features + uv), got {self.neck.dim_in[0]}")
        if self.scale_head[0] != self.vit.embed_dim or self.scale_head[-1] != 1:
            raise ConfigError(f"scale_head dims {self.scale_head} must run from the ViT width to 1")
        if self.remap_output not in ("linear", "sinh", "exp", "sinh_exp"):
            raise ConfigError(f"unknown remap_output {self.remap_output!r}")
        lo, hi = self.num_tokens_range
        if not 0 < lo <= hi:
            raise ConfigError(f"num_tokens_range {self.num_tokens_range} must satisfy 0 < min <= max")


# dinov2_vit*14 factory keywords (DINOv2 hub): the backbones a MoGe-2 model_config may name.
DINOV2_BACKBONES: dict[str, dict[str, Any]] = {
    name: dict(img_size=518, patch_size=14, embed_dim=d, depth=depth, num_heads=h, mlp_ratio=4,
               init_values=1.0, ffn_layer="mlp", block_chunks=0, num_register_tokens=0,
               interpolate_antialias=False, interpolate_offset=0.1)
    for name, (d, depth, h) in {"dinov2_vits14": (384, 12, 6), "dinov2_vitb14": (768, 12, 12),
                                "dinov2_vitl14": (1024, 24, 16)}.items()}


def _conv_stack(d: dict[str, Any]) -> ConvStackConfig:
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
    n = len(kw.get("dim_res_blocks", ()))
    if isinstance(kw.get("num_res_blocks"), int):  # MoGe allows one count for every level
        kw["num_res_blocks"] = (kw["num_res_blocks"],) * n
    if isinstance(kw.get("resamplers"), str):
        kw["resamplers"] = (kw["resamplers"],) * (n - 1)
    return from_kwargs(ConvStackConfig, kw)


def moge2_config_from_official(model_config: dict[str, Any],
                               backbone_kwargs: dict[str, Any] | None = None) -> MoGe2Config:
    """MoGe2Config from a ``model.pt`` ``model_config`` dict (+ backbone keywords for unknown names)."""
    mc = dict(model_config)
    enc = dict(mc.pop("encoder"))
    name = enc.pop("backbone")
    vit_kw = backbone_kwargs if backbone_kwargs is not None else DINOV2_BACKBONES.get(name)
    if vit_kw is None:
        raise ConfigError(f"unknown MoGe-2 backbone {name!r}; known: {', '.join(DINOV2_BACKBONES)}")
    vit = vit_config_from_official(vit_kw)
    layers = enc.pop("intermediate_layers")
    if isinstance(layers, int):  # "the last n blocks"
        layers = list(range(vit.depth - layers, vit.depth))
    dim_out = enc.pop("dim_out")
    if enc:
        raise ConfigError(f"unsupported MoGe-2 encoder options {sorted(enc)}")
    heads = {k: _conv_stack(mc.pop(k)) if mc.get(k) is not None else None
             for k in ("neck", "points_head", "mask_head", "normal_head")}
    for k in ("neck", "points_head", "mask_head"):
        if heads[k] is None:
            raise ConfigError(f"MoGe-2 model_config has no {k!r}; the metric pipeline needs it")
    scale = mc.pop("scale_head", None)
    if not scale:
        raise ConfigError("MoGe-2 model_config has no 'scale_head' (a MoGe-1 model has no metric scale)")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in mc.items()}
    return from_kwargs(MoGe2Config, kw, vit=vit, intermediate_layers=tuple(layers), dim_out=dim_out,
                       scale_head=tuple(scale["dims"]), **heads)


def _moge2_dict(width: int, dim_out: int, levels: tuple[int, ...], layers: list[int], backbone: str,
                scale_dims: list[int]) -> dict[str, Any]:
    """A release-shaped model_config (res-block counts, norms, resamplers as moge-2-vitl-normal)."""
    rs = ["conv_transpose", "conv_transpose", "conv_transpose", "bilinear"]
    head = lambda out: dict(dim_in=list(levels), dim_out=[None] * 4 + [out], dim_res_blocks=list(levels),  # noqa: E731
                            num_res_blocks=[0, 1, 1, 1, 0], res_block_in_norm="none",
                            res_block_hidden_norm="none", resamplers=rs)
    return dict(encoder=dict(backbone=backbone, intermediate_layers=layers, dim_out=dim_out),
                neck=dict(dim_in=[dim_out + 2, 2, 2, 2, 2], dim_out=None, dim_res_blocks=list(levels),
                          num_res_blocks=[0, 2, 2, 2, 0], res_block_in_norm="none", res_block_hidden_norm="none",
                          resamplers=rs),
                points_head=head(3), normal_head=head(3), mask_head=head(1), scale_head=dict(dims=scale_dims),
                remap_output="exp", num_tokens_range=[1200, 3600])


MOGE2_VITL_NORMAL = _moge2_dict(1024, 1024, (1024, 256, 128, 64, 32), [5, 11, 17, 23], "dinov2_vitl14",
                                [1024, 1024, 1024, 1])
# The reduced model of shared/fixtures/moge2/{forward,infer}/meta.json.
FIXTURE_MOGE2_TINY_BACKBONE = dict(DINOV2_BACKBONES["dinov2_vits14"], embed_dim=64, depth=6, num_heads=4)
FIXTURE_MOGE2_TINY = _moge2_dict(64, 32, (32, 16, 16, 8, 8), [1, 3, 4, 5], "dinov2_fixture_tiny14", [64, 32, 32, 1])

register("moge2_vitl_normal", lambda: moge2_config_from_official(MOGE2_VITL_NORMAL))
register("fixture_moge2_tiny", lambda: moge2_config_from_official(FIXTURE_MOGE2_TINY, FIXTURE_MOGE2_TINY_BACKBONE))


# --- embedded (small, trained here) presets; see ppd_ros/embedded.py and the README ---
@dataclass(frozen=True)
class SmallEncoderConfig:
    """Frozen EfficientNet-Lite0 + trained FPN decoder: decoder width and the semantics width it emits."""

    decoder_dim: int = 64
    semantics_dim: int = 128
    semantic_stride: int = 16  # the DiT's coarse patch (2 * its patch_size): one semantic token per coarse token

    def __post_init__(self) -> None:
        if self.semantic_stride not in (8, 16):
            raise ConfigError(f"semantic_stride must be 8 or 16 (FPN levels), got {self.semantic_stride}")
        if self.semantics_dim <= 16:  # 16 channels carry the coarse depth patch
            raise ConfigError(f"semantics_dim must exceed 16, got {self.semantics_dim}")


# width 384 >= the 256 noise values of a 16-px coarse patch + features (see ppd_ros/train/init.py)
register("embedded_ppd_dit", lambda: DiTConfig(hidden_size=384, depth=2, num_heads=6, mlp_ratio=2.0,
                                                semantics_dim=128))
# stage-1 helper of the shipped weights: its decoder was kept, its DiT (too narrow to carry the noise) discarded
register("embedded_ppd_dit_v1", lambda: DiTConfig(hidden_size=128, depth=4, num_heads=4, mlp_ratio=2.0,
                                                   semantics_dim=128))
register("embedded_small_encoder", lambda: SmallEncoderConfig(decoder_dim=64, semantics_dim=128))
# finer cascade: 8-px coarse / 4-px fine tokens (12x16 / 24x32 at 128x96) against the 16-px blocks of the above;
# narrower, so a training step costs about the same; the encoder emits its semantics on the 8-px grid
register("embedded_ppd_dit_p4", lambda: DiTConfig(hidden_size=192, depth=2, num_heads=6, patch_size=4, mlp_ratio=2.0,
                                                   semantics_dim=128))
register("embedded_ppd_dit_p4d4", lambda: DiTConfig(hidden_size=192, depth=4, num_heads=6, patch_size=4, mlp_ratio=2.0,
                                                     semantics_dim=128))
register("embedded_small_encoder_s8", lambda: SmallEncoderConfig(decoder_dim=64, semantics_dim=128, semantic_stride=8))


# --- embedded small PPVD (video), initialised from embedded_ppd_dit; see ppd_ros/train/video.py ---
# same widths as embedded_ppd_dit so the image weights load (and its RoPE); 128x128 stretched frames; RGTP
# and the temporal block in the fine half (block 1 of 2)
register("embedded_ppvd_dit_video", lambda: DiTVideoConfig(hidden_size=384, depth=2, num_heads=6, mlp_ratio=2.0,
                                                           semantics_dim=128, input_size=128, rgtp_from=1,
                                                           temporal_from=1, num_refs=3, ref_pool=4, rope=True))
# the same on the finer cascade of embedded_ppd_dit_p4 / _p4d4 (one temporal block, before the last spatial block)
register("embedded_ppvd_dit_video_p4", lambda: DiTVideoConfig(hidden_size=192, depth=2, num_heads=6, patch_size=4,
                                                              mlp_ratio=2.0, semantics_dim=128, input_size=128, rgtp_from=1,
                                                              temporal_from=1, num_refs=3, ref_pool=4, rope=True))
register("embedded_ppvd_dit_video_p4d4", lambda: DiTVideoConfig(hidden_size=192, depth=4, num_heads=6, patch_size=4,
                                                                mlp_ratio=2.0, semantics_dim=128, input_size=128, rgtp_from=2,
                                                                temporal_from=3, num_refs=3, ref_pool=4, rope=True))
# official window/key frames/refresh cadence at 128 px; trained on RGB, so no BGR quirk
register("embedded_ppvd_video", lambda: VideoConfig(resolution=128, bgr_quirk=False))


# --- embedded small MoGe-2 (metric scale + intrinsics), trained here by ppd_ros/train/moge2_small.py ---
# DINOv2-structured ViT 96x5 (3 heads), 10x10 position table; no normal head (as moge-2-vitl). The token
# budget (level 9 -> 48) gives a 6x8 grid at 128x96, whose heads emit exactly 96x128 (no resize, cheaper).
EMBEDDED_MOGE2_BACKBONE = dict(DINOV2_BACKBONES["dinov2_vits14"], embed_dim=96, depth=5, num_heads=3, img_size=140)
EMBEDDED_MOGE2 = {**{k: v for k, v in _moge2_dict(96, 64, (64, 32, 16, 8, 8), [1, 2, 3, 4], "dinov2_embedded_tiny14",
                                                  [96, 64, 64, 1]).items() if k != "normal_head"},
                  "num_tokens_range": [32, 48]}
register("embedded_moge2", lambda: moge2_config_from_official(EMBEDDED_MOGE2, EMBEDDED_MOGE2_BACKBONE))
