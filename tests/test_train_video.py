"""Small PPVD training code: the image-DiT initialisation, and that a few steps lower the loss."""
from __future__ import annotations

import numpy as np
import torch

from ppd_ros.config import preset
from ppd_ros.models.dit import DiT
from ppd_ros.train.video import (NOISE_CHANNELS, VideoTrainConfig, VideoTrainer, video_dit_from_image, window_indices,
                                 window_target)


class _NoCrossFrame:
    """No reference tokens for RGTP, no extra frames for the temporal block."""

    def reference_tokens(self, block: int, tok: torch.Tensor) -> torch.Tensor:
        return tok[:, :0]

    def temporal_tokens(self, j: int, tok: torch.Tensor) -> None:
        return None


def _random_image_dit(use_rope: bool) -> DiT:
    torch.manual_seed(0)
    dit = DiT(preset("embedded_ppd_dit"), use_rope=use_rope)  # RoPE has no tensors: the same state dict
    with torch.no_grad():
        for p in dit.parameters():  # no zero gates anywhere, so every path contributes
            p.add_(0.02 * torch.randn_like(p))
    return dit


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 4, 128, 128, generator=g), torch.randn(3, 64, 128, generator=g), torch.tensor([750])


@torch.no_grad()
def test_init_from_image_dit_is_the_image_dit_without_cross_frame_terms():
    """The shipped preset keeps RoPE: at initialisation DiT_Video computes exactly the image DiT per frame."""
    cfg = preset("embedded_ppvd_dit_video")
    assert cfg.rope
    image = _random_image_dit(use_rope=True)
    video = video_dit_from_image(image, cfg)
    assert float(video.pos_embed.abs().max()) == 0.0  # RoPE carries position; no table on top
    x, sem, t = _inputs()
    # temporal blocks are the identity (zero gates) for any number of frames
    tok = torch.randn(3, 256, 384, generator=torch.Generator().manual_seed(2))
    c = video.embed_timestep(t, 1)
    torch.testing.assert_close(video.temporal_block(0, tok, c, _NoCrossFrame()), tok, rtol=0, atol=0)
    torch.testing.assert_close(video(x, sem, t, _NoCrossFrame()), image(x, sem, t), rtol=1e-4, atol=1e-5)
    # RGTP tokens are position-free keys: with references the output moves, but stays finite
    out = video(x, sem, t)
    assert torch.isfinite(out).all() and not torch.allclose(out, image(x, sem, t))


@torch.no_grad()
def test_table_variant_without_rope_matches_the_image_dit_once_the_table_is_removed():
    from dataclasses import replace
    cfg = replace(preset("embedded_ppvd_dit_video"), rope=False)
    image = _random_image_dit(use_rope=False)
    video = video_dit_from_image(image, cfg)
    assert float(video.pos_embed[..., :NOISE_CHANNELS].abs().max()) == 0.0  # noise channels untouched
    assert float(video.pos_embed[..., NOISE_CHANNELS:].abs().max()) > 0.5
    x, sem, t = _inputs()
    video.pos_embed.zero_()
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
