"""Metric stage in streams: smoothing, jump on a real scale change, reset on continuity, deterministic fits."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from ppd_ros.config import ConfigError
from ppd_ros.pipelines.metric import MetricConfig, MetricStage

from .test_pipeline_metric import RGB, FakeMoGe, _result, _scene


def test_small_fit_changes_are_smoothed_large_ones_taken_at_once() -> None:
    d, mask, rel = _scene(1.5, 0.2)
    stage = MetricStage(FakeMoGe(d, mask), MetricConfig(smoothing=0.8, adapt_threshold=0.2))
    st = stage.new_state()
    stage(st, _result(rel), RGB)
    # the same MoGe depth, PPD's relative map slightly rescaled: the new fit's log depth moves by < 0.2
    _, _, rel_small = _scene(1.5 * 1.02, 0.2)
    r = stage(st, _result(rel_small), RGB)
    assert r.scale == pytest.approx(0.8 * 1.5 + 0.2 * 1.53, rel=1e-4) and st.jumps == 0
    # a real change (zoom / new content): MoGe says everything is twice as far -> jump, no lag
    stage.moge = FakeMoGe(2 * d, mask)
    r = stage(st, _result(rel), RGB)
    raw = MetricStage(stage.moge, MetricConfig(smoothing=0.0))
    assert st.jumps == 1 and np.array_equal(r.depth, raw(raw.new_state(), _result(rel), RGB).depth)


def test_result_that_restarts_its_stream_resets_the_smoothing() -> None:
    d, mask, rel = _scene(1.5, 0.2)
    stage = MetricStage(FakeMoGe(d, mask), MetricConfig(smoothing=0.9, adapt_threshold=0.0))
    st = stage.new_state()
    stage(st, _result(rel), RGB)
    _, _, rel2 = _scene(2.5, 0.4)
    eased = stage(st, _result(rel2), RGB)
    assert eased.scale == pytest.approx(0.9 * 1.5 + 0.1 * 2.5, rel=1e-4)
    cut = replace(_result(rel2), continuity="scene_cut")
    fresh = stage(st, cut, RGB)
    assert fresh.scale == pytest.approx(2.5, rel=1e-5) and st.resets == 1


def test_reseeded_fit_is_deterministic_per_frame() -> None:
    d, mask, rel = _scene()
    noisy = rel + np.random.default_rng(1).normal(0, 0.05, rel.shape).astype(np.float32) * (np.arange(rel.shape[1]) % 5 == 0)
    raw = MetricStage(FakeMoGe(d, mask), MetricConfig(smoothing=0.0))
    st = raw.new_state()
    fits = [raw(st, _result(noisy), RGB).scale for _ in range(3)]
    assert fits[0] == fits[1] == fits[2]  # equal inputs, equal fits: no RANSAC jitter on a still scene
    with pytest.raises(ConfigError):
        MetricConfig(adapt_threshold=-1.0)
