"""Exact chunked PPVD: the official window procedure, fed one frame at a time.

Window 0 holds frames 0..15; every later window holds the previous window's key-frame images
(positions 0, 8, 15 -> its positions 0, 1, 2; position 0 is therefore always frame 0) followed by
the next 13 frames. A window runs when it is full and publishes its new frames at once; the
end of the stream is padded with copies of the last frame (padded outputs are dropped). The same
noise rows are used in every window, and windows are chained onto window 0 by affine fits.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..errors import InputError
from .image import DepthResult
from .video_align import align_to_anchors, next_anchors

if TYPE_CHECKING:
    from .video import PPVDPipeline


@dataclass
class WindowRecord:
    """What one window computed (for parity checks and diagnostics; only built when observed)."""

    index: int
    frame_index: np.ndarray  # (N,) int64 indices into the tail-padded frame list
    semantics: torch.Tensor  # (N, T, S)
    step_latents: list[torch.Tensor]  # latent after each Euler step, (N, 1, s, s) each
    prediction: np.ndarray  # (N, H, W) raw window prediction at the output size
    scale: float
    shift: float


@dataclass
class ChunkedState:
    """Caller-owned state of one exact-mode stream; tensors are allocated once in ``new_stream``."""

    images: torch.Tensor  # (window, 3, s, s) the current window's images by position
    noise: torch.Tensor  # (window, 1, s, s) initial latent rows, one per window position
    frame_index: np.ndarray  # (window,) padded-list index of the frame at each position
    stamps: list[object]  # caller stamps by position
    anchors: np.ndarray | None = None  # (R, H, W) alignment targets; allocated on the first frame
    out_hw: tuple[int, int] | None = None  # output size, fixed by the first frame
    filled: int = 0  # positions of the current window holding images
    window_index: int = 0
    frames_seen: int = 0
    on_window: Callable[[WindowRecord], None] | None = None  # optional observer
    pending: str = "first_frame"  # continuity reason reported by the stream's next first result

    def reset(self, reason: str = "request") -> None:
        """Forget the stream (frame 0, anchors, buffered frames); buffers are kept for reuse.

        Frames buffered in the open window are discarded: call ``flush`` first to get them.
        """
        self.pending = reason
        self.anchors, self.out_hw = None, None
        self.filled = self.window_index = self.frames_seen = 0
        self.stamps = [None] * len(self.stamps)
        self.frame_index[:] = 0


def new_chunked_state(window: int, size: int, noise: torch.Tensor, device: torch.device) -> ChunkedState:
    if tuple(noise.shape) != (window, 1, size, size):
        raise InputError(f"noise must be ({window}, 1, {size}, {size}), got {tuple(noise.shape)}")
    return ChunkedState(images=torch.zeros(window, 3, size, size, device=device),
                        noise=noise.to(device, torch.float32).clone(),
                        frame_index=np.zeros(window, np.int64), stamps=[None] * window)


def push_chunked(pipe: "PPVDPipeline", state: ChunkedState, frame: np.ndarray,
                 stamp: object) -> list[DepthResult]:
    """Buffer one frame; when it completes a window, run it and return the window's new frames."""
    image = pipe.prepare(frame)  # validates the frame
    hw = (int(frame.shape[0]), int(frame.shape[1]))
    if state.out_hw is None:
        state.out_hw = hw
        state.anchors = np.zeros((pipe.video.num_refs, *hw), np.float32)
    elif hw != state.out_hw:
        raise InputError(f"frame size {hw[0]}x{hw[1]} differs from the stream's {state.out_hw[0]}x{state.out_hw[1]}"
                         " (reset the stream to change size)")
    pos = state.filled
    state.images[pos].copy_(image[0])
    state.frame_index[pos] = state.frames_seen
    state.stamps[pos] = stamp
    state.filled += 1
    state.frames_seen += 1
    if state.filled < pipe.video.window:
        return []
    return _run(pipe, state, real=state.filled - _first_new(pipe, state))


def flush_chunked(pipe: "PPVDPipeline", state: ChunkedState) -> list[DepthResult]:
    """End of stream: pad the open window with copies of the last frame, run it, then reset."""
    start = _first_new(pipe, state)
    if state.filled <= start:
        state.reset("request")
        return []
    real = state.filled - start
    last = state.filled - 1
    for k, pos in enumerate(range(state.filled, pipe.video.window)):
        state.images[pos].copy_(state.images[last])
        state.frame_index[pos] = state.frames_seen + k  # index in the official tail-padded list
        state.stamps[pos] = None
    state.filled = pipe.video.window
    results = _run(pipe, state, real)
    state.reset("request")
    return results


def _first_new(pipe: "PPVDPipeline", state: ChunkedState) -> int:
    """Window 0 publishes every position; later windows start after their references."""
    return 0 if state.window_index == 0 else pipe.video.num_refs


def _run(pipe: "PPVDPipeline", state: ChunkedState, real: int) -> list[DepthResult]:
    v = pipe.video
    t0 = time.perf_counter()
    steps: list[torch.Tensor] = []
    observe = state.on_window is not None
    pred, semantics = pipe.sample(state.images, state.noise,
                                  on_step=(lambda i, lat: steps.append(lat.clone())) if observe else None)
    full = pipe.to_output(pred, state.out_hw)  # (N, H, W) float32 numpy
    if state.window_index == 0:
        aligned, s, b = full, np.float32(1.0), np.float32(0.0)
        state.anchors[:] = full[list(v.keyframes)]
    else:
        aligned, s, b = align_to_anchors(full, state.anchors, v.num_refs)
        state.anchors[:] = next_anchors(state.anchors, aligned, v.keyframes)
    model = (float(s) * pred[:, 0] + float(b)).float().cpu().numpy()  # (N, s, s) aligned, working size
    if observe:
        state.on_window(WindowRecord(state.window_index, state.frame_index.copy(), semantics, steps, full,
                                     float(s), float(b)))
    ms = (time.perf_counter() - t0) * 1e3
    start = _first_new(pipe, state)
    evals = round(v.window * len(pipe.sampler.timesteps) / max(real, 1))  # the window's cost per new frame
    results = [DepthResult(depth=aligned[p], depth_model=model[p], index=int(state.frame_index[p]),
                           timings_ms={"window": ms}, stamp=state.stamps[p], window_index=state.window_index,
                           reference_stamps=tuple(state.stamps[: v.num_refs]), dit_evals=evals)
               for p in range(start, start + real)]
    if state.window_index == 0 and results:
        results[0].continuity, state.pending = state.pending, ""
    # carry the key-frame images over as the next window's references
    keys = list(v.keyframes)
    state.images[: v.num_refs] = state.images[keys].clone()
    state.frame_index[: v.num_refs] = state.frame_index[keys]
    state.stamps[: v.num_refs] = [state.stamps[k] for k in keys]
    state.filled = v.num_refs
    state.window_index += 1
    return results
