"""Behaviour of the shared transformer parts."""
import math

import pytest
import torch

from ppd_ros.nn import (AdaLNBlock, Attention, Mlp, PatchEmbed, RoPE2D, TimestepEmbedder, grid_positions,
                        sincos_2d_table, timestep_frequencies)

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)


def test_rope_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    rope = RoPE2D(100.0)
    q, k = torch.randn(1, 2, 6, 16), torch.randn(1, 2, 6, 16)
    pos = grid_positions(2, 3)
    rq = rope(q, pos)
    # norms of 16-vectors with O(1) entries, rotated in float32: a few ulps of ~4 (1e-5 ~ 40 u)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    # shifting every position by the same offset leaves q.k unchanged (relative encoding)
    shifted = pos + torch.tensor([3, 5])
    a = rope(q, pos) @ rope(k, pos).transpose(-1, -2)
    b = rope(q, shifted) @ rope(k, shifted).transpose(-1, -2)
    # q.k of size ~|q||k| ~ 16; the angles pos * freq (positions up to 8) are rounded to ~8u, which moves q.k
    # by ~16 * 8u ~ 1e-5 at most: 1e-4 is 10x that
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(rq, q)


def test_rope_rotate_half_layout_row_then_column():
    rope = RoPE2D(100.0)
    x = torch.zeros(1, 1, 1, 8)
    x[..., 0] = 1.0  # first channel of the row half
    out = rope(x, torch.tensor([[1, 0]]))
    # channel pair (0, 2) of the row half turns by angle 1 * 100**0 = 1 rad; column half untouched
    assert out[0, 0, 0, 0].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    assert out[0, 0, 0, 2].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert torch.all(out[..., 4:] == 0)


def test_rope_rejects_bad_head_width():
    with pytest.raises(ValueError):
        RoPE2D()(torch.zeros(1, 1, 2, 6), torch.zeros(2, 2, dtype=torch.long))


def test_attention_sdpa_equals_math_and_extra_kv():
    torch.manual_seed(1)
    attn = Attention(32, 4, qk_norm=True, rope=RoPE2D())
    x, pos = torch.randn(2, 6, 32), grid_positions(2, 3)
    a = attn(x, pos)
    attn.backend = "math"
    assert torch.allclose(a, attn(x, pos), atol=1e-5)  # one attention, other summation order: ~sqrt(32) ulps
    # key/value-only extra tokens change the output, and zero-attention to them is impossible
    plain = Attention(32, 4)
    extra = torch.randn(2, 3, 32)
    assert not torch.allclose(plain(x), plain(x, extra=extra))
    # extras equal to the tokens themselves double every key: softmax unchanged -> same output
    assert torch.allclose(plain(x), plain(x, extra=x), atol=1e-5)


def test_attention_needs_positions_with_rope():
    with pytest.raises(ValueError):
        Attention(16, 2, rope=RoPE2D())(torch.randn(1, 4, 16))


def test_patch_embed_shapes_and_divisibility():
    pe = PatchEmbed(16, 4, 8)
    assert pe(torch.randn(2, 4, 32, 48)).shape == (2, 6, 8)
    with pytest.raises(ValueError):
        pe(torch.randn(1, 4, 30, 48))


def test_timestep_embedding_cos_first():
    e = timestep_frequencies(torch.tensor([0.0]), 8)
    assert torch.equal(e, torch.tensor([[1.0, 1, 1, 1, 0, 0, 0, 0]]))
    emb = TimestepEmbedder(16)
    assert emb(torch.tensor([750])).shape == (1, 16)


def test_sincos_table_column_first():
    t = sincos_2d_table(8, 3)[0]  # (9, 8): token r*3+c -> [E(c), E(r)]
    assert t.shape == (9, 8)
    assert torch.allclose(t[1, :4], torch.tensor([math.sin(1), math.sin(1e-2), math.cos(1), math.cos(1e-2)]), atol=1e-6)
    assert torch.allclose(t[1, 4:], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_adaln_block_zero_gates_are_identity_and_mod_cache_equal():
    torch.manual_seed(2)
    blk = AdaLNBlock(16, Attention(16, 2), Mlp(16, 32))
    x, c = torch.randn(1, 5, 16), torch.randn(1, 16)
    assert torch.allclose(blk(x, c), blk(x, c, mod=blk.modulation(c)))
    torch.nn.init.zeros_(blk.adaLN_modulation[1].weight)
    torch.nn.init.zeros_(blk.adaLN_modulation[1].bias)
    assert torch.equal(blk(x, c), x)  # adaLN-Zero: zero gates -> the block is the identity
