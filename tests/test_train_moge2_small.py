"""Small MoGe-2 training: targets agree with inference, loss minimal at the GT, learning, determinism/resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ppd_ros.config import preset
from ppd_ros.data.synthetic import SynthConfig, make_frame
from ppd_ros.models.moge2 import MoGe2Model, MoGe2Output
from ppd_ros.pipelines.moge import postprocess
from ppd_ros.train.moge2_small import (MoGe2TrainConfig, MoGe2Trainer, gt_points, half_diagonal_focal, moge2_losses,
                                       num_tokens, total_loss)

H, W = 48, 64


@pytest.fixture(scope="module")
def frame():
    # a seed with sky: both mask classes occur
    for seed in range(50):
        f = make_frame(seed, SynthConfig(height=H, width=W))
        if (~np.isfinite(f.depth)).mean() > 0.05:
            return torch.from_numpy(f.depth)[None], torch.from_numpy(f.K).float()[None]
    raise AssertionError("no synthetic frame with sky")


def _output(depth: torch.Tensor, K: torch.Tensor, scale: float = 3.0) -> MoGe2Output:
    """What a perfect network would emit: GT points in some unit, mask probabilities, the metres per unit."""
    finite = torch.isfinite(depth)
    pts = torch.where(finite[..., None], gt_points(depth, K) / scale, torch.ones(3))
    return MoGe2Output(points=pts, mask=finite.float() * 0.998 + 0.001, metric_scale=torch.tensor([scale]), normal=None)


@pytest.mark.numeric
def test_training_targets_are_what_postprocess_reads_back(frame):
    depth, K = frame
    pred = postprocess(_output(depth, K))
    finite = torch.isfinite(depth)
    # the focal/shift solve is float32 least squares over H*W points: sqrt(H*W) u ~ 1e-5; 1e-4 leaves 10x
    torch.testing.assert_close(pred.focal, half_diagonal_focal(K, H, W), rtol=1e-4, atol=0)
    assert abs(float(pred.shift)) < 1e-4
    assert torch.equal(pred.mask, finite)
    torch.testing.assert_close(pred.depth[finite], depth[finite], rtol=1e-4, atol=0)
    assert torch.isinf(pred.depth[~finite]).all()


def test_loss_is_minimal_at_the_gt_and_scale_invariant_in_the_points(frame):
    depth, K = frame
    at_gt = moge2_losses(_output(depth, K), depth, K)
    assert float(at_gt["point"]) < 1e-5 and float(at_gt["scale"]) < 1e-5 and float(at_gt["mask"]) < 0.01
    other_unit = moge2_losses(_output(depth, K, scale=0.2), depth, K)  # points in another unit: same loss
    assert float(other_unit["point"]) < 1e-5 and float(other_unit["scale"]) < 1e-5
    noisy = _output(depth, K)
    noisy.points = noisy.points * (1 + 0.1 * torch.randn(noisy.points.shape, generator=torch.Generator().manual_seed(0)))
    assert float(moge2_losses(noisy, depth, K)["point"]) > 0.03
    wrong = _output(depth, K)
    wrong.metric_scale = wrong.metric_scale * 2
    assert float(moge2_losses(wrong, depth, K)["scale"]) == pytest.approx(np.log(2), rel=1e-4)
    flipped = _output(depth, K)
    flipped.mask = 1 - flipped.mask
    assert float(moge2_losses(flipped, depth, K)["mask"]) > 5


def test_a_few_steps_reduce_the_loss_on_a_tiny_batch(frame):
    torch.set_num_threads(1)
    depth, K = frame
    torch.manual_seed(0)
    model = MoGe2Model(preset("embedded_moge2"))
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cfg = MoGe2TrainConfig()
    losses = []
    for _ in range(12):
        loss = total_loss(moge2_losses(model(x, num_tokens(model)), depth, K), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def _cfg(out, data) -> MoGe2TrainConfig:
    return MoGe2TrainConfig(out=str(out), data=str(data), frames=4, eval_frames=2, height=H, width=W, batch=2, steps=3,
                            warmup=1, eval_every=1000, ckpt_every=1)


def test_training_is_deterministic_by_seed_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    straight = MoGe2Trainer(_cfg(tmp_path / "a", tmp_path / "data"), log=lambda s: None)
    straight.run()
    part = MoGe2Trainer(_cfg(tmp_path / "b", tmp_path / "data"), log=lambda s: None)
    part.run(until=2)
    resumed = MoGe2Trainer(_cfg(tmp_path / "b", tmp_path / "data"), log=lambda s: None)
    assert resumed.step == 2
    resumed.run()
    assert straight.history and straight.history[-1]["step"] == 3
    for (k, v), (_, w) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)
