"""Metric stage: intrinsics policy, scale refresh/smoothing/reset, RNG ownership, encoder sharing."""
import math

import numpy as np
import pytest
import torch

from ppd_ros.config import DiTConfig, InferenceConfig, moge2_config_from_official
from ppd_ros.errors import CameraInfoMismatch, ConfigError, InputError
from ppd_ros.intrinsics import CameraIntrinsics, fov_x_degrees
from ppd_ros.models.dit import DiT
from ppd_ros.parity import Fixture
from ppd_ros.pipelines.image import DepthResult, PPDPipeline
from ppd_ros.pipelines.metric import (MetricConfig, MetricStage, SharedMoGe2, ppd_with_moge2,
                                      ppd_with_moge2_from_checkpoints, working_image)
from ppd_ros.pipelines.moge import MoGe2Prediction, MoGe2Runner, load_moge2

from .conftest import FIXTURES, require_shared

H, W = 32, 48  # model (working) resolution
H0, W0 = 64, 96  # camera frame
K_NORM = np.array([[0.8, 0, 0.5], [0, 1.2, 0.5], [0, 0, 1]], dtype=np.float32)


def _scene(a: float = 1.5, b: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MoGe depth (+inf in the 'sky' rows), its mask, and PPD-like relative depth log1p(d) = a*rel + b."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    depth = 2.0 + 3.0 * yy / H + 0.5 * xx / W
    mask = yy >= 6
    rel = ((np.log1p(depth) - b) / a).astype(np.float32)
    rel[~mask] = rel.max() + 1.0  # sky: farther than anything valid
    return np.where(mask, depth, np.inf).astype(np.float32), mask, rel


class FakeMoGe:
    """Controlled MoGe-2 predictions; records each call's fov_x."""

    def __init__(self, depth: np.ndarray, mask: np.ndarray, focal: float = 0.9, k: np.ndarray = K_NORM) -> None:
        self.depth, self.mask, self.focal, self.k = depth, mask, focal, k
        self.calls: list[float | None] = []

    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction:
        assert image.shape == (1, 3, H, W)
        self.calls.append(fov_x)
        d = torch.from_numpy(self.depth)[None]
        return MoGe2Prediction(depth=d, points=d[..., None].expand(-1, -1, -1, 3),
                               mask=torch.from_numpy(self.mask)[None],
                               intrinsics=torch.from_numpy(self.k)[None], metric_scale=torch.tensor([1.7]),
                               focal=torch.tensor([self.focal]), shift=torch.tensor([0.0]))


RGB = np.random.default_rng(0).integers(0, 255, (H0, W0, 3), dtype=np.uint8)


def _result(rel: np.ndarray, index: int = 0) -> DepthResult:
    return DepthResult(depth=np.zeros((H0, W0), np.float32), depth_model=rel, index=index, stamp=f"t{index}")


def _camera(**kw) -> CameraIntrinsics:
    return CameraIntrinsics.from_pinhole(W0, H0, 70.0, 72.0, 47.0, 31.0) if not kw else CameraIntrinsics(**kw)


def test_uncalibrated_uses_and_returns_moge_intrinsics_and_metres():
    depth, mask, rel = _scene()
    stage = MetricStage(FakeMoGe(depth, mask))
    r = stage(stage.new_state(), _result(rel), RGB)
    assert r.depth.shape == (H, W) and r.depth.dtype == np.float32
    assert np.allclose(r.depth[mask], depth[mask], rtol=1e-5) and np.isposinf(r.depth[~mask]).all()
    assert r.scale == pytest.approx(1.5, rel=1e-5) and r.shift == pytest.approx(0.2, abs=1e-5)
    assert r.intrinsics_predicted and r.refreshed and r.scale_age_frames == 0 and r.branch == "ransac"
    assert r.intrinsics == CameraIntrinsics.from_normalized(K_NORM, W, H)
    assert (r.intrinsics.cx, r.intrinsics.cy) == ((W - 1) / 2, (H - 1) / 2)
    assert r.moge_metric_scale == pytest.approx(1.7) and r.stamp == "t0"
    assert {"moge_and_fit", "metric_total"} <= set(r.timings_ms)
    official = MetricStage(FakeMoGe(depth, mask), MetricConfig(principal_point="official"))
    assert official(official.new_state(), _result(rel), RGB).intrinsics.cx == W / 2
    # an uncalibrated CameraInfo (K all zero) is treated as no CameraInfo
    unc = _camera(width=W0, height=H0, K=np.zeros(9), P=np.zeros(12))
    assert stage(stage.new_state(), _result(rel), RGB, unc).intrinsics_predicted


def test_calibrated_camera_gives_intrinsics_and_fov_moge_only_scales():
    depth, mask, rel = _scene()
    fake = FakeMoGe(depth, mask, focal=-1.0)  # a degenerate focal is irrelevant with a calibrated camera
    stage = MetricStage(fake)
    cam = _camera()
    r = stage(stage.new_state(), _result(rel), RGB, cam)
    assert not r.intrinsics_predicted and r.intrinsics == cam.rectified(W, H)
    assert r.intrinsics.fx == pytest.approx(35.0) and r.intrinsics.cx == pytest.approx(23.25)
    assert fake.calls == [pytest.approx(fov_x_degrees(35.0, W))]
    assert np.allclose(r.depth[mask], depth[mask], rtol=1e-5)
    no_fov = MetricStage(fake, MetricConfig(use_camera_fov=False))
    no_fov(no_fov.new_state(), _result(rel), RGB, cam)
    assert fake.calls[-1] is None
    with pytest.raises(CameraInfoMismatch):
        stage(stage.new_state(), _result(rel), RGB, CameraIntrinsics.from_pinhole(640, 480, 500, 500, 320, 240))


def test_output_at_camera_resolution_keeps_edges_and_far_regions():
    depth, mask, rel = _scene()
    stage = MetricStage(FakeMoGe(depth, mask), MetricConfig(output="input"))
    r = stage(stage.new_state(), _result(rel), RGB, _camera())
    assert r.depth.shape == (H0, W0) and r.intrinsics == _camera().rectified(W0, H0)
    assert np.isposinf(r.depth[:12]).all() and np.isfinite(r.depth[12:]).all()
    assert r.depth[12:].min() >= depth[mask].min() - 1e-4 and r.depth[12:].max() <= depth[mask].max() + 1e-4


def test_refresh_every_n_frames_holds_the_scale_in_between():
    depth, mask, rel = _scene()
    fake = FakeMoGe(depth, mask)
    stage = MetricStage(fake, MetricConfig(refresh_every=3))
    state = stage.new_state()
    out = [stage(state, _result(rel, i), RGB) for i in range(7)]
    assert len(fake.calls) == 3
    assert [r.scale_age_frames for r in out] == [0, 1, 2, 0, 1, 2, 0]
    assert [r.refreshed for r in out] == [True, False, False, True, False, False, True]
    held = out[1]
    assert np.allclose(held.depth[mask], depth[mask], rtol=1e-5)
    # without a fresh mask, what the held map sends past its cap counts as too far
    assert np.isposinf(held.depth[~mask]).all() and held.intrinsics == out[0].intrinsics


def test_smoothing_blends_successive_fits_and_reset_forgets():
    d1, mask, rel1 = _scene(1.5, 0.2)
    _, _, rel2 = _scene(2.5, 0.4)
    stage = MetricStage(FakeMoGe(d1, mask), MetricConfig(smoothing=0.5, adapt_threshold=0.0))
    state = stage.new_state()
    assert stage(state, _result(rel1), RGB).scale == pytest.approx(1.5, rel=1e-5)
    r = stage(state, _result(rel2), RGB)
    assert r.scale == pytest.approx(2.0, rel=1e-5) and r.shift == pytest.approx(0.3, abs=1e-5)
    state.reset()
    assert state.a is None and state.frames == 0 and state.K_norm is None
    assert stage(state, _result(rel2), RGB).scale == pytest.approx(2.5, rel=1e-5)
    with pytest.raises(ConfigError):
        MetricConfig(smoothing=1.0)
    with pytest.raises(ConfigError):
        MetricConfig(refresh_every=0)


def test_ransac_generator_is_per_stream_never_numpy_global():
    depth, mask, rel = _scene()
    noisy = rel + np.random.default_rng(1).normal(0, 0.05, rel.shape).astype(np.float32) * (np.arange(W) % 7 == 0)
    stage = MetricStage(FakeMoGe(depth, mask))
    np.random.seed(0)
    before = np.random.get_state()[1].copy()
    s1 = stage.new_state(seed=5)
    a = stage(s1, _result(noisy), RGB)
    assert np.array_equal(np.random.get_state()[1], before)
    assert not np.array_equal(s1.rng.get_state()[1], np.random.RandomState(5).get_state()[1])  # consumed its own
    np.random.seed(123)
    b = stage(stage.new_state(seed=5), _result(noisy), RGB)
    assert np.array_equal(a.depth, b.depth) and a.scale == b.scale


def test_degenerate_moge_frames_are_dropped_or_held():
    depth, mask, rel = _scene()
    empty = FakeMoGe(depth, np.zeros_like(mask))
    stage = MetricStage(empty)
    with pytest.raises(InputError, match="empty validity mask"):
        stage(stage.new_state(), _result(rel), RGB)
    with pytest.raises(InputError, match="non-positive focal"):
        bad = MetricStage(FakeMoGe(depth, mask, focal=0.0))
        bad(bad.new_state(), _result(rel), RGB)
    good = MetricStage(FakeMoGe(depth, mask))
    state = good.new_state()
    first = good(state, _result(rel), RGB)
    good.moge = empty
    held = good(state, _result(rel), RGB)
    assert not held.refreshed and held.scale_age_frames == 1 and held.scale == first.scale
    rel_nan = rel.copy()
    rel_nan[10, 10] = np.nan
    good.moge = FakeMoGe(depth, mask)
    assert np.isnan(good(state, _result(rel_nan), RGB).depth[10, 10])


# ---------------------------------------------------------------- real (fixture-size) MoGe-2
@pytest.fixture(scope="module")
def moge():
    require_shared("fixtures/moge2/infer")
    fx = Fixture(FIXTURES / "moge2" / "infer")  # pinhole-conditioned weights: a real focal
    cfg = moge2_config_from_official(fx.meta["model_config"], fx.meta["backbone_factory"]["kwargs"])
    return load_moge2(fx.path / "weights.safetensors", config=cfg)


def _tiny_dit(semantics_dim: int) -> DiT:
    with torch.device("meta"):
        dit = DiT(DiTConfig(hidden_size=64, depth=2, num_heads=2, mlp_ratio=2.0, semantics_dim=semantics_dim))
    dit = dit.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in dit.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if p.dim() > 1 else 0.1))
    return dit.eval()


def _frames() -> list[np.ndarray]:
    yy, xx = np.mgrid[0:60, 0:90]
    base = np.stack([xx * 2, yy * 3, (xx + yy) % 255], -1)
    return [np.clip(base + 10 * k, 0, 255).astype(np.uint8) for k in range(2)]


@pytest.mark.numeric
def test_shared_encoder_runs_once_per_frame_and_equals_unshared(moge):
    calls = []
    hook = moge.encoder.register_forward_hook(lambda m, a, o: calls.append(a[0].shape))
    cfg = InferenceConfig(steps=1, target_area=64 * 96)
    dit = _tiny_dit(moge.cfg.dim_out)
    try:
        shared_pipe, shared_stage = ppd_with_moge2(dit, moge, cfg)
        assert isinstance(shared_pipe.encoder, SharedMoGe2)
        plain_pipe = PPDPipeline(dit, moge, cfg)
        plain_stage = MetricStage(MoGe2Runner(moge, grid="semantics"))
        out = {}
        for name, pipe, stage in (("shared", shared_pipe, shared_stage), ("plain", plain_pipe, plain_stage)):
            calls.clear()
            ps, ms = pipe.new_stream(seed=1), stage.new_state(seed=2)
            out[name] = []
            for rgb in _frames():
                rel = pipe.push(ps, rgb)[0]
                out[name].append((rel, stage(ms, rel, rgb)))
            out[name + "_calls"] = len(calls)
    finally:
        hook.remove()
    assert out["shared_calls"] == 2 and out["plain_calls"] == 4
    for (rs, ms), (rp, mp) in zip(out["shared"], out["plain"]):
        assert np.array_equal(rs.depth_model, rp.depth_model)
        assert np.array_equal(ms.depth, mp.depth, equal_nan=True) and ms.intrinsics == mp.intrinsics
        assert ms.intrinsics_predicted and ms.intrinsics.fx > 0 and np.isfinite(ms.depth).any()


def test_from_checkpoints_builds_the_shared_pair(moge, tmp_path):
    dit = _tiny_dit(moge.cfg.dim_out)
    torch.save({f"dit.{k}": v for k, v in dit.state_dict().items()}, tmp_path / "ppd_moge.pth")
    torch.save({"model": moge.state_dict(), "model_config": {}}, tmp_path / "model.pt")
    pipe, stage = ppd_with_moge2_from_checkpoints(str(tmp_path / "ppd_moge.pth"), str(tmp_path / "model.pt"),
                                                  InferenceConfig(steps=1), dit_cfg=dit.cfg, moge_cfg=moge.cfg)
    assert isinstance(pipe.encoder, SharedMoGe2) and stage.moge is pipe.encoder
    with pytest.raises(ConfigError, match="semantics"):
        ppd_with_moge2(_tiny_dit(16), moge)


@pytest.mark.numeric
def test_real_moge_metric_depth_matches_moge_on_its_own_log_depth(moge):
    rgb = _frames()[0]
    img = working_image(rgb, (H, W))
    pred = MoGe2Runner(moge, num_tokens=96).predict(img)
    m = pred.mask[0].numpy()
    assert m.any() and pred.focal.item() > 0
    rel = np.where(m, (np.log1p(pred.depth[0].numpy()) - 0.1) / 0.7, 0).astype(np.float32)
    stage = MetricStage(MoGe2Runner(moge, num_tokens=96))
    r = stage(stage.new_state(), DepthResult(depth=np.zeros(rgb.shape[:2], np.float32), depth_model=rel, index=0),
              rgb, image=img)
    # exp(log1p(d)) round trip and a refit in float32: a few hundred ulps at most (1e-4 ~ 1700 u)
    assert np.allclose(r.depth[m], pred.depth[0].numpy()[m], rtol=1e-4) and np.isposinf(r.depth[~m]).all()
    assert r.intrinsics.fx == pytest.approx(pred.intrinsics[0, 0, 0].item() * W, rel=1e-6)
    assert math.isfinite(r.moge_metric_scale)


class NoisyMoGe(FakeMoGe):
    """MoGe-2 predictions whose metric depth is off by a fresh random factor each call (±10 %)."""

    def __init__(self, depth: np.ndarray, mask: np.ndarray) -> None:
        super().__init__(depth, mask)
        self.rng = np.random.default_rng(11)

    def predict(self, image: torch.Tensor, fov_x: float | None = None) -> MoGe2Prediction:
        pred = super().predict(image, fov_x)
        pred.depth = pred.depth * float(self.rng.uniform(0.9, 1.1))
        return pred


def test_metric_scale_does_not_drift_over_10000_frames():
    depth, mask, _ = _scene()
    stage = MetricStage(NoisyMoGe(depth, mask), MetricConfig(refresh_every=10, smoothing=0.8))
    state = stage.new_state(seed=0)
    rng = np.random.default_rng(5)
    errors = []
    for i in range(10_000):
        # the relative model's affine-invariant output wanders from frame to frame
        a, b = 1.5 * rng.uniform(0.97, 1.03), 0.2 + rng.uniform(-0.02, 0.02)
        rel = ((np.log1p(depth) - b) / a).astype(np.float32)
        rel[~mask] = rel[mask].max() + 1.0
        out = stage(state, _result(rel, i), RGB)
        errors.append(float(np.median(np.abs(out.depth[mask] / depth[mask] - 1))))
    errors = np.array(errors)
    assert errors.max() < 0.25  # bounded by the per-fit noise, never accumulating
    assert errors[-1000:].mean() <= errors[:1000].mean() * 1.5 + 0.01
    assert state.frames == 10_000
