"""The embedded default models: small PPD, PPVD and MoGe-2 weights trained here, shipped in ``ppd_ros/weights/``.

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
  metric stage (``pipelines.metric``) on the small MoGe-2 (card ``embedded_moge2.json``, the same
  ``MoGe2Model`` and predictor as the official checkpoint, with the card's calibrated publication threshold):
  metres and, for uncalibrated cameras, a predicted focal.
* ``load_embedded_video_pipeline(name="default", cfg=None) -> PPVDPipeline``: the small PPVD (card
  ``embedded_ppvd.json``: DiT_Video initialised from the small PPD and fine-tuned on synthetic clips)
  on the small PPD's frozen encoder as per-frame semantics; both stream modes.
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


# Euler steps for STREAMS of the embedded models (node, demo). With one fixed noise per stream, 1 step beat 2
# and 4 on the moving clips (AbsRel, GT flicker), held static scenes within 0.01 of the depth spread and ran
# ~3x faster: bench/bench_stability.py, docs/stable_streams.md. The cards' "steps" stay the evaluated value.
EMBEDDED_STREAM_STEPS = 1


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
    """A ``pipelines.metric.MetricStage`` on the shipped small MoGe-2 (preset ``embedded_moge2``).

    The model runs through ``pipelines.moge.MoGe2Runner``, the same predictor (``infer`` + ``postprocess``:
    focal/shift solve, mask, metric scale) as an unshared official MoGe-2; loaded strictly. The PPD
    card may name the MoGe-2 card under ``metric_model.card`` (default ``embedded_moge2.json``).
    """
    from .models.moge2 import MoGe2Model
    from .pipelines.metric import MetricStage
    from .pipelines.moge import MoGe2Runner
    card = model_card(name)
    card_file = card.get("metric_model", {}).get("card", "embedded_moge2.json")
    mpath = default_model_dir() / card_file
    if not mpath.exists():
        raise EmbeddedModelUnavailable(f"embedded model {name!r} ships no small MoGe-2 ({mpath}); depth stays relative")
    mcard = json.loads(mpath.read_text())
    wpath = default_model_dir() / mcard["file"]
    if not wpath.exists():
        raise EmbeddedModelUnavailable(f"small MoGe-2 weights missing: {wpath}")
    mcfg = preset(mcard["preset"])
    model = load_into(lambda: MoGe2Model(mcfg), read_state_dict(wpath), f"embedded MoGe-2 ({mcard['file']})")
    inf = mcard.get("inference", {})
    # publish_threshold: which pixels are published, calibrated on held-out synthetic frames for this small
    # model (train/moge2_mask.py); the fit keeps the official mask_threshold 0.5
    publish = inf.get("publish_threshold")
    return MetricStage(MoGe2Runner(model, resolution_level=float(inf.get("resolution_level", 9)),
                                   mask_threshold=float(inf.get("mask_threshold", 0.5)),
                                   publish_threshold=None if publish is None else float(publish)), metric_cfg)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (the video card pins the image files it was fine-tuned on)."""
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def video_model_card(name: str = "default") -> dict:
    """The small PPVD's card, after checking that the image files it builds on are the ones it was
    fine-tuned on (SHA-256); raises ``EmbeddedModelUnavailable`` otherwise. Loads no model."""
    stem = {"default": "embedded_ppvd", "embedded_ppvd": "embedded_ppvd"}.get(name)
    wd = default_model_dir()
    path = wd / f"{stem}{CARD_SUFFIX}"
    if stem is None or not path.exists():
        raise EmbeddedModelUnavailable(f"no embedded video model {name!r} is shipped (no {path.name})")
    card = json.loads(path.read_text())
    for f, digest in card.get("sha256", {}).items():
        if not (wd / f).exists() or file_sha256(wd / f) != digest:
            raise EmbeddedModelUnavailable(f"embedded video model {name!r} was fine-tuned on another {f}; "
                                           f"retrain it: {card.get('retrain', 'python -m ppd_ros.train.video')}")
    return card


def load_embedded_video_pipeline(name: str = "default", cfg: InferenceConfig | None = None):
    """A ``PPVDPipeline`` on the small DiT_Video + the small encoder's per-frame semantics (strict loads).

    The card's ``dit`` file holds the fine-tuned tensors; the frozen rest comes from the image model's DiT
    file (``dit_rest``), pinned with the encoder by SHA-256: after a re-export of the image model the
    video model must be retrained (its card's ``retrain`` command), and this raises until then.
    """
    from .models.dit_video import DiT_Video
    from .models.small_encoder import SmallSemanticEncoder
    from .models.small_video_semantics import SmallVideoSemantics
    from .pipelines.video import PPVDPipeline
    card = video_model_card(name)
    wd = default_model_dir()
    files = card["files"]
    dit_cfg = preset(card["dit_preset"])
    state = read_state_dict(wd / files["dit"])
    if files.get("dit_rest"):
        rest = read_state_dict(wd / files["dit_rest"])
        state = {**{k: v for k, v in rest.items() if k not in state}, **state}
    dit = load_into(lambda: DiT_Video(dit_cfg), state, f"embedded DiT_Video ({files['dit']} + {files.get('dit_rest')})")
    enc_cfg = preset(card["encoder_preset"])
    enc = load_into(lambda: SmallSemanticEncoder(enc_cfg), read_state_dict(wd / files["encoder"]),
                    f"embedded encoder ({files['encoder']})")
    if cfg is None:
        inf = card["inference"]
        cfg = InferenceConfig(steps=int(inf["steps"]), device="cpu", dtype=inf["dtype"], seed=int(inf["seed"]))
    return PPVDPipeline(dit, SmallVideoSemantics(enc), cfg, preset(card["video_preset"]))
