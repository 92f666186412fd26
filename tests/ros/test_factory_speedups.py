"""The node's default pipelines (built by ros.factory) run runtime.DEFAULT and match the reference path.

The reference path is the official procedure (runtime.REFERENCE: SDPA, per-block RoPE tables and adaLN
products), built by the same factory from the same shipped weights with ``speedups=False``. The
tolerance comes from the compute dtype's machine epsilon, not from this machine.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("rcl_interfaces")

from ppd_ros.data.real import load_real_frame  # noqa: E402
from ppd_ros.nn import AdaLNBlock, Attention, RoPE2D  # noqa: E402
from ppd_ros.ros.factory import build_models  # noqa: E402
from ppd_ros.ros.params import NodeSettings  # noqa: E402
from ppd_ros.runtime import DEFAULT, REFERENCE  # noqa: E402

ULPS = 2 ** 8  # allowed relative error in units of eps: ~30 sequential fp32 roundings per step, 4 steps


def tol(dtype: torch.dtype, ref: np.ndarray) -> float:
    return ULPS * torch.finfo(dtype).eps * float(np.abs(ref[np.isfinite(ref)]).max())


def _flags(models) -> dict[str, set]:
    dit = models.pipeline.dit
    return {"fused_norm": {b.fused_norm for b in dit.modules() if isinstance(b, AdaLNBlock)},
            "fused_mod": {"modulation" in b.__dict__ for b in dit.modules() if isinstance(b, AdaLNBlock)},
            "rope_cache": {r.cache_tables for r in dit.modules() if isinstance(r, RoPE2D)},
            "attention": {a.backend for m in (dit, models.metric.moge.model) for a in m.modules()
                          if isinstance(a, Attention)}}


@pytest.fixture(scope="module")
def node_models():
    return build_models(NodeSettings()), build_models(NodeSettings(speedups=False))


def test_node_default_applies_speedups(node_models) -> None:
    default, reference = node_models
    assert NodeSettings().speedups and default.speedups is not None and reference.speedups is None
    assert default.speedups.speedups.rope_cache == DEFAULT.rope_cache
    assert _flags(default) == {"fused_norm": {True}, "fused_mod": {True}, "rope_cache": {True}, "attention": {"sdpa"}}
    assert REFERENCE.attention == "sdpa"  # the official Attention's fused_attn=True
    assert _flags(reference) == {"fused_norm": {False}, "fused_mod": {False}, "rope_cache": {False},
                                 "attention": {"sdpa"}}


@pytest.mark.parametrize("name", ["kinect", "aloe"])
def test_node_default_matches_reference(node_models, name: str) -> None:
    frame = load_real_frame(name)
    out = {}
    for key, models in zip(("default", "reference"), node_models):
        pipe = models.pipeline
        result = pipe.push(pipe.new_stream(0), frame.rgb)[0]
        metric = models.metric(models.metric.new_state(), result, frame.rgb, None)
        out[key] = (result.depth_model, metric.depth, pipe.dtype)
    (rel, met, dtype), (rel_ref, met_ref, _) = out["default"], out["reference"]
    np.testing.assert_allclose(rel, rel_ref, rtol=0, atol=tol(dtype, rel_ref))
    finite = np.isfinite(met_ref)
    assert np.array_equal(np.isfinite(met), finite)
    np.testing.assert_allclose(met[finite], met_ref[finite], rtol=0, atol=tol(dtype, met_ref))


def test_video_stream_default_matches_reference() -> None:
    frames = [load_real_frame(n).rgb for n in ("kinect", "kinect", "kinect")]
    outs = []
    for sp in (True, False):
        models = build_models(NodeSettings(mode="video_stream", metric=False, speedups=sp))
        pipe, state = models.pipeline, None
        state = pipe.new_stream(0)
        res = [r for f in frames for r in pipe.push(state, f)] + pipe.flush(state)
        outs.append(np.stack([r.depth_model for r in res]))
    assert outs[0].shape == outs[1].shape
    np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=tol(torch.float32, outs[1]))
