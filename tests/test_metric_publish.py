"""Issue 14 item 4: the embedded metric stage publishes >= 90 % of the GT-valid pixels of every bundled
real frame, with a publication threshold calibrated on held-out synthetic frames (never the real ones);
the fit and the metres of the pixels the official 0.5 mask keeps are unchanged."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppd_ros.data.real import REAL_NAMES, load_real_frame
from ppd_ros.embedded import default_model_dir, load_embedded_image_pipeline, load_embedded_metric_stage
from ppd_ros.models.moge2 import MoGe2Output
from ppd_ros.pipelines.moge import MoGe2Runner, postprocess
from ppd_ros.train.benchmark import evaluate_published, published_fraction
from ppd_ros.train.dataset import EVAL_SEED_OFFSET
from ppd_ros.train.moge2_mask import CALIBRATION_SEED, calibrate
from ppd_ros.train.moge2_small import TEST_SEED


@pytest.fixture(scope="module")
def embedded():
    return load_embedded_image_pipeline(), load_embedded_metric_stage()


def test_card_threshold_calibrated_on_heldout_synthetic() -> None:
    mcard = json.loads((default_model_dir() / "embedded_moge2.json").read_text())
    assert 0.0 < mcard["inference"]["publish_threshold"] < 0.5
    assert mcard["inference"].get("mask_threshold", 0.5) == 0.5  # the fit keeps the official mask
    assert mcard["mask_calibration"]["calibration_seed"] == CALIBRATION_SEED
    # disjoint from the training pool (seed 0), the monitor (EVAL_SEED_OFFSET + 0) and the card's test set
    assert CALIBRATION_SEED not in (0, EVAL_SEED_OFFSET, TEST_SEED)


def test_every_real_frame_published_at_least_90_percent(embedded) -> None:
    pipe, stage = embedded
    fractions = evaluate_published(pipe, stage)
    assert set(fractions) == set(REAL_NAMES)
    assert all(f >= 0.90 for f in fractions.values()), fractions


def test_fit_pixels_unchanged_by_publication_threshold(embedded) -> None:
    pipe, stage = embedded
    f = load_real_frame("kinect")
    rel = pipe(f.rgb, pipe.new_stream(0))
    official = MoGe2Runner(stage.moge.model, stage.moge.resolution_level)  # publish_threshold None
    assert official.predict(torch.rand(3, 32, 32)).publish is None
    out = {}
    for name, runner in (("official", official), ("calibrated", stage.moge)):
        stage_moge, stage.moge = stage.moge, runner
        try:
            out[name] = stage(stage.new_state(), rel, f.rgb, None).depth
        finally:
            stage.moge = stage_moge
    kept = np.isfinite(out["official"])
    assert np.array_equal(out["official"][kept], out["calibrated"][kept])  # same fit, same metres
    assert np.isfinite(out["calibrated"]).sum() > kept.sum()  # and more of the wall published
    assert published_fraction(out["official"], f.depth) < 0.9 <= published_fraction(out["calibrated"], f.depth)


def test_postprocess_publish_mask() -> None:
    h, w = 4, 6
    pts = torch.zeros(1, h, w, 3)
    pts[..., 2] = 2.0
    prob = torch.full((1, h, w), 0.9)
    prob[0, 0] = 0.2  # a row the official threshold drops
    raw = MoGe2Output(points=pts, mask=prob, metric_scale=torch.ones(1), normal=None)
    pred = postprocess(raw, fov_x=60.0, publish_threshold=0.1)
    assert not pred.mask[0, 0].any() and pred.mask[0, 1:].all()
    assert pred.publish is not None and pred.publish.all()
    assert postprocess(raw, fov_x=60.0).publish is None


def test_calibrate_picks_largest_threshold_meeting_worst_frame() -> None:
    prob = np.array([[[0.9, 0.06]], [[0.9, 0.9]]])  # frame 0 has a valid pixel at 0.06
    valid = np.ones_like(prob, dtype=bool)
    t, rows = calibrate(prob, valid, 0.99)
    assert t == 0.05 and rows[0]["worst_frame_recall"] == 0.5
