"""PPVD pipeline: exact chunked mode (windows, padding, chaining) and the streaming state."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppd_ros.config import InferenceConfig, Pi3Config, VideoConfig, preset, reduced_dit_video
from ppd_ros.errors import InputError
from ppd_ros.models.dit_video import DiT_Video
from ppd_ros.models.pi3 import Pi3Semantic
from ppd_ros.parity import Fixture
from ppd_ros.pipelines.video import PPVDPipeline
from ppd_ros.pipelines.video_align import align_to_anchors, align_video_depth, next_anchors
from ppd_ros.pipelines.video_stream import describe_stream_state

from .conftest import FIXTURES

RES = 32


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.data = torch.randn(p.shape, generator=g) * 0.3
    return model.eval()


def tiny_pipeline(dit_cls: type = DiT_Video, enc_cls: type = Pi3Semantic, steps: int = 2,
                  **video: object) -> PPVDPipeline:
    dit = _randomise(dit_cls(reduced_dit_video(16, 4, 2, 32, input_size=RES)), 1)
    enc = _randomise(enc_cls(Pi3Config(dim=16, num_heads=2, enc_depth=1, dec_depth=2, img_size=28)), 2)
    return PPVDPipeline(dit, enc, InferenceConfig(steps=steps, dtype="float32"), VideoConfig(resolution=RES, **video))


def moving_frames(n: int, h: int = 20, w: int = 28, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    bg = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
    out = []
    for t in range(n):
        f = bg.copy()
        x = t % (w - 6)
        f[5:11, x:x + 6] = (250, 30, 30)
        out.append(f)
    return out


# --- exact chunked mode -------------------------------------------------------------------------
@pytest.mark.numeric
@pytest.mark.needs_shared("fixtures/ppvd/video_pipeline_small")
def test_alignment_chain_reproduces_fixture_bit_for_bit() -> None:
    fx = Fixture(FIXTURES / "ppvd" / "video_pipeline_small")
    preds = [w[:, 0].numpy() for w in fx.outputs["window_preds"]]
    out, fits = align_video_depth(preds)
    t = fx.meta["clip"]["frames"]
    np.testing.assert_array_equal(np.concatenate(out)[:t], fx.outputs["depth_aligned"].numpy())
    np.testing.assert_array_equal(np.array(fits, np.float32), fx.outputs["scale_shift"].numpy())


def _official_windows(t: int) -> list[list[int]]:
    """Padded-list indices per window as the spec states them: [0..15], then [0, 13w-5, 13w+2..13w+15]."""
    padded = 16 + 13 * max(0, -(-(t - 16) // 13))
    out = [list(range(16))]
    w = 1
    while 13 * w + 16 <= padded:
        out.append([0, 13 * w - 5] + list(range(13 * w + 2, 13 * w + 16)))
        w += 1
    return out


def _offline(pipe: PPVDPipeline, frames: list[np.ndarray], noise: torch.Tensor) -> np.ndarray:
    """The official infer_video + align_video_depth, written out over the whole clip."""
    imgs = [pipe.prepare(f)[0] for f in frames]
    t, hw = len(imgs), frames[0].shape[:2]
    r = (t - 16) % 13
    imgs += [imgs[-1]] * ((13 - r) if r else 0)
    windows, prev, s = [], None, 0
    while s + 16 <= len(imgs):
        win = list(imgs[s:s + 16])
        if prev is not None:
            win[:3] = [prev[0], prev[8], prev[15]]
        windows.append(win)
        prev, s = win, s + 13
    preds = [pipe.to_output(pipe.sample(torch.stack(w), noise)[0], hw) for w in windows]
    out, _ = align_video_depth(preds)
    return np.concatenate(out)[:t]


@pytest.mark.numeric
@pytest.mark.parametrize("t", [5, 16, 30])
def test_exact_mode_push_flush_equals_offline_procedure(t: int) -> None:
    pipe = tiny_pipeline()
    frames = moving_frames(t)
    state = pipe.new_stream("exact", seed=3)
    records: list = []
    state.on_window = records.append
    results = []
    for i, f in enumerate(frames):
        got = pipe.push(state, f, stamp=100 + i)
        # results only when a window completes: 16 at frame 15, then 13 every 13 frames
        assert len(got) == (16 if i == 15 else 13 if i > 15 and (i - 15) % 13 == 0 else 0)
        results += got
    results += pipe.flush(state)
    assert [r.index for r in results] == list(range(t))
    assert [r.stamp for r in results] == [100 + i for i in range(t)]
    assert [list(r.frame_index) for r in records] == _official_windows(t)
    want = _offline(pipe, frames, state.noise)
    np.testing.assert_allclose(np.stack([r.depth for r in results]), want, atol=1e-5, rtol=1e-5)
    assert state.frames_seen == 0 and state.filled == 0  # flush ended the stream


def test_bgr_quirk_reverses_channels() -> None:
    quirk, plain = tiny_pipeline(bgr_quirk=True), tiny_pipeline(bgr_quirk=False)
    f = moving_frames(1)[0]
    torch.testing.assert_close(quirk.prepare(f), plain.prepare(np.ascontiguousarray(f[..., ::-1])))


def test_exact_mode_rejects_bad_frames() -> None:
    pipe = tiny_pipeline()
    state = pipe.new_stream("exact")
    pipe.push(state, moving_frames(1)[0])
    with pytest.raises(InputError):
        pipe.push(state, np.zeros((8, 8, 3), np.uint8))  # size change inside a stream
    with pytest.raises(InputError):
        pipe.push(state, np.zeros((20, 28), np.uint8))
    with pytest.raises(InputError):
        pipe.new_stream("bogus")  # type: ignore[arg-type]


# --- streaming mode -----------------------------------------------------------------------------
def test_streaming_one_result_per_push_and_official_reference_cadence() -> None:
    pipe = tiny_pipeline()
    state = pipe.new_stream("stream", seed=3)
    frames = moving_frames(30)
    for i, f in enumerate(frames):
        res = pipe.push(state, f, stamp=float(i))
        assert len(res) == 1 and res[0].index == i and res[0].stamp == float(i)
        assert res[0].depth.shape == f.shape[:2] and np.isfinite(res[0].depth).all()
        if i == 0:
            assert state.num_refs == 1 and state.ref_index[0] == 0
        if i == 16:  # the first refresh: [frame 0, position 8, position 15], as the official window 1
            assert state.ref_index.tolist() == [0, 8, 15]
            assert res[0].reference_stamps == (0.0, 8.0, 15.0) and res[0].window_index == 1
    res = pipe.push(state, frames[0], stamp=30.0)  # frame 29 was the last of epoch 1 -> refresh at 30
    assert state.ref_index.tolist() == [0, 21, 28]
    assert res[0].reference_stamps == (0.0, 21.0, 28.0) and res[0].window_index == 2
    assert pipe.flush(state) == []


def test_streaming_sliding_anchor_drops_frame0() -> None:
    pipe = tiny_pipeline(keep_frame0=False, refresh_every=5, temporal_frames=3)
    state = pipe.new_stream("stream")
    for i, f in enumerate(moving_frames(15)):
        pipe.push(state, f, stamp=i)
    assert state.epoch == 2 and state.ref_index[0] != 0


def test_streaming_resets_on_request_time_jump_and_scene_cut() -> None:
    pipe = tiny_pipeline(scene_cut_threshold=0.3)
    state = pipe.new_stream("stream")
    frames = moving_frames(6)
    for i, f in enumerate(frames):
        pipe.push(state, f, stamp=10 + i)
    assert state.resets == 0 and state.position == 6
    pipe.push(state, frames[0], stamp=12)  # stamp goes backwards
    assert (state.resets, state.last_reset, state.num_refs, state.position) == (1, "time_jump", 1, 1)
    assert state.ref_index[0] == 6  # the frame after the jump is the new frame 0
    pipe.push(state, np.full_like(frames[0], 255), stamp=13)  # a different scene
    assert (state.resets, state.last_reset, state.position) == (2, "scene_cut", 1)
    pipe.push(state, np.full_like(frames[0], 255), stamp=14)
    assert state.resets == 2 and state.position == 2
    state.reset()
    pipe.push(state, frames[1], stamp=15)
    assert (state.resets, state.last_reset, state.position) == (3, "request", 1)


class CacheOnlyDiT(DiT_Video):
    """Skips every block's maths but still reads and writes the stream cache at each hook."""

    def run_block(self, i, tok, c, pos, ctx=None):  # type: ignore[override]
        if i >= self.cfg.temporal_from:
            ctx.temporal_tokens(i - self.cfg.temporal_from, tok.transpose(0, 1))
        if i >= self.cfg.rgtp_from:
            ctx.reference_tokens(i, tok)
        return tok


class EncoderFreePi3(Pi3Semantic):
    """π3 with the (frame-local) ViT encoder skipped; the cached-K/V decoder still runs."""

    def encode(self, imgs: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid(*imgs.shape[-2:])
        return imgs.mean() + imgs.new_zeros(imgs.shape[0], gh * gw, self.cfg.dim)


def test_stream_state_memory_constant_over_10000_pushes() -> None:
    torch.set_num_threads(1)  # tiny ops: threading only adds overhead
    pipe = tiny_pipeline(CacheOnlyDiT, EncoderFreePi3, steps=1, scene_cut_threshold=0.0)
    state = pipe.new_stream("stream")
    frames = moving_frames(40, 12, 12)
    ptrs = {k: t.data_ptr() for k, t in state.tensors().items()}
    start = state.nbytes
    for i in range(10_000):
        assert len(pipe.push(state, frames[i % 40], stamp=i)) == 1
        if i % 2500 == 0:
            assert state.nbytes == start
    assert state.nbytes == start
    assert {k: t.data_ptr() for k, t in state.tensors().items()} == ptrs  # updated in place, never reallocated
    assert state.frames == 10_000 and state.ring_count == pipe.video.temporal_frames
    assert state.epoch == (9_999 - 16) // 13 + 1  # refreshes at frames 16, 29, ...


def test_full_model_state_size_at_512() -> None:
    sizes = describe_stream_state(preset("ppvd_dit_video"), preset("pi3"), preset("ppvd_video"), steps=4)
    assert sizes["recent_temporal"] == 4 * 3 * 4096 * 12 * 1024 * 2  # 12 frames x 4 steps x 3 blocks, bf16
    assert sizes["ref_tokens"] == 4 * 6 * 768 * 1024 * 2
    assert sizes["pi3_keys"] == 18 * 16 * 3 * 1029 * 64 * 2
    assert sum(sizes.values()) < 2 * 2**30


def test_affine_chaining_does_not_drift_over_10000_frames() -> None:
    """Every window sees the scene through its own random affine map (the model's ambiguity) plus noise;
    chaining onto the fixed frame-0 anchor keeps the error bounded instead of a random walk."""
    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 3.0, (3, 12, 16)).astype(np.float32)
    keys = (0, 8, 15)

    def truth(v: int) -> np.ndarray:
        return base[v % 3] + 0.1 * np.sin(v / 50.0)

    anchors, errs = None, []
    for w in range(770):  # 16 + 769*13 = 10 013 frames
        idx = list(range(16)) if w == 0 else [0, 13 * w - 5, 13 * w + 2] + list(range(13 * w + 3, 13 * w + 16))
        a, b = rng.uniform(0.5, 2.0), rng.uniform(-1.0, 1.0)
        pred = np.stack([a * truth(i) + b + rng.normal(0, 0.01, base.shape[1:]) for i in idx]).astype(np.float32)
        if w == 0:
            aligned, a0, b0 = pred, a, b
            anchors = pred[list(keys)]
        else:
            aligned, _, _ = align_to_anchors(pred, anchors, 3)
            anchors = next_anchors(anchors, aligned, keys)
        want = np.stack([a0 * truth(i) + b0 for i in idx])
        errs.append(float(np.abs(aligned - want).mean()))
    errs = np.array(errs)
    assert errs.max() < 0.05  # ~ a few times the per-frame noise, never growing
    assert errs[-100:].mean() < 2 * errs[1:101].mean() + 1e-3


def test_from_checkpoints_routes_prefixed_keys_and_tolerates_missing_pos_embed(tmp_path) -> None:
    from safetensors.torch import save_file

    from ppd_ros.errors import CheckpointMismatch
    pipe = tiny_pipeline()
    dit_sd = {f"dit_video.{k}": v for k, v in pipe.dit.state_dict().items() if k != "pos_embed"}
    torch.save(dit_sd, tmp_path / "ppvd.pth")
    pi3_sd = {k: v.contiguous() for k, v in pipe.encoder.state_dict().items()}
    save_file({**pi3_sd, "point_head.proj.weight": torch.zeros(2, 2)}, str(tmp_path / "pi3.safetensors"))
    kw = dict(video=VideoConfig(resolution=RES), dit_cfg=pipe.dit.cfg, pi3_cfg=pipe.encoder.cfg)
    loaded = PPVDPipeline.from_checkpoints(str(tmp_path / "ppvd.pth"), str(tmp_path / "pi3.safetensors"), **kw)
    for a, b in ((loaded.dit, pipe.dit), (loaded.encoder, pipe.encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    torch.save({**dit_sd, "dit_video.extra.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatch):
        PPVDPipeline.from_checkpoints(str(tmp_path / "bad.pth"), str(tmp_path / "pi3.safetensors"), **kw)
