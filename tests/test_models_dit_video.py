"""DiT_Video: fixture parity, full-size checkpoint layout, RGTP/temporal behaviour."""
from __future__ import annotations

import pytest
import torch

from ppd_ros.config import DiTVideoConfig, dit_video_config_from_official, preset, reduced_dit_video
from ppd_ros.errors import ConfigError, InputError
from ppd_ros.models.dit_video import DiT_Video, WindowContext, pool_tokens
from ppd_ros.nn import sincos_2d_table
from ppd_ros.parity import Fixture
from ppd_ros.parity.ppvd import dit_video_fixture

from .conftest import FIXTURES, manifest
from .tolerances import dit_layers, dit_longest_reduction, fp32_same_maths


@pytest.mark.numeric
@pytest.mark.needs_shared("fixtures/ppvd/dit_video_small")
def test_fixture_parity_all_outputs() -> None:
    checks = list(dit_video_fixture(Fixture(FIXTURES / "ppvd" / "dit_video_small")))
    assert len(checks) >= 10  # dit_out + every stored intermediate
    failed = [(c.name, c.max_abs, c.note) for c in checks if not c.passed]
    assert not failed, failed


def test_full_size_keys_and_shapes_match_manifest() -> None:
    want = {k[len("dit_video."):]: v for k, v in manifest("ppvd_dit_video.json").items()}
    with torch.device("meta"):
        model = DiT_Video(preset("ppvd_dit_video"))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    assert sum(v.numel() for v in model.state_dict().values()) == 561_754_944


def test_official_constructor_keywords_map_onto_config() -> None:
    cfg = dit_video_config_from_official({"hidden_size": 32, "num_heads": 2, "sem_dim": 96, "depth": 24,
                                          "input_size": 512, "patch_size": 8, "mlp_ratio": 4.0})
    assert (cfg.semantics_dim, cfg.rgtp_from, cfg.temporal_from, cfg.num_temporal) == (96, 18, 21, 3)
    with pytest.raises(ConfigError):
        dit_video_config_from_official({"hidden_size": 32, "num_heads": 2, "sem_dim": 96, "depth": 12})


def _tiny(seed: int = 0) -> DiT_Video:
    torch.manual_seed(seed)
    model = DiT_Video(reduced_dit_video(16, 8, 2, 24, input_size=64)).eval()
    for p in model.parameters():  # adaLN-Zero style zeros would hide everything; randomise it all
        if p.requires_grad:
            p.data.normal_(0, 0.3)
    return model


def _inputs(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 64, 64, generator=g), torch.randn(n, 16, 24, generator=g)


def test_pos_embed_is_the_fixed_table_and_frozen() -> None:
    model = _tiny()
    assert not model.pos_embed.requires_grad
    assert torch.equal(model.pos_embed.data, sincos_2d_table(16, 4))
    assert model.rope is None  # no RoPE in the video DiT


@pytest.mark.numeric
def test_key_value_only_reference_tokens_equal_appending_them() -> None:
    """Spec 2.4: appending the pooled tokens, running the block and dropping them == K/V-only tokens."""
    model = _tiny()
    blk = model.blocks[model.cfg.rgtp_from]
    tok = torch.randn(4, 64, 16)
    c = torch.randn(1, 16)
    refs = WindowContext(model.cfg).reference_tokens(model.cfg.rgtp_from, tok)  # (4, 3*4, 16)
    fast = blk(tok, c, None, extra=refs, mod=blk.modulation(c))
    full = blk(torch.cat([tok, refs], 1), c.expand(4, -1))[:, :64]
    # one block (7 matmul layers) in another summation order: rel_bound(fp32, 7, mlp width) ~ 5e-6
    torch.testing.assert_close(fast, full, **fp32_same_maths(7, int(model.cfg.hidden_size * model.cfg.mlp_ratio)))


def test_pooling_is_4x4_average_row_major() -> None:
    tok = torch.arange(64, dtype=torch.float32).reshape(1, 64, 1)  # 8x8 grid, value = index
    pooled = pool_tokens(tok, 8, 4)[0, :, 0]
    assert pooled.tolist() == [13.5, 17.5, 45.5, 49.5]  # mean of the four 4x4 quadrants


@pytest.mark.numeric
def test_swapping_reference_frames_swaps_outputs_and_frames_are_coupled() -> None:
    model = _tiny()
    x, sem = _inputs(5)
    t = torch.tensor(500, dtype=torch.int32)
    with torch.no_grad():
        out = model(x, sem, t)
        perm = [1, 0, 2, 3, 4]
        swapped = model(x[perm], sem[perm], t)
        # the whole model, frames reordered (tests/tolerances.py): ~6e-5
        tol = fp32_same_maths(dit_layers(model.cfg), dit_longest_reduction(model.cfg))
        torch.testing.assert_close(swapped, out[perm], **tol)
        # frame 4 is not a reference, but the temporal blocks couple it to the others
        x2 = x.clone()
        x2[3] += 1.0
        out2 = model(x2, sem, t)
    assert (out2[4] - out[4]).abs().max() > 1e-4


def test_wrong_input_size_is_a_typed_error() -> None:
    model = _tiny()
    x, sem = _inputs(2)
    with pytest.raises(InputError):
        model(x[..., :48], sem, torch.tensor(500))


def test_config_validates_thresholds() -> None:
    with pytest.raises(ConfigError):
        DiTVideoConfig(depth=24, rgtp_from=5)  # RGTP must sit in the fine half
    with pytest.raises(ConfigError):
        DiTVideoConfig(input_size=520)
