"""Stable streams: noise policy, warm start, continuity (cold-start triggers) in the image and video pipelines."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ppd_ros.config import ConfigError, InferenceConfig, preset
from ppd_ros.pipelines import PPDPipeline

from .conftest import FIXTURES
from .test_pipeline_video import moving_frames, tiny_pipeline

E2E = FIXTURES / "ppd" / "e2e_small"


def image_pipe(**kw: object) -> PPDPipeline:
    w = str(E2E / "weights.safetensors")
    cfg = InferenceConfig(steps=4, target_area=64 * 64, dtype="float32", **kw)
    return PPDPipeline.from_checkpoints(w, w, cfg, preset("fixture_ppd_e2e_dit"), preset("fixture_da2_vit_small"))


@pytest.fixture(scope="module")
def pipes() -> dict[str, PPDPipeline]:
    base = image_pipe()
    out = {"fixed": base}
    for name, cfg in {"fresh": replace(base.cfg, noise="fresh"), "warm": replace(base.cfg, warm_start=True)}.items():
        p = PPDPipeline(base.dit, base.encoder, cfg)
        out[name] = p
    return out


class CountingStep:
    """Wraps the DiT as the pipeline's step and counts evaluations."""

    def __init__(self, dit: torch.nn.Module) -> None:
        self.dit, self.calls = dit, 0

    def __call__(self, x: torch.Tensor, sem: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.dit(x, sem, t)


def frame(seed: int = 0, hw: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*hw, 3), dtype=np.uint8)


# --- noise policy ----------------------------------------------------------------------------
def test_fixed_noise_same_input_twice_gives_identical_depth(pipes) -> None:
    p = pipes["fixed"]
    st = p.new_stream(seed=2)
    a, b = p(frame(), st), p(frame(), st)
    assert np.array_equal(a.depth, b.depth)
    assert (a.continuity, b.continuity, a.warm, b.warm) == ("first_frame", "", False, False)
    assert a.dit_evals == b.dit_evals == 4


def test_fresh_noise_redraws_per_frame_and_starts_like_fixed(pipes) -> None:
    st_fresh, st_fixed = pipes["fresh"].new_stream(seed=2), pipes["fixed"].new_stream(seed=2)
    a, b = pipes["fresh"](frame(), st_fresh), pipes["fresh"](frame(), st_fresh)
    assert not np.allclose(a.depth, b.depth)  # today's behaviour: a new draw for every frame
    assert np.array_equal(a.depth, pipes["fixed"](frame(), st_fixed).depth)  # first draw = the fixed noise


def test_noise_policy_is_validated() -> None:
    with pytest.raises(ConfigError):
        InferenceConfig(noise="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        InferenceConfig(warm_start_step=0)
    assert not InferenceConfig(steps=1, warm_start=True).warm_start_active
    assert not InferenceConfig(steps=4, warm_start=True, noise="fresh").warm_start_active


# --- warm start and cold-start triggers --------------------------------------------------------
def test_warm_start_runs_fewer_evaluations_only_on_a_still_image(pipes) -> None:
    p = pipes["warm"]
    counter = CountingStep(p.dit)
    p.step = counter
    try:
        st = p.new_stream(seed=0)
        first = p(frame(0), st)
        assert (first.warm, first.continuity, first.dit_evals, counter.calls) == (False, "first_frame", 4, 4)
        still = p(frame(0), st)
        assert still.warm and still.continuity == "" and still.motion == 0.0
        assert still.dit_evals == counter.calls - 4 == 4 - p.cfg.warm_start_step
        moved = p(np.roll(frame(0), 9, axis=1), st)  # same content, shifted: motion test fails
        assert not moved.warm and moved.continuity == "" and moved.dit_evals == 4
        assert moved.motion > p.cfg.motion_threshold
    finally:
        p.step = None


@pytest.mark.parametrize("trigger", ["request", "time_jump", "scene_cut", "resize"])
def test_every_trigger_cold_starts_and_warm_start_never_crosses_it(pipes, trigger: str) -> None:
    p = pipes["warm"]
    st = p.new_stream(seed=0)
    img = frame(0)
    p(img, st, stamp=1.0)
    assert p(img, st, stamp=2.0).warm
    stamp = 3.0
    if trigger == "request":
        st.reset()
    elif trigger == "time_jump":
        stamp = 0.5
    elif trigger == "scene_cut":
        img = np.full_like(img, 255) if img.mean() < 128 else np.zeros_like(img)
    else:
        img = frame(0, (64, 48))
    res = p(img, st, stamp=stamp)
    assert (res.continuity, res.warm, res.dit_evals) == (trigger, False, 4)
    nxt = p(img, st, stamp=stamp + 1)
    assert nxt.continuity == "" and nxt.warm  # the stream goes on from the new start


def test_reset_reason_is_reported_once(pipes) -> None:
    p = pipes["fixed"]
    st = p.new_stream()
    p(frame(), st)
    st.reset("camera_info")
    assert [p(frame(), st).continuity for _ in range(2)] == ["camera_info", ""]


def test_constant_black_frames_run_and_cut_the_scene(pipes) -> None:
    p = pipes["warm"]
    st = p.new_stream()
    p(frame(3), st)
    black = np.zeros((48, 64, 3), np.uint8)
    res = [p(black, st) for _ in range(3)]
    assert [r.continuity for r in res] == ["scene_cut", "", ""] and res[2].warm
    assert all(np.isfinite(r.depth).all() for r in res)


# --- streaming PPVD --------------------------------------------------------------------------
def _record_noise(pipe) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    sample = pipe.sample

    def spy(images, noise, *a, **kw):
        seen.append(noise.clone())
        return sample(images, noise, *a, **kw)
    pipe.sample = spy
    return seen


@pytest.mark.parametrize("policy", ["fixed", "fresh"])
def test_video_stream_noise_policy(policy: str) -> None:
    pipe = tiny_pipeline(noise=policy, refresh_every=5)
    seen = _record_noise(pipe)
    st = pipe.new_stream("stream", seed=1)
    for i, f in enumerate(moving_frames(12)):
        pipe.push(st, f, stamp=i)
    rows = torch.cat(seen)  # every latent row the sampler started from, references included
    if policy == "fixed":
        assert all(torch.equal(r, st.noise[0]) for r in rows)
    else:
        distinct = {int(torch.argmin(((st.noise - r) ** 2).flatten(1).sum(1))) for r in rows}
        assert len(distinct) > 3  # the rows cycle with the virtual window position


def test_video_stream_warm_start_and_triggers() -> None:
    pipe = tiny_pipeline(steps=4, scene_cut_threshold=0.3)
    pipe.cfg = replace(pipe.cfg, warm_start=True, warm_start_step=2, motion_threshold=0.01)
    st = pipe.new_stream("stream", seed=0)
    f = moving_frames(1)[0]
    res = [pipe.push(st, f, stamp=float(i))[0] for i in range(3)]
    assert [(r.continuity, r.warm, r.dit_evals) for r in res] == [("first_frame", False, 4), ("", True, 2),
                                                                     ("", True, 2)]
    moved = pipe.push(st, np.roll(f, 7, axis=1), stamp=3.0)[0]
    assert (moved.warm, moved.dit_evals) == (False, 4)
    st.reset("gap")
    after = pipe.push(st, f, stamp=4.0)[0]
    assert (after.continuity, after.warm, after.dit_evals) == ("gap", False, 4)
    small = pipe.push(st, f[:10, :14].copy(), stamp=5.0)[0]
    assert (small.continuity, small.warm) == ("resize", False)


def test_video_stream_fixed_noise_is_reproducible() -> None:
    pipe = tiny_pipeline()
    frames = moving_frames(8)
    runs = []
    for _ in range(2):
        st = pipe.new_stream("stream", seed=4)
        runs.append([pipe.push(st, f, stamp=i)[0].depth for i, f in enumerate(frames)])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))


def test_exact_mode_reports_continuity_and_keeps_the_official_rows() -> None:
    pipe = tiny_pipeline(noise="fixed")
    seen = _record_noise(pipe)
    st = pipe.new_stream("exact", seed=0)
    out = [r for i, f in enumerate(moving_frames(16)) for r in pipe.push(st, f, stamp=i)]
    assert out[0].continuity == "first_frame" and all(r.continuity == "" for r in out[1:])
    assert torch.equal(seen[0], st.noise)  # one row per window position, as the official code
    st.reset("time_jump")
    out = [r for i, f in enumerate(moving_frames(16)) for r in pipe.push(st, f, stamp=i)]
    assert out[0].continuity == "time_jump" and out[0].dit_evals == 2  # window 0: 16 frames x 2 steps / 16 new frames
