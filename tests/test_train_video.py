"""Small PPVD training code: the image-DiT initialisation, and that a few steps lower the loss."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppd_ros.config import preset
from ppd_ros.models.dit import DiT
from ppd_ros.embedded import file_sha256
from ppd_ros.train.video import (VIDEO_PRESET_FOR, VideoTrainConfig, VideoTrainer, noise_channels,
                                 video_dit_from_image, window_indices, window_target)


class _NoCrossFrame:
    """No reference tokens for RGTP, no extra frames for the temporal block."""

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        return tok[:, :0]

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> None:
        return None


def _random_image_dit(use_rope: bool, name: str = "embedded_ppd_dit") -> DiT:
    torch.manual_seed(0)
    dit = DiT(preset(name), use_rope=use_rope)  # RoPE has no tensors: the same state dict
    with torch.no_grad():
        for p in dit.parameters():  # no zero gates anywhere, so every path contributes
            p.add_(0.02 * torch.randn_like(p))
    return dit


def _inputs(patch: int = 8):
    g = torch.Generator().manual_seed(1)
    coarse = (128 // (2 * patch)) ** 2
    return torch.randn(3, 4, 128, 128, generator=g), torch.randn(3, coarse, 128, generator=g), torch.tensor([750])


@pytest.mark.numeric
@torch.no_grad()
@pytest.mark.parametrize("image_preset,video_preset", sorted(VIDEO_PRESET_FOR.items()))
def test_init_from_image_dit_is_the_image_dit_without_cross_frame_terms(image_preset, video_preset):
    """The small presets keep RoPE: at initialisation DiT_Video computes exactly the image DiT per frame."""
    cfg = preset(video_preset)
    assert cfg.rope
    image = _random_image_dit(use_rope=True, name=image_preset)
    video = video_dit_from_image(image, cfg)
    assert float(video.pos_embed.abs().max()) == 0.0  # RoPE carries position; no table on top
    x, sem, t = _inputs(cfg.patch_size)
    # temporal blocks are the identity (zero gates) for any number of frames
    tok = torch.randn(3, (128 // cfg.patch_size) ** 2, cfg.hidden_size, generator=torch.Generator().manual_seed(2))
    c = video.embed_timestep(t, 1)
    torch.testing.assert_close(video.temporal_block(0, tok, c, _NoCrossFrame()), tok, rtol=0, atol=0)
    # same maths, other tensor layout: rel_bound(fp32, 19 layers, n = 1024) ~ 3e-5 (tests/tolerances.py) < 1e-4
    torch.testing.assert_close(video(x, sem, t, _NoCrossFrame()), image(x, sem, t), rtol=1e-4, atol=1e-5)
    # RGTP tokens are position-free keys: with references the output moves, but stays finite
    out = video(x, sem, t)
    assert torch.isfinite(out).all() and not torch.allclose(out, image(x, sem, t))


@pytest.mark.numeric
@torch.no_grad()
def test_table_variant_without_rope_matches_the_image_dit_once_the_table_is_removed():
    from dataclasses import replace
    cfg = replace(preset("embedded_ppvd_dit_video"), rope=False)
    image = _random_image_dit(use_rope=False)
    video = video_dit_from_image(image, cfg)
    assert noise_channels(cfg) == 256  # the 16x16 coarse noise patch of this preset
    assert float(video.pos_embed[..., :256].abs().max()) == 0.0  # noise channels untouched
    assert float(video.pos_embed[..., 256:].abs().max()) > 0.5
    x, sem, t = _inputs()
    video.pos_embed.zero_()
    # same maths, other tensor layout: rel_bound(fp32, 19 layers, n = 1024) ~ 3e-5 (tests/tolerances.py) < 1e-4
    torch.testing.assert_close(video(x, sem, t, _NoCrossFrame()), image(x, sem, t), rtol=1e-4, atol=1e-5)


def test_window_targets_share_one_normalisation_and_indices_are_causal():
    d = torch.rand(3, 1, 8, 8) + 1.0
    d[1] *= 4  # a farther frame must stay farther after normalisation (one pair of quantiles)
    tgt = window_target(d)
    assert float(tgt[1].mean()) > float(tgt[0].mean()) + 0.2
    rng = np.random.default_rng(0)
    for _ in range(20):
        ref, new = window_indices(rng, 20, 3, 5)
        assert ref[0] == 0 and len(ref) == 3 and max(ref) < new[0] and new == list(range(new[0], new[0] + 5))


def test_a_few_steps_lower_the_loss_on_a_fixed_window(tmp_path):
    torch.set_num_threads(1)
    cfg = VideoTrainConfig(out=str(tmp_path / "run"), sequences=1, seq_len=8, new_frames=2, stream_every=2)
    tr = VideoTrainer(cfg)
    tr.load_data()
    opt = torch.optim.AdamW(tr.params, lr=1e-4)
    for step in (0, 1):  # step 0: official window, step 1: streaming structure
        first = last = None
        for _ in range(4):
            loss, kind = tr.losses(step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = float(loss.detach()) if first is None else first
            last = float(loss.detach())
        assert kind == ("window" if step == 0 else "stream")
        assert last < first, (kind, first, last)


def test_export_pins_the_image_files_and_points_the_image_card_at_it(tmp_path):
    torch.set_num_threads(1)
    tr = VideoTrainer(VideoTrainConfig(out=str(tmp_path / "run"), sequences=1, seq_len=8))
    wd = tmp_path / "weights"
    wd.mkdir()
    for f in ("embedded_ppd_dit.safetensors", "embedded_ppd_encoder.safetensors"):
        (wd / f).write_bytes(f.encode())  # stand-ins: only their hashes matter here
    (wd / "embedded_ppd.json").write_text(json.dumps({"name": "default"}))
    card = tr.export(wd)
    assert card["sha256"] == {f: file_sha256(wd / f) for f in ("embedded_ppd_dit.safetensors",
                                                              "embedded_ppd_encoder.safetensors")}
    assert card["encoder_preset"] == tr.cfg.encoder_preset and card["dit_preset"] == tr.cfg.dit_preset
    image_card = json.loads((wd / "embedded_ppd.json").read_text())
    assert image_card["name"] == "default"
    assert image_card["video_model"]["card"] == "embedded_ppvd.json"
    assert image_card["video_model"]["preset"] == tr.cfg.dit_preset
