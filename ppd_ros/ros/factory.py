"""Settings -> the pipeline (image / video_exact / video_stream) and the optional metric stage.

The node only sees ``Models``: ``pipeline`` with the streaming surface ``new_stream() / push(state,
frame, stamp) -> list[DepthResult] / flush(state)`` and ``metric`` (a ``MetricStage`` or None).
Errors are raised as ``CheckpointError`` / ``ConfigError`` with one-line messages; the node turns
them into a configure FAILURE.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import InferenceConfig, preset
from ..errors import CheckpointError, ConfigError
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


def inference_config(s: NodeSettings) -> InferenceConfig:
    return InferenceConfig(steps=s.steps, device=s.device, dtype=s.precision, target_area=s.working_area,
                           seed=s.seed)


def _optional(module: str) -> Any | None:
    """Import a sibling module that another part of the project may not have landed yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def _image_pipeline(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any, str]:
    from ..pipelines import PPDPipeline
    if s.model == "checkpoints":
        pipe = PPDPipeline.from_checkpoints(s.dit_checkpoint, s.semantics_checkpoint, cfg,
                                            preset(s.dit_preset), preset(s.semantics_preset))
        return pipe, s.dit_preset
    embedded = _optional("ppd_ros.embedded")
    if embedded is None:
        raise CheckpointError("model 'embedded' needs ppd_ros.embedded (not installed); set model:=checkpoints "
                              "with dit_checkpoint and semantics_checkpoint")
    name = s.model.partition(":")[2] or "default"
    return embedded.load_embedded_image_pipeline(name, cfg), f"embedded:{name}"


def _video_pipeline(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any, str]:
    video = _optional("ppd_ros.pipelines.video")
    if video is None:
        raise ConfigError(f"mode {s.mode!r} needs ppd_ros.pipelines.video (not installed); use mode:=image")
    streaming = s.mode == "video_stream"
    if s.model == "checkpoints":
        builder = getattr(video, "pipeline_from_checkpoints", None) or video.PPVDPipeline.from_checkpoints
        pipe = builder(s.dit_checkpoint, s.semantics_checkpoint, cfg, preset(s.dit_preset),
                       preset(s.semantics_preset), streaming=streaming)
        return pipe, s.dit_preset
    embedded = _optional("ppd_ros.embedded")
    loader = getattr(embedded, "load_embedded_video_pipeline", None) if embedded else None
    if loader is None:
        raise CheckpointError("no embedded video model is installed; set model:=checkpoints for mode "
                              f"{s.mode!r}")
    name = s.model.partition(":")[2] or "default"
    return loader(name, cfg, streaming=streaming), f"embedded:{name}"


def _metric_stage(s: NodeSettings, cfg: InferenceConfig) -> tuple[Any | None, str]:
    if not s.metric:
        return None, "metric off (parameter metric=false)"
    metric = _optional("ppd_ros.pipelines.metric")
    if metric is None:
        return None, "metric stage not installed (ppd_ros.pipelines.metric)"
    builder = getattr(metric, "build_metric_stage", None)
    if builder is not None:
        return builder(checkpoint=s.metric_checkpoint or None, cfg=cfg, max_depth=s.max_depth), ""
    embedded = _optional("ppd_ros.embedded")
    loader = getattr(embedded, "load_embedded_metric_stage", None) if embedded else None
    if s.metric_checkpoint and hasattr(metric.MetricStage, "from_checkpoint"):
        return metric.MetricStage.from_checkpoint(s.metric_checkpoint, cfg), ""
    if loader is not None:
        return loader(cfg), ""
    return None, "no metric model available (set metric_checkpoint)"


def build_models(s: NodeSettings) -> Models:
    """Load and verify everything a configure needs; raises CheckpointError / ConfigError."""
    cfg = inference_config(s)
    pipe, name = _image_pipeline(s, cfg) if s.mode == "image" else _video_pipeline(s, cfg)
    stage, note = _metric_stage(s, cfg)
    return Models(pipeline=pipe, metric=stage, name=name, metric_note=note)
