"""Settings -> the pipeline (image / video_exact / video_stream) and the optional metric stage.

The node only sees ``Models``: ``pipeline`` with the streaming surface ``new_stream() / push(state,
frame, stamp) -> list[DepthResult] / flush(state)`` and ``metric`` (a ``MetricStage`` or None).
Errors are raised as ``CheckpointError`` / ``ConfigError`` / ``WeightsError`` with one-line messages;
the node turns them into a configure FAILURE.

``model`` names one of ``hub.MODELS`` (``ppd``, ``ppd_moge2``, ``ppvd``): its files resolve from the
Hugging Face cache (never downloaded here; a missing file fails with the ``ppd-ros weights fetch``
command), an explicit ``*_checkpoint`` path replaces the cached file of its role, and the ``*_preset``
parameters replace the registry's full-size architectures (reduced test models).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import InferenceConfig, preset
from ..errors import CheckpointError, ConfigError, PPDError
from ..hub import MODELS, entry, require
from .params import NodeSettings


class StreamingPipeline(Protocol):
    """What the worker needs from a pipeline (PPDPipeline and the PPVD pipelines have it)."""

    def new_stream(self, seed: int | None = None) -> Any: ...

    def push(self, state: Any, frame: Any, stamp: object = None) -> list: ...

    def flush(self, state: Any) -> list: ...


@dataclass
class Models:
    """Everything configure loads: one instance per process, shared by all cameras."""

    pipeline: StreamingPipeline
    metric: Any | None  # MetricStage: new_state(seed), __call__(state, result, rgb, intrinsics)
    name: str  # for status.model ("embedded", "ppd_dit", a file stem, ...)
    metric_note: str = ""  # why metric is off, when it is
    speedups: Any = None  # runtime.AppliedSpeedups of pipeline + metric stage (None: REFERENCE path)

    def release(self) -> None:
        """Drop the model references and return cached GPU memory."""
        self.pipeline = None  # type: ignore[assignment]
        self.metric = None
        release_device_memory()


def release_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - torch without CUDA runtime
        pass


OFFICIAL_STEPS = 4  # checkpoints keep the official step count (their quality cannot be measured here)


def default_steps(s: NodeSettings) -> int:
    """``steps`` 0 = the model's stream default (embedded: measured by bench/bench_stability.py)."""
    if s.steps:
        return s.steps
    if s.model == "checkpoints":
        return OFFICIAL_STEPS
    embedded = _optional("ppd_ros.embedded")
    return int(getattr(embedded, "EMBEDDED_STREAM_STEPS", OFFICIAL_STEPS)) if embedded else OFFICIAL_STEPS


def inference_config(s: NodeSettings) -> InferenceConfig:
    return InferenceConfig(steps=default_steps(s), device=s.device, dtype=s.precision, target_area=s.working_area,
                           seed=s.seed, speedups=s.speedups, noise=s.noise, warm_start=s.warm_start,
                           warm_start_step=s.warm_start_step, motion_threshold=s.motion_threshold)


def _optional(module: str) -> Any | None:
    """Import a sibling module that another part of the project may not have landed yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def named_files(s: NodeSettings) -> dict[str, str]:
    """Role (dit, semantics, metric) -> file of a by-name ``model``: explicit paths first, then the cache."""
    spec = MODELS[s.model]
    roles = {"dit": spec.dit, "semantics": spec.semantics}
    if s.metric and spec.metric:
        roles["metric"] = spec.metric
    explicit = {"dit": s.dit_checkpoint, "semantics": s.semantics_checkpoint, "metric": s.metric_checkpoint}
    cached = require([n for r, n in roles.items() if not explicit[r]], s.weights_cache_dir or None)
    return {r: explicit[r] or str(cached[n]) for r, n in roles.items()}


def _named_preset(override: str, name: str) -> Any:
    """The architecture of a registry file: the ``*_preset`` parameter, else the registry's (full size)."""
    return preset(override or entry(name).preset)


def _named_image_pipeline(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any, Any | None]:
    """(pipeline, metric stage or None) for model ppd / ppd_moge2."""
    from ..pipelines import PPDPipeline
    spec, files = MODELS[s.model], named_files(s)
    dit_cfg = _named_preset(s.dit_preset, spec.dit)
    if s.model == "ppd_moge2":  # one MoGe-2 pass feeds the DiT's semantics and the metric stage
        from ..pipelines.metric import MetricConfig, ppd_with_moge2_from_checkpoints
        pipe, stage = ppd_with_moge2_from_checkpoints(
            files["dit"], files["semantics"], cfg, MetricConfig(refresh_every=s.metric_refresh_every,
                                                                output=s.output_resolution),
            dit_cfg=dit_cfg, moge_cfg=_named_preset(s.semantics_preset, spec.semantics))
        return pipe, (stage if s.metric else None)
    pipe = PPDPipeline.from_checkpoints(files["dit"], files["semantics"], cfg, dit_cfg,
                                        _named_preset(s.semantics_preset, spec.semantics))
    return pipe, None


def _image_pipeline(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any, str]:
    from ..pipelines import PPDPipeline
    if s.model in MODELS:
        return _named_image_pipeline(s, cfg)[0], s.model
    if s.model == "checkpoints":
        pipe = PPDPipeline.from_checkpoints(s.dit_checkpoint, s.semantics_checkpoint, cfg,
                                            preset(s.dit_preset or "ppd_dit"),
                                            preset(s.semantics_preset or "da2_vitl"))
        return pipe, s.dit_preset or "ppd_dit"
    embedded = _optional("ppd_ros.embedded")
    if embedded is None:
        raise CheckpointError("model 'embedded' needs ppd_ros.embedded (not installed); set model:=checkpoints "
                              "with dit_checkpoint and semantics_checkpoint")
    name = s.model.partition(":")[2] or "default"
    return embedded.load_embedded_image_pipeline(name, cfg), f"embedded:{name}"


class VideoStream:
    """PPVD with the node's stream mode bound: ``new_stream(seed)`` like the image pipeline."""

    def __init__(self, pipe: Any, mode: str, noise: str | None = None) -> None:
        self.pipe, self.mode = pipe, mode
        if noise is not None and getattr(pipe, "video", None) is not None:  # streaming noise policy
            from dataclasses import replace
            pipe.video = replace(pipe.video, noise=noise)

    def new_stream(self, seed: int | None = None) -> Any:
        return self.pipe.new_stream(self.mode, seed=seed)

    def push(self, state: Any, frame: Any, stamp: object = None) -> list:
        return self.pipe.push(state, frame, stamp)

    def flush(self, state: Any) -> list:
        return self.pipe.flush(state)


def _video_pipeline(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any, str]:
    video = _optional("ppd_ros.pipelines.video")
    if video is None:
        raise ConfigError(f"mode {s.mode!r} needs ppd_ros.pipelines.video (not installed); use mode:=image")
    mode = "stream" if s.mode == "video_stream" else "exact"
    if s.model in MODELS:
        spec, files = MODELS[s.model], named_files(s)
        pipe = video.PPVDPipeline.from_checkpoints(files["dit"], files["semantics"], cfg,
                                                   dit_cfg=_named_preset(s.dit_preset, spec.dit),
                                                   pi3_cfg=_named_preset(s.semantics_preset, spec.semantics))
        return VideoStream(pipe, mode), s.model
    if s.model == "checkpoints":
        dit_preset = s.dit_preset or "ppvd_dit_video"
        pipe = video.PPVDPipeline.from_checkpoints(s.dit_checkpoint, s.semantics_checkpoint, cfg,
                                                   dit_cfg=preset(dit_preset),
                                                   pi3_cfg=preset(s.semantics_preset or "pi3"))
        return VideoStream(pipe, mode, s.noise), dit_preset
    embedded = _optional("ppd_ros.embedded")
    loader = getattr(embedded, "load_embedded_video_pipeline", None) if embedded else None
    if loader is None:
        raise CheckpointError(f"no embedded video model is installed; set model:=checkpoints for mode {s.mode!r}")
    name = s.model.partition(":")[2] or "default"
    return VideoStream(loader(name, cfg), mode, s.noise), f"embedded:{name}"


def _metric_stage(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any | None, str]:
    """The metric stage, or (None, why not). An explicit metric_checkpoint that fails is an error."""
    if not s.metric:
        return None, "metric scaling off (parameter metric=false)"
    metric = _optional("ppd_ros.pipelines.metric")
    if metric is None:
        return None, "metric stage not installed (ppd_ros.pipelines.metric)"
    if s.model in MODELS:
        files = named_files(s)  # the cached MoGe-2 unless metric_checkpoint names another file
        mcfg = _named_preset(s.metric_preset, MODELS[s.model].metric) if "metric" in files else None
        return _moge2_stage(s, cfg, metric, files.get("metric"), mcfg), ""
    if s.metric_checkpoint:
        return _moge2_stage(s, cfg, metric), ""
    embedded = _optional("ppd_ros.embedded")
    loader = getattr(embedded, "load_embedded_metric_stage", None) if embedded else None
    if loader is None:
        return None, "no metric model (set metric_checkpoint to MoGe-2 weights)"
    mcfg = metric.MetricConfig(refresh_every=s.metric_refresh_every, output=s.output_resolution,
                               smoothing=s.metric_smoothing)
    kwargs = {"metric_cfg": mcfg} if "metric_cfg" in inspect.signature(loader).parameters else {}
    try:
        return loader(s.model.partition(":")[2] or "default", cfg, **kwargs), ""
    except PPDError as exc:  # no embedded metric model shipped: relative depth is still useful
        return None, str(exc)


def _moge2_stage(s: NodeSettings, cfg: InferenceConfig, metric: Any, path: str | None = None,
                 config: Any | None = None) -> Any:
    """MetricStage over a MoGe-2 checkpoint (official model.pt, or .safetensors + metric_preset)."""
    from ..pipelines.moge import MoGe2Runner, load_moge2
    from ..runtime import resolve_device
    if config is None and s.metric_preset:
        config = preset(s.metric_preset)
    model = load_moge2(path or s.metric_checkpoint, config)
    model = model.to(resolve_device(cfg.device))
    mcfg = metric.MetricConfig(refresh_every=s.metric_refresh_every, output=s.output_resolution,
                               smoothing=s.metric_smoothing)
    return metric.MetricStage(MoGe2Runner(model, num_tokens=s.metric_tokens or None), mcfg)


def build_models(s: NodeSettings) -> Models:
    """Load and verify everything a configure needs; raises CheckpointError / ConfigError."""
    cfg = inference_config(s)
    if s.cpu_threads:
        import torch
        torch.set_num_threads(s.cpu_threads)  # process-wide: the node owns its process
    if s.model == "ppd_moge2":  # pipeline and metric stage share one MoGe-2
        pipe, stage = _named_image_pipeline(s, cfg)
        return Models(pipeline=pipe, metric=stage, name=s.model,
                      metric_note="" if stage else "metric scaling off (parameter metric=false)")
    pipe, name = _image_pipeline(s, cfg) if s.mode == "image" else _video_pipeline(s, cfg)
    stage, note = _metric_stage(s, cfg)
    return Models(pipeline=pipe, metric=stage, name=name, metric_note=note,
                  speedups=_speedups(cfg, pipe, stage))


def _speedups(cfg: InferenceConfig, pipe: Any, stage: Any | None) -> Any:
    """runtime.DEFAULT on every model the node runs (outputs within fp32 rounding of the official
    procedure), or nothing when ``speedups`` is off: then the pipelines run runtime.REFERENCE."""
    if not cfg.speedups:
        return None
    from ..runtime import apply_pipeline_speedups, resolve_device, resolve_dtype, speedups_for
    dtype = getattr(getattr(pipe, "pipe", pipe), "dtype", None) or resolve_dtype(cfg.dtype, resolve_device(cfg.device))
    return apply_pipeline_speedups([pipe, stage], speedups_for(cfg), dtype)
