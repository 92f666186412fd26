"""Metric stage: PPD's relative depth -> metres with MoGe-2 (scale) and the camera (intrinsics).

Per frame: (on refresh frames) MoGe-2 predicts metric depth, a validity mask and normalised
intrinsics on the PPD working image; the official RANSAC fit ``log(1+d_moge) ~ a*rel + b`` maps PPD's
relative depth to metres (``geometry.fit_log_depth_ransac``). Between refreshes the last (smoothed)
map is reused. Intrinsics: a calibrated camera's rectified P scaled to the output resolution, else
MoGe-2's prediction (returned so the node can publish a CameraInfo).

``SharedMoGe2`` lets PPD (MoGe-2 semantics) and this stage run the ViT encoder once per frame.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol

import cv2
import numpy as np
import torch

from ..checkpoints import load_model
from ..config import DiTConfig, InferenceConfig, MoGe2Config, preset
from ..errors import ConfigError, InputError
from ..geometry import apply_log_depth_fit, fit_log_depth_ransac, upsample_depth
from ..intrinsics import CameraIntrinsics, fov_x_degrees
from ..models.dit import DiT
from ..models.moge2 import MoGe2Encoding, MoGe2Model, semantics_grid
from ..preprocess import check_rgb_u8, to_tensor
from ..runtime import set_attention_backend
from .image import DepthResult, PPDPipeline
from .moge import MoGe2Prediction, load_moge2, postprocess


class MoGe2Predictor(Protocol):
    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction: ...


class SharedMoGe2:
    """One MoGe-2 encoder pass per frame for both PPD's semantics and the metric stage.

    Both consumers see the PPD working image (multiples of 16), so the encoder runs at PPD's grid
    (H//16, W//16) for both; the encoding of the last image is cached and reused when the next call
    brings an equal tensor. (Unshared MoGe-2 would run at its token-budget grid instead, e.g. 51x69
    rather than 48x64 at 768x1024; both lie inside MoGe-2's trained 1200-3600 token range.)
    """

    def __init__(self, model: MoGe2Model, use_fp16: bool = False) -> None:
        self.model = model.eval().requires_grad_(False)
        self.use_fp16 = use_fp16
        self.encoder_runs = 0
        self._image: torch.Tensor | None = None
        self._enc: MoGe2Encoding | None = None

    def encoding(self, image: torch.Tensor) -> MoGe2Encoding:
        """Cached encoding of ``image`` (B, 3, H, W); recomputed when the image changes."""
        if self._enc is not None and self._image is not None and self._image.shape == image.shape \
                and self._image.device == image.device and torch.equal(self._image, image):
            return self._enc
        self._enc = self.model.encode(image, semantics_grid(*image.shape[-2:]))
        self._image = image.detach().clone()
        self.encoder_runs += 1
        return self._enc

    def forward_semantics(self, image: torch.Tensor) -> torch.Tensor:
        """The PPD semantic-encoder interface: (B, (H//16)*(W//16), dim_out)."""
        return self.model.semantics_from(self.encoding(image))

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction:
        dev = next(self.model.parameters()).device
        image = image.to(dev, torch.float32)
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=self.use_fp16):
            enc = self.encoding(image)
            if not self.use_fp16:  # PPD may have encoded under bf16/fp16 autocast
                enc = MoGe2Encoding(enc.features.float(), enc.cls_token.float())
            raw = self.model.decode(enc, tuple(image.shape[-2:]))
        return postprocess(raw, fov_x)

    def clear(self) -> None:
        self._image = self._enc = None


@dataclass(frozen=True)
class MetricConfig:
    """Run-time knobs of the metric stage."""

    refresh_every: int = 1  # run MoGe-2 + RANSAC every N frames; reuse the last map in between
    # Temporal stability of a stream (docs/stable_streams.md). The per-frame fit alone jumps (RANSAC samples
    # differ from frame to frame); these defaults were chosen with bench/bench_stability.py.
    smoothing: float = 0.95  # EMA weight of the held (a, b, max_depth) at a refresh, in [0, 1)
    adapt_threshold: float = 0.2  # median |change of log(1+d)| of a new fit above which the held map jumps
    # to it at once (a real scale change: zoom, new scene) instead of easing in; <= 0: always smooth
    reseed_fit: bool = True  # restart the RANSAC generator at every fit: equal inputs give equal fits
    use_camera_fov: bool = True  # calibrated camera: give MoGe-2 its FoV so only the shift is solved
    output: Literal["model", "input"] = "model"  # PPD working resolution, or the frame's (edge-preserving)
    principal_point: Literal["opencv", "official"] = "opencv"  # predicted K: (W-1)/2 or official W/2
    scaling: Literal["pixel_center", "image_proc"] = "pixel_center"  # CameraInfo -> output resolution
    edge_threshold: float = 0.05  # relative depth jump treated as an edge when upsampling to "input"

    def __post_init__(self) -> None:
        if self.refresh_every < 1:
            raise ConfigError(f"refresh_every must be >= 1, got {self.refresh_every}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.adapt_threshold < 0:
            raise ConfigError(f"adapt_threshold must be >= 0, got {self.adapt_threshold}")
        if self.edge_threshold <= 0:
            raise ConfigError(f"edge_threshold must be > 0, got {self.edge_threshold}")


@dataclass
class MetricState:
    """Per-stream state, owned by the caller: RANSAC generator, held scale map, MoGe-2 intrinsics."""

    seed: int
    rng: np.random.RandomState
    a: float | None = None  # held log-space scale (None until the first successful refresh)
    b: float = 0.0
    max_depth: float = 0.0
    moge_scale: float = float("nan")
    branch: str = ""
    K_norm: np.ndarray | None = None  # last MoGe-2 normalised intrinsics
    age: int = 0  # frames since the held map was fitted
    frames: int = 0
    resets: int = 0
    jumps: int = 0  # refreshes where the held map jumped to the new fit (adapt_threshold)

    def reset(self) -> None:
        """Forget the scale and intrinsics and reseed the generator (same stream as new_state(seed))."""
        self.rng = np.random.RandomState(self.seed)
        self.a, self.b, self.max_depth, self.moge_scale, self.branch = None, 0.0, 0.0, float("nan"), ""
        self.K_norm, self.age, self.frames = None, 0, 0
        self.resets += 1


@dataclass
class MetricResult:
    """Metric depth for one frame, with the intrinsics that belong to it."""

    depth: np.ndarray  # (H, W) float32 metres; NaN invalid, +inf outside MoGe-2's mask (sky etc.)
    intrinsics: CameraIntrinsics  # of ``depth``'s resolution (rectified, distortion-free)
    intrinsics_predicted: bool  # True: from MoGe-2 (publish them), False: from the CameraInfo
    scale: float  # a in log(1+d) = a*rel + b
    shift: float  # b
    max_depth: float  # metres; the fit's cap (largest valid MoGe-2 depth)
    moge_metric_scale: float  # MoGe-2's own metric scale at the last refresh
    scale_age_frames: int  # 0 when refreshed on this frame
    refreshed: bool
    branch: str  # "ransac", "mean_ratio", "identity" (the fit that produced the held map)
    index: int = 0
    stamp: object = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def working_image(rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H0, W0, 3) uint8 RGB -> (1, 3, h, w) float32 [0, 1], resized as PPD's ``prepare`` does."""
    h, w = size
    if rgb.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if h * w < rgb.shape[0] * rgb.shape[1] else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (w, h), interpolation=interp)
    return to_tensor(rgb)


class MetricStage:
    """Relative ``DepthResult`` + RGB frame (+ CameraInfo) -> ``MetricResult`` in metres."""

    def __init__(self, moge: MoGe2Predictor, cfg: MetricConfig | None = None) -> None:
        self.moge = moge
        self.cfg = cfg or MetricConfig()

    def new_state(self, seed: int = 666) -> MetricState:
        """Fresh per-stream state; ``seed`` 666 is the official run_point_cloud.py seed."""
        return MetricState(seed=seed, rng=np.random.RandomState(seed))

    def __call__(self, state: MetricState, result: DepthResult, rgb: np.ndarray,
                 camera: CameraIntrinsics | None = None, image: torch.Tensor | None = None) -> MetricResult:
        """``image``: the (1, 3, h, w) tensor PPD ran on, if at hand (else rebuilt from ``rgb``).

        A result that (re)starts its stream (non-empty ``continuity``) resets the temporal smoothing.
        """
        t0 = time.perf_counter()
        if getattr(result, "continuity", ""):
            state.reset()
        timings: dict[str, float] = {}
        check_rgb_u8(rgb)
        rel = np.asarray(result.depth_model, dtype=np.float32)
        if rel.ndim != 2:
            raise InputError(f"depth_model must be (h, w), got {rel.shape}")
        h, w = rel.shape
        H0, W0 = rgb.shape[:2]
        calibrated = camera is not None and camera.is_calibrated
        if calibrated:
            camera.check_image(W0, H0)
        refreshed = state.a is None or state.age + 1 >= self.cfg.refresh_every
        mask = None
        if refreshed:
            fov = fov_x_degrees(camera.rectified(w, h, self.cfg.scaling).fx, w) \
                if calibrated and self.cfg.use_camera_fov else None
            mask = self._refresh(state, rel, image if image is not None else working_image(rgb, (h, w)), fov,
                                 need_k=not calibrated)
            refreshed = mask is not None
            timings["moge_and_fit"] = (time.perf_counter() - t0) * 1e3
        if not refreshed:
            state.age += 1
        if not calibrated and state.K_norm is None:
            raise InputError("no intrinsics: the camera is uncalibrated and MoGe-2 has not produced a usable focal")
        depth = self._metric(state, rel, mask)
        if self.cfg.output == "input" and (H0, W0) != (h, w):
            depth = self._upsample(depth, rgb)
        oh, ow = depth.shape
        K = camera.rectified(ow, oh, self.cfg.scaling) if calibrated else \
            CameraIntrinsics.from_normalized(state.K_norm, ow, oh, self.cfg.principal_point)
        state.frames += 1
        timings["metric_total"] = (time.perf_counter() - t0) * 1e3
        return MetricResult(depth=depth, intrinsics=K, intrinsics_predicted=not calibrated, scale=state.a,
                            shift=state.b, max_depth=state.max_depth, moge_metric_scale=state.moge_scale,
                            scale_age_frames=state.age, refreshed=refreshed, branch=state.branch,
                            index=result.index, stamp=result.stamp, timings_ms=timings)

    def _refresh(self, state: MetricState, rel: np.ndarray, image: torch.Tensor, fov: float | None,
                 need_k: bool) -> np.ndarray | None:
        """Run MoGe-2 and the RANSAC fit; update the held map. None (state kept) on a degenerate frame."""
        pred = self.moge.predict(image, fov)
        focal = float(pred.focal[0])
        mask = pred.mask[0].cpu().numpy() & np.isfinite(rel)
        usable_k = math.isfinite(focal) and focal > 0  # degenerate maps give focal <= 0
        if not mask.any() or (need_k and not usable_k):
            if state.a is None:
                why = "an empty validity mask" if not mask.any() else f"a non-positive focal ({focal:g})"
                raise InputError(f"MoGe-2 gave {why} and no earlier scale exists; frame dropped")
            return None
        if self.cfg.reseed_fit:
            state.rng = np.random.RandomState(state.seed)
        fit = fit_log_depth_ransac(rel, pred.depth[0].cpu().numpy(), mask, state.rng)
        k = self.cfg.smoothing if state.a is not None else 0.0
        if k and self.cfg.adapt_threshold > 0:
            x = rel[mask]
            change = float(np.median(np.abs((fit.a - state.a) * x + (fit.b - state.b))))
            if change > self.cfg.adapt_threshold:
                k = 0.0
                state.jumps += 1
        state.a = k * state.a + (1 - k) * fit.a if state.a is not None else fit.a
        state.b = k * state.b + (1 - k) * fit.b
        state.max_depth = k * state.max_depth + (1 - k) * fit.max_depth
        state.branch, state.moge_scale, state.age = fit.branch, float(pred.metric_scale[0]), 0
        if usable_k:
            state.K_norm = pred.intrinsics[0].cpu().numpy().astype(np.float64)
        publish = getattr(pred, "publish", None)  # a calibrated publication mask (embedded model), else the fit's
        return mask if publish is None else publish[0].cpu().numpy() & np.isfinite(rel)

    def _metric(self, state: MetricState, rel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        depth = apply_log_depth_fit(rel, state.a, state.b, state.max_depth)
        if mask is not None:
            outside = ~mask
        else:
            # held frames have no fresh mask: what the map sends past its cap is "too far" (+inf)
            outside = np.float32(state.a) * rel + np.float32(state.b) > np.float32(math.log1p(state.max_depth))
        depth = np.where(outside, np.float32(np.inf), depth)
        return np.where(np.isfinite(rel), depth, np.float32(np.nan)).astype(np.float32)

    def _upsample(self, depth: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """Edge-preserving resize to the frame size; +inf regions follow the nearest source pixel."""
        H0, W0 = rgb.shape[:2]
        out = upsample_depth(depth, (H0, W0), self.cfg.edge_threshold, guide=rgb)
        far = cv2.resize(np.isposinf(depth).astype(np.uint8), (W0, H0), interpolation=cv2.INTER_NEAREST) > 0
        return np.where(far, np.float32(np.inf), out).astype(np.float32)


def ppd_with_moge2(dit: DiT, moge: MoGe2Model, cfg: InferenceConfig | None = None,
                   metric_cfg: MetricConfig | None = None) -> tuple[PPDPipeline, MetricStage]:
    """PPD (MoGe-2 semantics, ppd_moge.pth) and a metric stage sharing one encoder pass per frame."""
    if dit.cfg.semantics_dim != moge.cfg.dim_out:
        raise ConfigError(f"DiT expects {dit.cfg.semantics_dim}-wide semantics, MoGe-2 gives {moge.cfg.dim_out}")
    cfg = cfg or InferenceConfig()
    pipe = PPDPipeline(dit, SharedMoGe2(moge), cfg)  # the adaptor is not a Module: move the model here
    moge.to(pipe.device).eval().requires_grad_(False)
    set_attention_backend(moge, cfg.attention_backend)
    return pipe, MetricStage(pipe.encoder, metric_cfg)


def ppd_with_moge2_from_checkpoints(dit_path: str, moge_path: str, cfg: InferenceConfig | None = None,
                                    metric_cfg: MetricConfig | None = None,
                                    dit_cfg: DiTConfig | None = None,
                                    moge_cfg: MoGe2Config | None = None) -> tuple[PPDPipeline, MetricStage]:
    """Official ppd_moge.pth (DiT) + MoGe-2 model.pt, loaded strictly, sharing the encoder.

    ``dit_cfg``/``moge_cfg`` override the full-size architectures (reduced test models).
    """
    dcfg = dit_cfg or preset("ppd_dit")
    dit = load_model(lambda: DiT(dcfg), dit_path, "ppd_dit")
    return ppd_with_moge2(dit, load_moge2(moge_path, moge_cfg), cfg, metric_cfg)
