"""The embedded default models: small PPD weights trained here and shipped in ``ppd_ros/weights/``.

Public API (used by ``ppd-ros image --model``, the ROS node's default and the demo):

* ``default_model_dir() -> Path``: the folder holding the shipped ``.safetensors`` and model cards.
* ``available_models() -> list[str]``: names with a model card (``"default"``).
* ``model_card_path(name)`` / ``model_card(name="default") -> dict``: preset names, files, data, steps, seed, metrics, licence.
* ``embedded_inference_config(cfg=None, name="default") -> InferenceConfig``: ``cfg`` with the
  card's working area (and steps when ``cfg`` is None); the embedded model is trained at 128x96 and
  must not run at the official 1024x768 default.
* ``load_embedded_models(name="default") -> (SmallSemanticEncoder, DiT)``: strict safetensors load.
* ``load_embedded_image_pipeline(name="default", cfg=None) -> PPDPipeline``: the same pipeline class
  as the official checkpoints.
* ``load_embedded_metric_stage(name="default", cfg=None, metric_cfg=None) -> MetricStage``: the
  metric stage (``pipelines.metric``) on a small predictor (encoder + metric head) that stands in
  for MoGe-2: metres and, for uncalibrated cameras, a predicted focal.
* ``load_embedded_video_pipeline(...)``: raises ``EmbeddedModelUnavailable`` (no small PPVD yet).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .checkpoints import load_into, read_state_dict
from .config import InferenceConfig, preset
from .errors import PPDError

CARD_SUFFIX = ".json"
_NAME_TO_CARD = {"default": "embedded_ppd", "embedded_ppd": "embedded_ppd"}


class EmbeddedModelUnavailable(PPDError):
    """The requested embedded model (or its weights) is not shipped with this install."""


def default_model_dir() -> Path:
    return Path(__file__).resolve().parent / "weights"


def available_models() -> list[str]:
    return [n for n, stem in _NAME_TO_CARD.items() if (default_model_dir() / f"{stem}{CARD_SUFFIX}").exists()]


def model_card_path(name: str = "default") -> Path:
    stem = _NAME_TO_CARD.get(name)
    if stem is None:
        raise EmbeddedModelUnavailable(f"unknown embedded model {name!r}; known: {', '.join(_NAME_TO_CARD)}")
    return default_model_dir() / f"{stem}{CARD_SUFFIX}"


def model_card(name: str = "default") -> dict:
    """The JSON model card of an embedded model."""
    path = model_card_path(name)
    if not path.exists():
        raise EmbeddedModelUnavailable(f"embedded model {name!r} is not shipped (no {path})")
    return json.loads(path.read_text())


def embedded_inference_config(cfg: InferenceConfig | None = None, name: str = "default") -> InferenceConfig:
    """The run-time settings for an embedded model: its training resolution unless ``cfg`` chose another area."""
    card = model_card(name)
    area = int(card["inference"]["target_area"])
    if cfg is None:
        return InferenceConfig(steps=int(card["inference"]["steps"]), device="cpu", dtype="float32",
                               target_area=area, seed=0)
    if cfg.target_area == InferenceConfig().target_area:  # the official default: far too large here
        cfg = replace(cfg, target_area=area)
    return cfg


def load_embedded_models(name: str = "default"):
    """(SmallSemanticEncoder, DiT) with the shipped weights, loaded strictly on CPU in float32."""
    from .models.dit import DiT
    from .models.small_encoder import SmallSemanticEncoder
    card = model_card(name)
    wd = default_model_dir()
    enc_cfg, dit_cfg = preset(card["encoder_preset"]), preset(card["dit_preset"])
    enc = load_into(lambda: SmallSemanticEncoder(enc_cfg), read_state_dict(wd / card["files"]["encoder"]),
                    f"embedded encoder ({card['files']['encoder']})")
    dit = load_into(lambda: DiT(dit_cfg), read_state_dict(wd / card["files"]["dit"]),
                    f"embedded DiT ({card['files']['dit']})")
    return enc, dit


def load_embedded_image_pipeline(name: str = "default", cfg: InferenceConfig | None = None):
    """A ``PPDPipeline`` running the embedded small PPD."""
    from .pipelines.image import PPDPipeline
    enc, dit = load_embedded_models(name)
    return PPDPipeline(dit, enc, embedded_inference_config(cfg, name))


def load_embedded_metric_stage(name: str = "default", cfg: InferenceConfig | None = None, metric_cfg=None):
    """A ``pipelines.metric.MetricStage`` on the small metric predictor (encoder + metric head)."""
    from .embedded_metric import SmallMetricPredictor
    from .models.small_metric import SmallMetricHead
    from .pipelines.metric import MetricStage
    card = model_card(name)
    head_file = card.get("metric_head", {}).get("file")
    if not head_file or not (default_model_dir() / head_file).exists():
        raise EmbeddedModelUnavailable(f"embedded model {name!r} ships no metric head; depth stays relative")
    enc, _ = load_embedded_models(name)
    head = load_into(SmallMetricHead, read_state_dict(default_model_dir() / head_file), f"metric head ({head_file})")
    return MetricStage(SmallMetricPredictor(enc, head), metric_cfg)


def load_embedded_video_pipeline(name: str = "default", cfg: InferenceConfig | None = None):
    """No small PPVD is shipped yet: callers fall back to ``load_embedded_image_pipeline`` per frame."""
    raise EmbeddedModelUnavailable("no embedded PPVD video model is shipped yet; use the image pipeline "
                                   "(load_embedded_image_pipeline), whose push() streams frame by frame")
