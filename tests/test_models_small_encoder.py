"""The embedded semantic encoder: its token grid follows the DiT's coarse patch (16 or 8 px)."""
from __future__ import annotations

import pytest
import torch

from ppd_ros.config import SmallEncoderConfig, preset
from ppd_ros.errors import ConfigError
from ppd_ros.models.dit import DiT
from ppd_ros.models.small_encoder import SmallSemanticEncoder
from ppd_ros.train.init import init_noise_passthrough


@pytest.mark.parametrize("stride", [16, 8])
def test_semantic_tokens_lie_on_the_requested_grid(stride):
    enc = SmallSemanticEncoder(SmallEncoderConfig(semantic_stride=stride)).eval()
    with torch.no_grad():
        tokens = enc.forward_semantics(torch.rand(2, 3, 96, 128))
    assert tokens.shape == (2, (96 // stride) * (128 // stride), 128)
    assert torch.isfinite(tokens).all()


def test_unsupported_semantic_stride_is_a_config_error():
    with pytest.raises(ConfigError, match="semantic_stride"):
        SmallEncoderConfig(semantic_stride=12)


@pytest.mark.numeric
@pytest.mark.parametrize("dit_preset,enc_preset", [("embedded_ppd_dit", "embedded_small_encoder"),
                                                    ("embedded_ppd_dit_p4", "embedded_small_encoder_s8"),
                                                    ("embedded_ppd_dit_p4d4", "embedded_small_encoder_s8")])
def test_passthrough_dit_starts_by_predicting_the_noise(dit_preset, enc_preset):
    """train/init.py: at step 0 the DiT returns v = noise (x0 = 0) with the encoder's real semantics."""
    torch.manual_seed(0)
    enc, dit = SmallSemanticEncoder(preset(enc_preset)).eval(), DiT(preset(dit_preset)).eval()
    init_noise_passthrough(dit)
    image = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(2, 1, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        v = dit(torch.cat([noise, image - 0.5], 1), enc.forward_semantics(image), torch.tensor([1000, 500]))
    assert v.shape == noise.shape
    # a close, not exact, identity: the final LayerNorm's gain is calibrated on random tokens
    cos = float(torch.nn.functional.cosine_similarity(v.flatten(), noise.flatten(), dim=0))
    assert cos > 0.98, cos
    assert 0.8 < float(v.norm() / noise.norm()) < 1.2
