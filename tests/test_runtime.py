"""Opt-in speed-ups in ppd_ros.runtime keep the model's maths (bit-exact or to fp32 rounding)."""
from __future__ import annotations

import copy

import pytest
import torch

from ppd_ros.config import InferenceConfig, preset
from ppd_ros.models import DiT
from ppd_ros.nn import RoPE2D, grid_positions
from ppd_ros.runtime import (PLAIN, Speedups, StepBuckets, apply_speedups, autocast, bucket_method,
                             cast_matmul_weights, fuse_modulation, resolve_dtype, set_attention_backend,
                             set_fused_norm, set_rope_cache)


def random_dit(seed: int = 0) -> DiT:
    torch.manual_seed(seed)
    dit = DiT(preset("fixture_ppd_dit_small")).eval().requires_grad_(False)
    with torch.no_grad():
        for p in dit.parameters():  # the adaLN-Zero init would make every output exactly zero
            p.normal_(0.0, 0.05)
    return dit


def inputs(h: int = 32, w: int = 48, b: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (torch.randn(b, 4, h, w, generator=g), torch.randn(b, (h // 16) * (w // 16), 1024, generator=g),
            torch.tensor(750, dtype=torch.int32))


@pytest.mark.parametrize("batch_pos", [False, True])
def test_rope_tables_bit_identical(batch_pos: bool) -> None:
    rope = RoPE2D(100.0)
    pos = grid_positions(4, 6)
    if batch_pos:
        pos = pos[None].expand(3, -1, -1)
    x = torch.randn(3, 2, 24, 16)
    ref = rope(x, pos)
    rope.cache_tables = True
    assert torch.equal(rope(x, pos), ref)
    assert torch.equal(rope(x, pos), ref)  # second call served from the cache
    assert len(rope._tables) == 1


def test_rope_cache_cleared_around_forward() -> None:
    dit = random_dit()
    x, s, t = inputs()
    with torch.inference_mode():
        ref = dit(x, s, t)
        set_rope_cache(dit, True)
        out = dit(x, s, t)
        assert len(dit.rope._tables) == 0  # hooks clear it after the call
        set_rope_cache(dit, False)
        assert torch.equal(dit(x, s, t), ref)
    assert torch.equal(out, ref)


def test_fused_modulation_matches_per_block() -> None:
    dit = random_dit()
    x, s, t = inputs(b=2)
    with torch.inference_mode():
        ref = dit(x, s, t)
        handle = fuse_modulation(dit)
        c = torch.randn(2, dit.cfg.hidden_size)
        chunks = dit.blocks[1].modulation(c)
        assert len(chunks) == 6 and chunks[0].shape == (2, dit.cfg.hidden_size)
        expect = dit.blocks[1].adaLN_modulation(c).chunk(6, dim=-1)
        for a, e in zip(chunks, expect):
            torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(dit(x, s, t), ref, rtol=1e-5, atol=1e-5)
        handle.remove()
        assert "modulation" not in dit.blocks[0].__dict__
        assert torch.equal(dit(x, s, t), ref)


def test_cast_weights_same_as_autocast() -> None:
    dit = random_dit()
    x, s, t = inputs()
    cast = cast_matmul_weights(copy.deepcopy(dit), torch.bfloat16)
    assert cast.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert cast.blocks[0].attn.q_norm.weight.dtype == torch.float32  # norms stay fp32 under autocast
    with torch.inference_mode(), autocast(torch.device("cpu"), torch.bfloat16):
        torch.testing.assert_close(cast(x, s, t).float(), dit(x, s, t).float(), rtol=0, atol=1e-6)


def test_all_speedups_fp32_parity() -> None:
    plain, opt = random_dit(), random_dit()
    apply_speedups(plain, PLAIN, torch.float32)
    handle = apply_speedups(opt, Speedups(), torch.float32)
    assert handle is not None and plain.blocks[0].attn.backend == "math"
    x, s, t = inputs()
    with torch.inference_mode():
        torch.testing.assert_close(opt(x, s, t), plain(x, s, t), rtol=1e-5, atol=1e-5)


def test_step_buckets_per_shape() -> None:
    dit = random_dit()
    set_attention_backend(dit, "sdpa")
    step = StepBuckets(dit, "eager")
    with torch.inference_mode():
        for h, w in ((32, 32), (32, 48), (32, 32)):
            x, s, t = inputs(h, w)
            assert torch.equal(step(x, s, t), dit(x, s, t))
    assert len(step.buckets) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cudagraph_needs_cuda() -> None:
    with pytest.raises(RuntimeError, match="CUDA"):
        StepBuckets(lambda x: x, "cudagraph")


def test_pipeline_step_hook_is_used() -> None:
    from ppd_ros.models import DA2SemanticEncoder
    from ppd_ros.pipelines.image import PPDPipeline
    torch.manual_seed(0)
    dit = DiT(preset("fixture_ppd_e2e_dit"))
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0.0, 0.05)
    pipe = PPDPipeline(dit, DA2SemanticEncoder(preset("fixture_da2_vit_small")), InferenceConfig(steps=2))
    img, noise = torch.rand(1, 3, 32, 32), torch.randn(1, 1, 32, 32)
    ref = pipe.infer_tensor(img, noise)
    calls = []
    pipe.step = lambda x, s, t: calls.append(int(t)) or pipe.dit(x, s, t)
    assert torch.equal(pipe.infer_tensor(img, noise), ref)
    assert calls == [1000, 500]


def test_resolve_dtype_cpu_auto_is_fp32() -> None:
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_bucket_method_replaces_instance_method_only() -> None:
    dit = random_dit()
    x, s, t = inputs()
    with torch.inference_mode():
        ref = dit.forward(x, s, t)
        steps = bucket_method(dit, "forward", "eager")
        assert dit.forward is steps and torch.equal(dit.forward(x, s, t), ref)
        del dit.forward
        assert torch.equal(dit.forward(x, s, t), ref)


@pytest.mark.parametrize("batch", [1, 2])
def test_fused_norm_matches(batch: int) -> None:
    dit = random_dit()
    x, s, t = inputs(b=batch)
    with torch.inference_mode():
        ref = dit(x, s, t)
        set_fused_norm(dit, True)
        assert dit.blocks[0].fused_norm
        torch.testing.assert_close(dit(x, s, t), ref, rtol=1e-5, atol=1e-5)


def test_pipeline_speedups_find_models_through_wrappers_and_remove() -> None:
    from types import SimpleNamespace

    from ppd_ros.runtime import DEFAULT, MATH, REFERENCE, apply_pipeline_speedups, pipeline_models, speedups_for
    dit, other = random_dit(), torch.nn.Linear(2, 2)
    pipe = SimpleNamespace(dit=dit, runner=SimpleNamespace(model=other, again=dit), fn=lambda: None)
    assert [id(m) for m in pipeline_models([pipe, None])] == [id(dit), id(other)]  # each module once
    x, s, t = inputs()
    with torch.inference_mode():
        ref = dit(x, s, t)
        applied = apply_pipeline_speedups(pipe, DEFAULT)
        assert dit.blocks[0].fused_norm and dit.rope.cache_tables and len(applied.fused) == 1
        torch.testing.assert_close(dit(x, s, t), ref, rtol=0, atol=2 ** 8 * torch.finfo(torch.float32).eps)
        applied.remove()
        assert not dit.blocks[0].fused_norm and not dit.rope.cache_tables and "modulation" not in dit.blocks[0].__dict__
        assert torch.equal(dit(x, s, t), ref)
    assert speedups_for(InferenceConfig()) == DEFAULT and REFERENCE.attention == "sdpa"
    assert speedups_for(InferenceConfig(speedups=False)) == REFERENCE
    assert speedups_for(InferenceConfig(speedups=False, attention_backend="math")) == MATH
