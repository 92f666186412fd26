"""Streaming PPVD: one frame in, that frame's depth out, with a caller-owned reference-token cache.

The official window couples all 16 frames bidirectionally (ppvd_spec.md §6.1), so no causal scheme
reproduces it; this mode keeps the window's *structure* causally:

* A **reference pass** runs the current reference frames (batch of R) exactly like a window's first
  R positions: π3 over the R frames (their global-attention K/V are cached), the DiT with RGTP among
  them (their pooled tokens are cached per denoising step and RGTP block) and temporal attention among
  them (their temporal-block input tokens are cached per step and temporal block).
* Each **new frame** runs alone: π3 global blocks attend to the cached reference K/V, RGTP blocks to the
  cached pooled reference tokens, temporal blocks to the cached reference tokens plus those of the last
  ``temporal_frames`` frames (a ring). It uses the noise row of its virtual window position.
* **References** (policy): the stream's first frame starts alone; after every ``refresh_every`` new
  frames the set becomes [frame 0 (or, with ``keep_frame0=False``, the previous set's slot 1), the
  frames at the key positions of the virtual window that just ended] - with the defaults exactly the
  official cadence: [0, 8, 15], [0, 21, 28], ...
* **Alignment**: the reference pass re-predicts the references; one affine fit of that prediction
  onto their earlier aligned outputs (slot 0 = the stream's first frame, kept) maps every frame of
  the next epoch, the official chaining at the working resolution.
* **Reset** on request, on a stamp earlier than the previous one, on a scene cut (grey-thumbnail
  difference) or a new frame size; buffers are kept (memory never grows), counters and validity marks
  are cleared. The next result's ``continuity`` says why.
* **Noise** (``VideoConfig.noise``): "fixed" uses the stream's first noise row for every frame and
  reference pass (an unchanged scene gives an unchanged depth); "fresh" the row of the virtual position.
* **Warm start** (``InferenceConfig.warm_start``): a new frame whose image barely moved since the last
  cold frame starts at ``timesteps[warm_start_step]`` from that frame's raw prediction re-noised with the
  fixed row;
  it runs the remaining steps and reads the cache slots of those steps. Reference passes are always cold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import ConfigError, DiTVideoConfig, Pi3Config, VideoConfig
from ..diffusion import renoise
from ..models.dit_video import pool_tokens
from ..models.pi3 import GlobalKV
from .continuity import MOTION_DIV, THUMB, grey_small, grey_thumb, is_scene_cut, is_time_jump, motion
from .image import DepthResult
from .video_align import fit_scale_shift

if TYPE_CHECKING:
    from .video import PPVDPipeline


@dataclass
class VideoStreamState:
    """Every tensor is allocated once at its maximum shape and then written in place by index."""

    noise: torch.Tensor  # (window, 1, s, s) initial latent row per virtual window position
    ref_images: torch.Tensor  # (R, 3, s, s) current reference set
    next_images: torch.Tensor  # (R, 3, s, s) next reference set, collected during the epoch
    anchors: torch.Tensor  # (R, s, s) aligned depth of the current references (slot 0 = first frame)
    next_anchors: torch.Tensor  # (R, s, s) aligned depth of the next references
    ref_tokens: torch.Tensor  # (steps, rgtp blocks, R*P, D) pooled reference tokens
    ref_temporal: torch.Tensor  # (steps, temporal blocks, L, R, D) references' temporal-block inputs
    recent_temporal: torch.Tensor  # (steps, temporal blocks, L, M, D) ring of the last M frames' inputs
    pi3_keys: torch.Tensor  # (G, heads, R, T, hd) references' π3 global-block keys (RoPE applied)
    pi3_values: torch.Tensor  # (G, heads, R, T, hd)
    thumb: torch.Tensor  # (THUMB, THUMB) previous frame's grey thumbnail
    ref_index: torch.Tensor  # (R,) int64 stream frame index of each reference slot (diagnostics)
    next_index: torch.Tensor  # (R,) int64 frame index of each next-reference slot
    prev: torch.Tensor  # (1, 1, s, s) raw clean latent of the last cold frame (warm-start anchor)
    small: torch.Tensor  # (s/4, s/4) grey image of the last cold frame (motion test)
    key_positions: tuple[int, ...]  # virtual-window positions whose frames become the next references
    num_refs: int = 0  # valid reference slots (1 right after a start, R after the first refresh)
    position: int = 0  # next virtual window position
    ring_count: int = 0  # valid ring entries
    ring_next: int = 0  # ring slot the next frame writes
    scale: float = 1.0  # affine map of the current epoch's raw predictions
    shift: float = 0.0
    frames: int = 0  # frames pushed since creation (DepthResult.index)
    epoch: int = 0  # reference passes since the last reset
    resets: int = 0
    last_reset: str = ""  # "request" | "time_jump" | "scene_cut" | "resize" | node reasons
    last_stamp: object = None
    pending: str = "first_frame"  # continuity reason reported by the next frame
    prev_valid: bool = False
    in_hw: tuple[int, int] | None = None  # input frame size of the stream
    ref_stamps: list = field(default_factory=list)  # caller stamps of the reference slots (R entries)
    next_stamps: list = field(default_factory=list)

    def reset(self, reason: str = "request") -> None:
        """Start over at the next frame (it becomes the new frame 0); no tensor is reallocated."""
        self.num_refs = self.position = self.ring_count = self.ring_next = self.epoch = 0
        self.scale, self.shift = 1.0, 0.0
        self.last_stamp = None
        self.resets += 1
        self.last_reset = self.pending = reason
        self.prev_valid = False

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.Tensor)}

    @property
    def nbytes(self) -> int:
        """Bytes held by the state's tensors (constant for the stream's lifetime)."""
        return sum(t.numel() * t.element_size() for t in self.tensors().values())


def key_positions(video: VideoConfig) -> tuple[int, ...]:
    """Positions (in a virtual window of R + K frames) that supply reference slots 1..R-1."""
    r, k, stride = video.num_refs, video.refresh_every, video.stride
    out = []
    for kf in video.keyframes[1:]:
        frac = (kf - r) / (stride - 1) if stride > 1 else 1.0  # official: 8 -> 5/12, 15 -> 1 of the new frames
        out.append(r + min(max(round(frac * (k - 1)), 0), k - 1))
    return tuple(out)


def allocate_stream_state(dit: DiTVideoConfig, pi3: Pi3Config | None, video: VideoConfig, steps: int,
                          noise: torch.Tensor, device: torch.device | str, dtype: torch.dtype) -> VideoStreamState:
    """Allocate every buffer at its maximum size (``device='meta'`` sizes it without memory).

    ``pi3=None``: a per-frame semantic encoder without a cross-frame cache; the π3 buffers are empty.
    """
    if video.refresh_every > video.stride:
        raise ConfigError(f"refresh_every {video.refresh_every} must not exceed the window stride {video.stride}")
    r, s, d = video.num_refs, video.resolution, dit.hidden_size
    L = dit.fine_grid ** 2
    if pi3 is None:
        n_glob, heads, t_pi3, hd = 0, 0, 0, 0
    else:
        g = video.resolution // pi3.semantic_stride
        n_glob, heads, t_pi3, hd = pi3.dec_depth // 2, pi3.num_heads, pi3.dec_registers + g * g, pi3.dim // pi3.num_heads
    n_rgtp = dit.depth - dit.rgtp_from

    def z(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.zeros(*shape, device=device, dtype=dt)

    return VideoStreamState(
        noise=noise.to(device, torch.float32).clone(), ref_images=z(r, 3, s, s, dt=torch.float32),
        next_images=z(r, 3, s, s, dt=torch.float32), anchors=z(r, s, s, dt=torch.float32),
        next_anchors=z(r, s, s, dt=torch.float32),
        ref_tokens=z(steps, n_rgtp, r * dit.ref_tokens_per_frame, d),
        ref_temporal=z(steps, dit.num_temporal, L, r, d),
        recent_temporal=z(steps, dit.num_temporal, L, video.temporal_frames, d),
        pi3_keys=z(n_glob, heads, r, t_pi3, hd),
        pi3_values=z(n_glob, heads, r, t_pi3, hd),
        thumb=z(THUMB, THUMB, dt=torch.float32), prev=z(1, 1, s, s, dt=torch.float32),
        small=z(max(1, s // MOTION_DIV), max(1, s // MOTION_DIV), dt=torch.float32),
        ref_index=z(r, dt=torch.int64), next_index=z(r, dt=torch.int64),
        key_positions=key_positions(video), ref_stamps=[None] * r, next_stamps=[None] * r)


def new_stream_state(pipe: "PPVDPipeline", noise: torch.Tensor) -> VideoStreamState:
    # residual streams are float32 even under autocast; caching in the compute dtype halves memory
    dtype = torch.float32 if pipe.dtype == torch.float32 else pipe.dtype
    # encoders without cross-frame attention (models/small_video_semantics.py) say so and get no π3 cache
    pi3 = pipe.encoder.cfg if getattr(pipe.encoder, "cross_frame_cache", True) else None
    return allocate_stream_state(pipe.dit.cfg, pi3, pipe.video, pipe.cfg.steps, noise,
                                 pipe.device, dtype)


class _RefPassContext:
    """The reference set as a window of its own; records what later frames will attend to."""

    def __init__(self, state: VideoStreamState, cfg: DiTVideoConfig) -> None:
        self.state, self.cfg, self.step = state, cfg, 0

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        refs = pool_tokens(tok, self.cfg.fine_grid, self.cfg.ref_pool).reshape(-1, tok.shape[-1])  # (r*P, D)
        self.state.ref_tokens[self.step, block - self.cfg.rgtp_from, : refs.shape[0]] = refs
        return refs[None].expand(tok.shape[0], -1, -1)

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        self.state.ref_temporal[self.step, j, :, : tok.shape[1]] = tok  # (L, r, D)
        return None


class _FrameContext:
    """One new frame: cross-frame tokens come from the cache; its own temporal inputs go to the ring."""

    def __init__(self, state: VideoStreamState, cfg: DiTVideoConfig) -> None:
        self.state, self.cfg, self.step = state, cfg, 0

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        st = self.state
        refs = st.ref_tokens[self.step, block - self.cfg.rgtp_from, : st.num_refs * self.cfg.ref_tokens_per_frame]
        return refs.to(tok.dtype)[None].expand(tok.shape[0], -1, -1)

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> torch.Tensor | None:
        st = self.state
        extra = torch.cat([st.ref_temporal[self.step, j, :, : st.num_refs],
                           st.recent_temporal[self.step, j, :, : st.ring_count]], dim=1).to(tok.dtype)
        if st.recent_temporal.shape[3]:
            st.recent_temporal[self.step, j, :, st.ring_next] = tok[:, 0]  # after the read: not its own key twice
        return extra


def _reference_pass(pipe: "PPVDPipeline", st: VideoStreamState) -> torch.Tensor:
    """Run the current reference set; fills the caches and returns its raw prediction (r, s, s)."""
    r = st.num_refs
    imgs = st.ref_images[:r]
    sem, kv = pipe.encoder.forward_semantics_with_cache(imgs, None)  # the set's own exact π3
    if kv is not None:  # None: per-frame semantics, nothing to carry
        st.pi3_keys[:, :, :r] = kv.keys
        st.pi3_values[:, :, :r] = kv.values
    noise = st.noise[:1].expand(r, -1, -1, -1) if pipe.video.noise == "fixed" else st.noise[:r]
    pred, _ = pipe.sample(imgs, noise, _RefPassContext(st, pipe.dit.cfg), semantics=sem)
    return pred[:, 0]


def _refresh(pipe: "PPVDPipeline", st: VideoStreamState) -> None:
    """Swap in the next reference set, re-predict it and fit the epoch's affine map onto its anchors."""
    v = pipe.video
    if v.keep_frame0:
        first = 0
    else:  # sliding anchor: the previous set's slot 1 takes slot 0
        first = min(1, st.num_refs - 1)
    st.next_images[0], st.next_anchors[0], st.next_index[0] = \
        st.ref_images[first], st.anchors[first], st.ref_index[first]
    st.next_stamps[0] = st.ref_stamps[first]
    st.ref_images.copy_(st.next_images)
    st.ref_index.copy_(st.next_index)
    st.ref_stamps[:] = st.next_stamps
    st.anchors.copy_(st.next_anchors)
    st.num_refs = v.num_refs
    raw = _reference_pass(pipe, st)
    s, b = fit_scale_shift(raw.float().cpu().numpy(), st.anchors.cpu().numpy())
    st.scale, st.shift = float(s), float(b)
    st.position = v.num_refs
    st.epoch += 1


def _should_reset(pipe: "PPVDPipeline", st: VideoStreamState, image: torch.Tensor, hw: tuple[int, int],
                  stamp: object) -> str:
    """'resize', 'time_jump', 'scene_cut' or '' for this frame; always remembers the frame's thumbnail."""
    v = pipe.video
    thumb = grey_thumb(image)  # (16, 16) grey
    cut = st.num_refs > 0 and is_scene_cut(thumb, st.thumb, v.scene_cut_threshold)
    st.thumb.copy_(thumb)
    if st.in_hw is not None and hw != st.in_hw:
        return "resize"
    if v.reset_on_time_jump and is_time_jump(stamp, st.last_stamp):
        return "time_jump"
    return "scene_cut" if cut else ""


@torch.inference_mode()
def push_stream(pipe: "PPVDPipeline", st: VideoStreamState, frame: np.ndarray, stamp: object) -> list[DepthResult]:
    """Process one frame and return exactly its result."""
    t0 = time.perf_counter()
    image = pipe.prepare(frame)  # (1, 3, s, s); validates the frame
    hw = (int(frame.shape[0]), int(frame.shape[1]))
    reason = _should_reset(pipe, st, image, hw, stamp)
    if reason:
        st.reset(reason)
    st.in_hw = hw
    continuity, st.pending = st.pending, ""
    small = grey_small(image)
    mov = motion(small, st.small) if st.prev_valid else float("inf")
    st.last_stamp = stamp
    steps = len(pipe.sampler.timesteps)
    if st.num_refs == 0:  # stream start: the frame is the first reference and is its own window
        st.ref_images[0] = image[0]
        st.ref_index[0] = st.frames
        st.ref_stamps[0] = stamp
        st.num_refs, st.position, st.ring_count, st.ring_next = 1, 1, 0, 0
        pred = _reference_pass(pipe, st)[0]  # (s, s)
        st.anchors[0] = pred
        st.next_images[0], st.next_anchors[0] = image[0], pred
        st.next_stamps[0] = stamp
        st.prev[0, 0] = pred.float() - 0.5
        st.small.copy_(small)
        st.prev_valid = True
        aligned, start, evals = pred.float(), 0, steps
    else:
        evals = 0
        if st.position >= pipe.video.num_refs + pipe.video.refresh_every:
            _refresh(pipe, st)
            evals += st.num_refs * steps
        start = pipe.cfg.warm_start_step if pipe.cfg.warm_start_active and mov <= pipe.cfg.motion_threshold else 0
        aligned = _new_frame(pipe, st, image, start)
        if start == 0:  # a cold frame is the next anchor (see image.py: warm results are not fed back)
            st.small.copy_(small)
        evals += steps - start
    st.frames += 1
    out = DepthResult(depth=pipe.to_output(aligned[None, None], frame.shape[:2])[0],
                      depth_model=aligned.cpu().numpy(), index=st.frames - 1,
                      timings_ms={"frame": (time.perf_counter() - t0) * 1e3}, stamp=stamp,
                      window_index=st.epoch, reference_stamps=tuple(st.ref_stamps[: st.num_refs]),
                      warm=start > 0, continuity=continuity, dit_evals=evals, motion=mov)
    return [out]


def _new_frame(pipe: "PPVDPipeline", st: VideoStreamState, image: torch.Tensor, start: int = 0) -> torch.Tensor:
    pos = st.position
    past = GlobalKV(st.pi3_keys[:, :, : st.num_refs], st.pi3_values[:, :, : st.num_refs])
    sem, _ = pipe.encoder.forward_semantics_with_cache(image, past)
    init = st.noise[:1] if pipe.video.noise == "fixed" else st.noise[pos: pos + 1]
    if start:
        init = renoise(st.prev, init, int(pipe.sampler.timesteps[start]))
    # a warm frame writes its ring entry only for the steps it runs; the skipped slots keep an older frame's
    # tokens, still a frame of this stream (the ring is a bounded set of recent context, not exact history)
    pred, _ = pipe.sample(image, init, _FrameContext(st, pipe.dit.cfg), semantics=sem, start=start)
    if not start:
        st.prev.copy_(pred.float() - 0.5)
        st.prev_valid = True
    aligned = (st.scale * pred[0, 0].float() + st.shift)  # (s, s)
    m = st.recent_temporal.shape[3]
    if m:
        st.ring_next = (st.ring_next + 1) % m
        st.ring_count = min(st.ring_count + 1, m)
    for slot, kp in enumerate(st.key_positions, start=1):
        if pos == kp:
            st.next_images[slot], st.next_anchors[slot], st.next_index[slot] = image[0], aligned, st.frames
            st.next_stamps[slot] = st.last_stamp  # push_stream stored this frame's stamp first
    st.position += 1
    return aligned


def flush_stream(pipe: "PPVDPipeline", st: VideoStreamState) -> list[DepthResult]:
    """Nothing is pending in streaming mode; ends the stream (the next frame starts a new one)."""
    st.reset("request")
    return []


def describe_stream_state(dit: DiTVideoConfig, pi3: Pi3Config, video: VideoConfig, steps: int = 4,
                          dtype: torch.dtype = torch.bfloat16) -> dict[str, int]:
    """Bytes per state tensor for a configuration, computed on the meta device (nothing allocated)."""
    s = video.resolution
    st = allocate_stream_state(dit, pi3, video, steps, torch.zeros(video.window, 1, s, s, device="meta"),
                               "meta", dtype)
    return {k: t.numel() * t.element_size() for k, t in st.tensors().items()}


def print_stream_state_size(dtype: torch.dtype = torch.bfloat16, video: VideoConfig | None = None) -> int:
    """Print the streaming state's size for the released models at 512x512; returns total bytes."""
    from ..config import preset
    video = video or preset("ppvd_video")
    sizes = describe_stream_state(preset("ppvd_dit_video"), preset("pi3"), video, 4, dtype)
    print(f"VideoStreamState, released DiT_Video + π3, {video.resolution}x{video.resolution}, 4 steps, "
          f"caches in {str(dtype).replace('torch.', '')}, {video.temporal_frames} recent frames:")
    for name, n in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<16} {n / 2**20:10.2f} MiB")
    total = sum(sizes.values())
    print(f"  {'total':<16} {total / 2**20:10.2f} MiB")
    return total


if __name__ == "__main__":
    print_stream_state_size()
    print_stream_state_size(torch.bfloat16, VideoConfig(temporal_frames=0))
