"""The shipped embedded model: strict loading, and its recorded metrics reproduce on the real frames."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ppd_ros.config import InferenceConfig
from ppd_ros.data.real import load_real_frames
from ppd_ros.embedded import (EmbeddedModelUnavailable, available_models, embedded_inference_config,
                              load_embedded_image_pipeline, load_embedded_metric_stage, load_embedded_video_pipeline,
                              model_card)
from ppd_ros.checkpoints import load_into, read_state_dict
from ppd_ros.config import preset
from ppd_ros.data.synthetic import SynthConfig
from ppd_ros.embedded import default_model_dir
from ppd_ros.errors import CheckpointError
from ppd_ros.models.moge2 import MoGe2Model
from ppd_ros.pipelines import PPDPipeline
from ppd_ros.pipelines.moge import MoGe2Runner
from ppd_ros.train.benchmark import ROWS, evaluate_real
from ppd_ros.train.dataset import frame_pool
from ppd_ros.train.moge2_small import evaluate, evaluate_real_frames, frame_intrinsics

TOL = 2e-3  # CPU float32; same seed and noise, so only summation-order noise remains


@pytest.fixture(scope="module")
def pipe() -> PPDPipeline:
    return load_embedded_image_pipeline("default")


def test_card_describes_the_shipped_files():
    assert "default" in available_models()
    card = model_card()
    for key in ("dit_preset", "encoder_preset", "files", "train_config", "trained_steps", "seed", "data", "licence",
                "inference", "metrics"):
        assert key in card, key
    assert card["metrics"]["command"].startswith("python bench/eval_real.py")
    with pytest.raises(EmbeddedModelUnavailable):
        model_card("no_such_model")


def test_official_default_area_is_replaced_by_the_training_area():
    card = model_card()
    cfg = embedded_inference_config(InferenceConfig(steps=2))
    assert cfg.target_area == card["inference"]["target_area"] and cfg.steps == 2
    assert embedded_inference_config(InferenceConfig(target_area=64 * 64)).target_area == 64 * 64


def test_pipeline_runs_the_same_ppd_code_path(pipe):
    frame = load_real_frames()[0]
    res = pipe(frame.rgb)
    assert isinstance(pipe, PPDPipeline)
    assert res.depth.shape == frame.rgb.shape[:2] and np.isfinite(res.depth).all()
    assert res.depth_model.shape[0] % 16 == 0 and res.depth.std() > 1e-3  # a trained DiT, not noise + 0.5


@pytest.mark.numeric
def test_recorded_real_frame_metrics_reproduce(pipe):
    recorded = model_card()["metrics"]["real"]
    fresh = evaluate_real(pipe)
    for name, rows in recorded.items():
        for row in ROWS:
            for k, v in rows[row].items():
                got = fresh[name][row][k]
                assert (math.isnan(v) and math.isnan(got)) or abs(got - v) <= TOL, (name, row, k, got, v)
        assert fresh[name]["model"]["absrel"] < fresh[name]["constant"]["absrel"], name  # beats the constant


@pytest.fixture(scope="module")
def metric_stage():
    return load_embedded_metric_stage()


def test_small_moge2_is_shipped_small_and_loads_strictly(metric_stage):
    card = json.loads((default_model_dir() / "embedded_moge2.json").read_text())
    for key in ("preset", "file", "train_config", "trained_steps", "seed", "data", "licence", "command", "metrics"):
        assert key in card, key
    path = default_model_dir() / card["file"]
    assert path.stat().st_size <= 4 * 2 ** 20  # size budget of the shipped weights
    # the same predictor class as an unshared official MoGe-2, on the unmodified MoGe-2 network
    assert isinstance(metric_stage.moge, MoGe2Runner) and isinstance(metric_stage.moge.model, MoGe2Model)
    state = read_state_dict(path)
    assert set(state) == set(metric_stage.moge.model.state_dict())
    state.pop(next(iter(state)))
    with pytest.raises(CheckpointError):  # strict: a missing tensor is an error
        load_into(lambda: MoGe2Model(preset(card["preset"])), state)


@pytest.mark.numeric
def test_small_moge2_recorded_errors_reproduce(metric_stage):
    card = json.loads((default_model_dir() / "embedded_moge2.json").read_text())
    model = metric_stage.moge.model
    rec = card["metrics"]["real_moge2_alone"]
    fresh = evaluate_real_frames(model)
    assert set(fresh) == set(rec)
    for name, m in rec.items():
        for k, v in m.items():
            assert fresh[name][k] == pytest.approx(v, abs=TOL), (name, k)
    rec = card["metrics"]["synthetic_heldout"]
    rgb, depth = frame_pool(rec["seed"], rec["frames"], SynthConfig())
    fresh = evaluate(model, rgb, depth, frame_intrinsics(rec["seed"], rec["frames"], SynthConfig()))
    for k in ("focal_abs_rel_error", "scale_ratio_median", "metric_absrel", "mask_accuracy"):
        assert fresh[k] == pytest.approx(rec[k], abs=TOL), k


def test_metric_stage_gives_metres_and_predicts_intrinsics(pipe, metric_stage):
    stage = metric_stage
    frame = load_real_frames()[0]
    res = stage(stage.new_state(), pipe(frame.rgb), frame.rgb, None)  # uncalibrated: focal is predicted
    finite = res.depth[np.isfinite(res.depth)]
    assert finite.size > 0.9 * res.depth.size and (finite > 0).all()
    assert res.intrinsics_predicted and res.intrinsics.K[0, 0] > 0


def test_embedded_video_model_loads_and_unknown_names_are_a_clear_error():
    # the small PPVD itself is covered by tests/test_embedded_video.py
    assert load_embedded_video_pipeline().video.resolution == 128
    with pytest.raises(EmbeddedModelUnavailable, match="no embedded video model"):
        load_embedded_video_pipeline("nonexistent")
