"""The shipped small PPVD: strict load, both stream modes on a short clip, recorded numbers reproduce."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from safetensors.torch import load_file

from ppd_ros.config import preset
from ppd_ros.data.synthetic import SynthConfig, make_sequence
from ppd_ros.embedded import (default_model_dir, embedded_inference_config, load_embedded_image_pipeline,
                              load_embedded_video_pipeline)
from ppd_ros.pipelines.video import PPVDPipeline
from ppd_ros.train.video_eval import evaluate_clips

TOL = 2e-3  # CPU float32, same seeds and noise: only summation-order noise remains


@pytest.fixture(scope="module")
def video():
    return load_embedded_video_pipeline("default")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((default_model_dir() / "embedded_ppvd.json").read_text())


def test_card_and_files(card):
    for key in ("dit_preset", "video_preset", "encoder_preset", "files", "sha256", "init_from", "data", "trained_steps",
                "seed", "licence", "retrain", "metrics"):
        assert key in card, key
    assert card["licence"].startswith("Apache-2.0")
    shipped = load_file(str(default_model_dir() / card["files"]["dit"]))
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float16" for v in shipped.values())
    total = sum(p.stat().st_size for p in default_model_dir().iterdir())
    assert total <= 50 * 2**20, f"weights folder is {total / 2**20:.1f} MiB"


def test_loads_strictly_with_the_small_semantics(video):
    from ppd_ros.embedded import model_card, video_model_card
    from ppd_ros.train.video import VIDEO_PRESET_FOR
    card = video_model_card()
    assert card["dit_preset"] == VIDEO_PRESET_FOR[model_card()["dit_preset"]]  # built on the shipped image DiT
    assert card["encoder_preset"] == model_card()["encoder_preset"]
    assert video.dit.cfg == preset(card["dit_preset"]) and video.video == preset("embedded_ppvd_video")
    assert not video.video.bgr_quirk and not video.encoder.cross_frame_cache
    st = video.new_stream("stream")
    assert st.pi3_keys.numel() == 0 and st.pi3_values.numel() == 0  # no π3 cache for per-frame semantics


@pytest.mark.parametrize("mode", ["stream", "exact"])
def test_streams_a_short_clip_in_both_modes(video, mode):
    frames = [f.rgb for f in make_sequence(123, 4, SynthConfig(height=48, width=64))]
    st = video.new_stream(mode)
    out = []
    for i, rgb in enumerate(frames):
        got = video.push(st, rgb, stamp=i)
        assert len(got) == (1 if mode == "stream" else 0)  # exact mode waits for its 16-frame window
        out += got
    out += video.flush(st)
    assert [r.stamp for r in out] == list(range(4))
    for r in out:
        assert r.depth.shape == (48, 64) and r.depth_model.shape == (128, 128) and np.isfinite(r.depth).all()
    assert np.std(out[-1].depth) > 1e-3  # not a constant map


@pytest.mark.numeric
def test_recorded_subset_reproduces(video, card):
    rec = card["metrics"]["check_subset"]
    image = load_embedded_image_pipeline("default", embedded_inference_config(None, "default"))
    # the card was recorded with the noise row of each virtual window position (VideoConfig.noise="fresh",
    # the streaming default before one noise per stream); that setting reproduces it
    recorded = PPVDPipeline(video.dit, video.encoder, video.cfg, replace(video.video, noise="fresh"))
    got = evaluate_clips(image, recorded, rec["clips"], rec["length"], (rec["method"],))[rec["method"]]
    for k in ("absrel", "clip_absrel", "flicker"):
        assert got[k] == pytest.approx(rec[k], abs=TOL), k
