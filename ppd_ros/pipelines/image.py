"""PPDPipeline: one RGB frame in, relative depth (normalised log depth, larger = farther) out."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch

from ..config import DiTConfig, InferenceConfig, ViTConfig, preset
from ..diffusion import EulerSampler, initial_noise
from ..models import DA2SemanticEncoder, DiT
from ..preprocess import check_rgb_u8, keep_aspect_size, resize_depth, to_tensor
from ..runtime import autocast, resolve_device, resolve_dtype, set_attention_backend, synchronize
from ..checkpoints import load_model

import cv2


class SemanticEncoder(Protocol):
    def forward_semantics(self, image: torch.Tensor) -> torch.Tensor: ...


@dataclass
class DepthResult:
    """One frame's depth. ``depth`` is at the input size; ``depth_model`` at the model's working size."""

    depth: np.ndarray  # (H0, W0) float32 relative depth (normalised log(1+d), larger = farther)
    depth_model: np.ndarray  # (h, w) float32, same meaning, at the DiT working resolution
    index: int  # frame counter within the stream
    relative: bool = True  # False once a metric stage has turned it into metres
    timings_ms: dict[str, float] = field(default_factory=dict)
    stamp: object = None  # caller's opaque stamp, returned unchanged
    window_index: int = 0  # video: window (exact) or reference epoch (streaming) that produced it
    reference_stamps: tuple = ()  # video: caller stamps of the reference frames used


@dataclass
class ImageStreamState:
    """Per-camera state of the image pipeline: the noise generator and a frame counter."""

    generator: torch.Generator
    frames: int = 0

    def reset(self) -> None:
        self.frames = 0


class PPDPipeline:
    """Semantics once per frame, N Euler steps of the DiT, resize back to the input size."""

    def __init__(self, dit: DiT, encoder: SemanticEncoder, cfg: InferenceConfig | None = None) -> None:
        self.cfg = cfg or InferenceConfig()
        self.device = resolve_device(self.cfg.device)
        self.dtype = resolve_dtype(self.cfg.dtype, self.device)
        self.dit = dit.to(self.device).eval()
        self.encoder = encoder.to(self.device).eval() if isinstance(encoder, torch.nn.Module) else encoder
        for m in (self.dit, self.encoder):
            if isinstance(m, torch.nn.Module):
                m.requires_grad_(False)
                set_attention_backend(m, self.cfg.attention_backend)
        self.sampler = EulerSampler(self.cfg.steps)
        # Opt-in replacement for ``self.dit`` in the sampler loop, same call signature
        # (x, semantics, t) -> v: e.g. runtime.StepBuckets (compiled / CUDA-graph step per bucket).
        self.step: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def from_checkpoints(cls, dit_path: str, semantics_path: str, cfg: InferenceConfig | None = None,
                         dit_cfg: DiTConfig | None = None, vit_cfg: ViTConfig | None = None) -> "PPDPipeline":
        """Official ppd.pth + depth_anything_v2_vitl.pth (or reduced configs with the same layout)."""
        dcfg, vcfg = dit_cfg or preset("ppd_dit"), vit_cfg or preset("da2_vitl")
        dit = load_model(lambda: DiT(dcfg), dit_path, "ppd_dit")
        enc = load_model(lambda: DA2SemanticEncoder(vcfg), semantics_path, "da2_vit")
        return cls(dit, enc, cfg)

    def new_stream(self, seed: int | None = None) -> ImageStreamState:
        g = torch.Generator().manual_seed(self.cfg.seed if seed is None else seed)
        return ImageStreamState(generator=g)

    @torch.inference_mode()
    def infer_tensor(self, image: torch.Tensor, noise: torch.Tensor | None = None,
                     generator: torch.Generator | None = None,
                     timings: dict[str, float] | None = None) -> torch.Tensor:
        """(B, 3, h, w) RGB in [0, 1], h, w multiples of 16 -> (B, 1, h, w) float32 relative depth."""
        image = image.to(self.device, torch.float32)
        if noise is None:
            noise = initial_noise((image.shape[0], 1, *image.shape[-2:]), generator, self.device)
        t0 = time.perf_counter()
        with autocast(self.device, self.dtype):
            semantics = self.encoder.forward_semantics(image)
        cond = image - 0.5
        synchronize(self.device)
        t1 = time.perf_counter()

        def denoise(latent: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.dtype):
                step = self.step if self.step is not None else self.dit
                return step(torch.cat([latent, cond], dim=1), semantics, t)

        depth = self.sampler(denoise, noise.to(self.device))
        synchronize(self.device)
        if timings is not None:
            timings["semantics"] = (t1 - t0) * 1e3
            timings["dit_total"] = (time.perf_counter() - t1) * 1e3
        return depth

    def prepare(self, rgb_u8: np.ndarray) -> torch.Tensor:
        """(H0, W0, 3) uint8 RGB -> (1, 3, h, w) float32 at the working resolution."""
        check_rgb_u8(rgb_u8, self.cfg.max_aspect)
        h, w, interp = keep_aspect_size(*rgb_u8.shape[:2], self.cfg.target_area)
        return to_tensor(cv2.resize(rgb_u8, (w, h), interpolation=interp))

    def __call__(self, rgb_u8: np.ndarray, state: ImageStreamState | None = None,
                 noise: torch.Tensor | None = None, stamp: object = None) -> DepthResult:
        state = state or self.new_stream()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        image = self.prepare(rgb_u8)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        depth = self.infer_tensor(image, noise, state.generator, timings)
        t1 = time.perf_counter()
        full = resize_depth(depth, rgb_u8.shape[:2])[0, 0].float().cpu().numpy()
        timings["postprocess"] = (time.perf_counter() - t1) * 1e3
        result = DepthResult(depth=full, depth_model=depth[0, 0].float().cpu().numpy(), index=state.frames,
                             timings_ms=timings, stamp=stamp)
        state.frames += 1
        return result

    def push(self, state: ImageStreamState, frame: np.ndarray, stamp: object = None) -> list[DepthResult]:
        """The streaming surface shared with the video pipeline: one frame in, its result out."""
        return [self(frame, state, stamp=stamp)]

    def flush(self, state: ImageStreamState) -> list[DepthResult]:
        return []
