"""Training code: PPD target/loss maths and exact, deterministic resume of a tiny run."""
from __future__ import annotations

import torch

from ppd_ros.train.loop import TrainConfig, Trainer
from ppd_ros.train.losses import depth_loss, flow_matching_inputs, gradient_loss


def test_flow_matching_inputs_follow_the_schedule():
    x0, noise = torch.full((2, 1, 4, 4), 0.25), torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    x_t, v = flow_matching_inputs(x0, noise, torch.tensor([0, 1000]))
    torch.testing.assert_close(x_t[0], x0[0])  # t = 0: data
    torch.testing.assert_close(x_t[1], noise[1])  # t = T: noise
    torch.testing.assert_close(v, noise - x0)


def test_gradient_loss_ignores_offsets_but_not_edges():
    a = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert float(gradient_loss(a + 0.3, a)) < 1e-6
    assert float(depth_loss(a, a)) == 0.0
    b = a.clone()
    b[..., 8:] += 0.5
    assert float(gradient_loss(b, a)) > 0.01


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "run"), frames=8, height=32, width=48, batch=2, decoder_steps=2, dit_steps=2,
                eval_every=1000, ckpt_every=1, eval_frames=2, eval_steps=1)
    return TrainConfig(**{**base, **kw})


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    torch.set_num_threads(1)
    straight = Trainer(_cfg(tmp_path / "a"))
    straight.run()
    part = Trainer(_cfg(tmp_path / "b"))
    part.run(until=3)  # stops inside the DiT stage
    resumed = Trainer(_cfg(tmp_path / "b"))
    assert resumed.step == 3
    resumed.run()
    for (k, v), (_, w) in zip(straight.dit.state_dict().items(), resumed.dit.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)
    for (k, v), (_, w) in zip(straight.enc.decoder.state_dict().items(), resumed.enc.decoder.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)


def test_edge_stage_trains_the_dit_and_freezes_the_decoder(tmp_path):
    torch.set_num_threads(1)
    tr = Trainer(_cfg(tmp_path, edge_steps=2))
    assert tr.cfg.total_steps == 6
    tr.run(until=4)  # end of the joint DiT stage
    dec = {k: v.clone() for k, v in tr.enc.decoder.state_dict().items()}
    dit = {k: v.clone() for k, v in tr.dit.state_dict().items()}
    tr.run()
    assert tr.step == 6
    for k, v in tr.enc.decoder.state_dict().items():
        torch.testing.assert_close(v, dec[k], rtol=0, atol=0, msg=k)
    changed = [k for k, v in tr.dit.state_dict().items() if not torch.equal(v, dit[k])]
    assert changed, "stage 3 must update the DiT"



def test_frame_pool_cache_returns_what_was_built(tmp_path):
    import numpy as np

    from ppd_ros.data.synthetic import SynthConfig
    from ppd_ros.train.dataset import frame_pool
    cfg = SynthConfig(height=24, width=32)
    built = frame_pool(3, 2, cfg, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    cached, uncached = frame_pool(3, 2, cfg, tmp_path), frame_pool(3, 2, cfg)
    for a, b, c in zip(built, cached, uncached):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_side_loss_is_zero_on_either_side_of_an_edge_and_positive_in_between():
    from ppd_ros.train.losses import side_loss
    target = torch.zeros(1, 1, 8, 8)
    target[..., 4:] = 1.0  # a step edge between columns 3 and 4
    w = torch.ones(1, 1, 1, 1)
    assert float(side_loss(target, target, w)) == 0.0
    shifted = torch.zeros(1, 1, 8, 8)
    shifted[..., 3:] = 1.0  # edge moved by one pixel: every band pixel still holds a side's value
    assert float(side_loss(shifted, target, w)) == 0.0
    blurred = target.clone()
    blurred[..., 3:5] = 0.5  # flying pixels
    assert float(side_loss(blurred, target, w)) > 0.2
    assert float(side_loss(blurred, target, torch.zeros(1, 1, 1, 1))) == 0.0


def test_export_writes_loadable_files_keeps_the_metric_model_and_drops_the_stale_video_entry(tmp_path):
    import json

    from safetensors.torch import load_file

    from ppd_ros.config import preset
    from ppd_ros.models.dit import DiT
    from ppd_ros.models.small_encoder import SmallSemanticEncoder
    torch.set_num_threads(1)
    tr = Trainer(_cfg(tmp_path))
    wd = tmp_path / "weights"
    wd.mkdir()
    (wd / "embedded_ppd.json").write_text(json.dumps({"metric_model": {"card": "embedded_moge2.json"},
                                                      "video_model": {"card": "embedded_ppvd.json"}}))
    tr.export(wd)
    card = json.loads((wd / "embedded_ppd.json").read_text())
    assert card["metric_model"] == {"card": "embedded_moge2.json"} and "video_model" not in card
    dit = DiT(preset(card["dit_preset"]))
    dit.load_state_dict({k: v.float() for k, v in load_file(str(wd / card["files"]["dit"])).items()}, strict=True)
    SmallSemanticEncoder(preset(card["encoder_preset"])).load_state_dict(
        load_file(str(wd / card["files"]["encoder"])), strict=True)
