"""PPVDPipeline: video depth with π3 semantics, in two modes sharing one pipeline object.

* ``new_stream("exact")`` -> ``ChunkedState``: the official windowed procedure, bit-for-bit in its
  arithmetic (``video_chunked.py``); ``push`` returns a window's frames when it completes.
* ``new_stream("stream")`` -> ``VideoStreamState``: a causal approximation with a reference-frame
  token cache (``video_stream.py``); every ``push`` returns that frame's depth.

Both take RGB uint8 frames of any size, stretch them to ``resolution``² (the official DiT only runs at
512x512) and return ``DepthResult``s at the input size. The result is PPVD's relative, affine-chained
map: disparity-like for the official model (per the paper: larger = nearer); normalised log depth,
like the small PPD's, for the embedded small PPVD (``embedded.load_embedded_video_pipeline``).
"""
from __future__ import annotations

from typing import Callable, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints import CHECKPOINT_LAYOUTS, load_into, read_state_dict, select_keys
from ..config import DiTVideoConfig, InferenceConfig, Pi3Config, VideoConfig, preset
from ..diffusion import EulerSampler
from ..errors import ConfigError, InputError
from ..models.dit_video import DiT_Video, VideoContext
from ..preprocess import check_rgb_u8
from ..runtime import autocast, resolve_device, resolve_dtype, set_attention_backend, synchronize
from .image import DepthResult
from .video_chunked import ChunkedState, flush_chunked, new_chunked_state, push_chunked
from .video_stream import VideoStreamState, flush_stream, new_stream_state, push_stream

Mode = Literal["exact", "stream"]


class VideoSemanticEncoder(Protocol):
    """π3's surface used here (``models/pi3.py::Pi3Semantic``)."""

    cfg: Pi3Config

    def forward_semantics(self, imgs: torch.Tensor) -> torch.Tensor: ...

    def forward_semantics_with_cache(self, imgs: torch.Tensor, past: object = None) -> tuple[torch.Tensor, object]: ...


class PPVDPipeline:
    """Frames in, aligned relative depth out; the caller owns each stream's state."""

    def __init__(self, dit: DiT_Video, encoder: VideoSemanticEncoder, cfg: InferenceConfig | None = None,
                 video: VideoConfig | None = None) -> None:
        self.cfg = cfg or InferenceConfig()
        self.video = video or VideoConfig()
        if dit.cfg.input_size != self.video.resolution:
            raise ConfigError(f"DiT_Video runs at {dit.cfg.input_size}px but VideoConfig.resolution is "
                             f"{self.video.resolution}")
        if dit.cfg.num_refs != self.video.num_refs:
            raise ConfigError(f"DiT_Video expects {dit.cfg.num_refs} references, VideoConfig has "
                             f"{self.video.num_refs} key frames")
        self.device = resolve_device(self.cfg.device)
        self.dtype = resolve_dtype(self.cfg.dtype, self.device)
        self.dit = dit.to(self.device).eval().requires_grad_(False)
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        for m in (self.dit, self.encoder):
            set_attention_backend(m, self.cfg.attention_backend)
        self.sampler = EulerSampler(self.cfg.steps)

    @classmethod
    def from_checkpoints(cls, ppvd_path: str, pi3_path: str, cfg: InferenceConfig | None = None,
                         video: VideoConfig | None = None, dit_cfg: DiTVideoConfig | None = None,
                         pi3_cfg: Pi3Config | None = None) -> "PPVDPipeline":
        """Official ppvd.pth (``dit_video.*``, optional ``sem_encoder.*``) + pi3.safetensors."""
        from ..models.pi3 import Pi3Semantic
        dcfg, pcfg = dit_cfg or preset("ppvd_dit_video"), pi3_cfg or preset("pi3")
        state = read_state_dict(ppvd_path)
        dit_state = dit_video_state(state, dcfg)
        pi3_state = select_keys(read_state_dict(pi3_path), CHECKPOINT_LAYOUTS["pi3"])
        # run_video.py loads ppvd.pth after pi3.safetensors, so sem_encoder.* in it (if any) win
        pi3_state.update(select_keys({k[len("sem_encoder."):]: v for k, v in state.items()
                                      if k.startswith("sem_encoder.")}, CHECKPOINT_LAYOUTS["pi3"]))
        dit = load_into(lambda: DiT_Video(dcfg), dit_state, f"{ppvd_path} (DiT_Video)")
        enc = load_into(lambda: Pi3Semantic(pcfg), pi3_state, f"{pi3_path} (π3)")
        return cls(dit, enc, cfg, video)

    # --- streams ----------------------------------------------------------------------------
    def new_stream(self, mode: Mode = "exact", noise: torch.Tensor | None = None,
                   seed: int | None = None) -> ChunkedState | VideoStreamState:
        """A fresh caller-owned stream state with its noise rows (given, or drawn from ``seed``).

        ``noise`` (window, 1, s, s): e.g. ``official_noise.official_demo_noise(state)`` to reproduce the
        official demo bit for bit.
        """
        if noise is None:
            g = torch.Generator().manual_seed(self.cfg.seed if seed is None else seed)
            s = self.video.resolution
            noise = torch.randn(self.video.window, 1, s, s, generator=g, dtype=torch.float32)
        if mode == "exact":
            return new_chunked_state(self.video.window, self.video.resolution, noise, self.device)
        if mode == "stream":
            return new_stream_state(self, noise)
        raise InputError(f"mode must be 'exact' or 'stream', got {mode!r}")

    def push(self, state: ChunkedState | VideoStreamState, frame: np.ndarray,
             stamp: object = None) -> list[DepthResult]:
        """One RGB uint8 (H, W, 3) frame in; the results that became ready (exact: a window's worth)."""
        if isinstance(state, ChunkedState):
            return push_chunked(self, state, frame, stamp)
        return push_stream(self, state, frame, stamp)

    def flush(self, state: ChunkedState | VideoStreamState) -> list[DepthResult]:
        """End of stream: exact mode pads and runs the open window; streaming has nothing pending."""
        if isinstance(state, ChunkedState):
            return flush_chunked(self, state)
        return flush_stream(self, state)

    # --- shared steps -----------------------------------------------------------------------
    def prepare(self, frame: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, s, s) float32 in [0, 1], stretched (aspect ratio dropped)."""
        check_rgb_u8(frame)
        if self.video.bgr_quirk:
            # run_video.py converts BGR->RGB and video2tensor converts again, so the official networks
            # see B,G,R; reversing here reproduces the released model's actual inputs.
            frame = frame[..., ::-1]
        t = torch.from_numpy(np.ascontiguousarray(frame)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        s = self.video.resolution
        return F.interpolate(t, size=(s, s), mode="bilinear", align_corners=False, antialias=False)

    @torch.inference_mode()
    def sample(self, images: torch.Tensor, noise: torch.Tensor, context: VideoContext | None = None,
               semantics: torch.Tensor | None = None,
               on_step: Callable[[int, torch.Tensor], None] | None = None,
               start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, s, s) images + (N, 1, s, s) noise -> ((N, 1, s, s) latent + 0.5, semantics).

        ``start`` > 0: ``noise`` is a latent at ``timesteps[start]`` (warm start; cache slots from ``start``).

        Semantics are computed once (π3 over the N frames as one set) unless given, and reused by all
        denoising steps. ``context`` supplies cross-frame tokens (default: the official window).
        """
        if semantics is None:
            with autocast(self.device, self.dtype):
                semantics = self.encoder.forward_semantics(images)
        cond = images - 0.5
        step = [start]

        def denoise(latent: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if context is not None and hasattr(context, "step"):
                context.step = step[0]  # the cache is indexed by denoising step
            step[0] += 1
            with autocast(self.device, self.dtype):
                return self.dit(torch.cat([latent, cond], dim=1), semantics, t, context)

        pred = self.sampler(denoise, noise, on_step, start=start)
        synchronize(self.device)
        return pred, semantics

    @staticmethod
    def to_output(pred: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
        """(N, 1, s, s) -> (N, H, W) float32 numpy, bilinear with half-pixel centres (official resize back)."""
        out = F.interpolate(pred.float(), size=hw, mode="bilinear", align_corners=False)
        return out[:, 0].cpu().numpy()


def dit_video_state(state: dict[str, torch.Tensor], cfg: DiTVideoConfig) -> dict[str, torch.Tensor]:
    """The ``dit_video.*`` tensors of a PixelPerfectVideoDepth state dict, prefix stripped.

    Anything else (``sem_encoder.*``) is handled by the caller; ``pos_embed`` may be absent, in which case
    the constructor's identical fixed table is kept (as the official non-strict load does).
    """
    dit = select_keys(state, CHECKPOINT_LAYOUTS["ppvd_dit_video"])
    if "pos_embed" not in dit:
        from ..nn import sincos_2d_table
        dit["pos_embed"] = sincos_2d_table(cfg.hidden_size, cfg.input_size // (2 * cfg.patch_size))
    return dit
