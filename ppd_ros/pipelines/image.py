"""PPDPipeline: one RGB frame in, relative depth (normalised log depth, larger = farther) out."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch

from ..config import DiTConfig, InferenceConfig, ViTConfig, preset
from ..diffusion import EulerSampler, initial_noise, renoise
from ..models import DA2SemanticEncoder, DiT
from ..preprocess import check_rgb_u8, keep_aspect_size, resize_depth, to_tensor
from ..runtime import autocast, resolve_device, resolve_dtype, set_attention_backend, synchronize
from ..checkpoints import load_model
from .continuity import grey_small, grey_thumb, is_scene_cut, is_time_jump, motion

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
    warm: bool = False  # DiT sampling warm-started from the previous frame's result
    continuity: str = ""  # "" = continues the stream; else why it (re)started (continuity.REASONS)
    dit_evals: int = 0  # DiT evaluations spent on this frame (exact windows: per frame of the window)
    motion: float = float("nan")  # mean |grey change| against the previous frame (nan: not measured)


@dataclass
class ImageStreamState:
    """Per-camera state of the image pipeline: noise, the previous result for warm starts, counters.

    The tensors are allocated on the first frame at its working size and only reallocated when the
    size changes (which restarts the stream), so memory stays bounded.
    """

    generator: torch.Generator  # noise="fresh": one draw per frame
    seed: int = 0
    frames: int = 0
    noise: torch.Tensor | None = None  # (1, 1, h, w) the stream's fixed initial latent (noise="fixed")
    prev: torch.Tensor | None = None  # (1, 1, h, w) clean latent of the last cold frame (warm-start anchor)
    prev_valid: bool = False
    thumb: torch.Tensor | None = None  # (THUMB, THUMB) previous frame's grey thumbnail (scene cut)
    small: torch.Tensor | None = None  # (h/4, w/4) grey image of the last cold frame (motion test)
    in_hw: tuple[int, int] | None = None  # input size of the stream
    last_stamp: object = None
    pending: str = "first_frame"  # continuity reason reported by the next frame
    resets: int = 0

    def reset(self, reason: str = "request") -> None:
        """The next frame starts the stream over (cold); ``reason`` is reported in its ``continuity``."""
        self.pending = reason
        self.prev_valid = False
        self.thumb = self.small = None
        self.last_stamp = None
        self.resets += 1


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
        seed = self.cfg.seed if seed is None else seed
        return ImageStreamState(generator=torch.Generator().manual_seed(seed), seed=seed)

    @torch.inference_mode()
    def infer_tensor(self, image: torch.Tensor, noise: torch.Tensor | None = None,
                     generator: torch.Generator | None = None,
                     timings: dict[str, float] | None = None, start: int = 0) -> torch.Tensor:
        """(B, 3, h, w) RGB in [0, 1], h, w multiples of 16 -> (B, 1, h, w) float32 relative depth.

        ``start`` > 0: ``noise`` is a latent at ``sampler.timesteps[start]`` (a warm start).
        """
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

        depth = self.sampler(denoise, noise.to(self.device), start=start)
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
        """One frame of a stream (a new one-frame stream when ``state`` is None).

        ``noise`` (1, 1, h, w) overrides the stream's noise policy for this frame (always cold).
        """
        state = state or self.new_stream()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        image = self.prepare(rgb_u8)
        reason, mov, small = self._continuity(state, image, rgb_u8.shape[:2], stamp)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        start, init = 0, noise
        if init is None:
            init = self._stream_noise(state, image)
            warm = self.cfg.warm_start_active and state.prev_valid and not reason and mov <= self.cfg.motion_threshold
            if warm:
                start = self.cfg.warm_start_step
                init = renoise(state.prev, init, int(self.sampler.timesteps[start]))
        depth = self.infer_tensor(image, init, state.generator, timings, start)
        if start == 0:
            self._remember(state, depth, small)
        t1 = time.perf_counter()
        full = resize_depth(depth, rgb_u8.shape[:2])[0, 0].float().cpu().numpy()
        timings["postprocess"] = (time.perf_counter() - t1) * 1e3
        result = DepthResult(depth=full, depth_model=depth[0, 0].float().cpu().numpy(), index=state.frames,
                             timings_ms=timings, stamp=stamp, warm=start > 0, continuity=reason,
                             dit_evals=len(self.sampler.timesteps) - start, motion=mov)
        state.frames += 1
        return result

    def _continuity(self, state: ImageStreamState, image: torch.Tensor, hw: tuple[int, int],
                    stamp: object) -> tuple[str, float, torch.Tensor]:
        """(why the stream restarts at this frame or "", motion since the anchor, this frame's grey image)."""
        thumb, small = grey_thumb(image), grey_small(image)
        reason = state.pending
        if not reason:
            if state.in_hw is not None and tuple(hw) != state.in_hw:
                reason = "resize"
            elif is_time_jump(stamp, state.last_stamp):
                reason = "time_jump"
            elif is_scene_cut(thumb, state.thumb, self.cfg.scene_cut_threshold):
                reason = "scene_cut"
        mov = motion(small, state.small)
        if reason:
            state.prev_valid = False
        state.pending, state.in_hw, state.last_stamp = "", (int(hw[0]), int(hw[1])), stamp
        state.thumb = thumb
        return reason, mov, small

    def _stream_noise(self, state: ImageStreamState, image: torch.Tensor) -> torch.Tensor:
        """This frame's initial latent under the noise policy."""
        shape = (image.shape[0], 1, *image.shape[-2:])
        if self.cfg.noise == "fresh":
            return initial_noise(shape, state.generator, self.device)
        if state.noise is None or tuple(state.noise.shape) != shape:
            # drawn from the seed alone: a stream's noise depends on (seed, size), not on its history
            state.noise = initial_noise(shape, torch.Generator().manual_seed(state.seed), self.device)
            state.prev, state.prev_valid = torch.zeros_like(state.noise), False
        return state.noise

    def _remember(self, state: ImageStreamState, depth: torch.Tensor, small: torch.Tensor) -> None:
        """A cold frame becomes the warm-start anchor: its clean latent (depth - 0.5) and its grey image.

        Why the last cold frame and not the previous frame: re-noising warm results of warm results feeds
        errors back (measured: more flicker, worse AbsRel), and motion measured against the anchor catches
        slow drift that frame-to-frame differences miss.
        """
        state.small = small
        if self.cfg.warm_start_active and state.prev is not None and state.prev.shape == depth.shape:
            state.prev.copy_(depth - 0.5)
            state.prev_valid = True

    def push(self, state: ImageStreamState, frame: np.ndarray, stamp: object = None) -> list[DepthResult]:
        """The streaming surface shared with the video pipeline: one frame in, its result out."""
        return [self(frame, state, stamp=stamp)]

    def flush(self, state: ImageStreamState) -> list[DepthResult]:
        return []
