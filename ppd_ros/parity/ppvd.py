"""Parity handlers for the PPVD fixtures (shared/fixtures/ppvd): DiT_Video and the video pipeline."""
from __future__ import annotations

from typing import Iterable

import torch

from ..checkpoints import load_into
from ..config import dit_video_config_from_official
from ..models.dit_video import DiT_Video
from . import Check, Fixture, compare_fx, handles


def build_dit_video(ctor: dict, weights: dict[str, torch.Tensor]) -> DiT_Video:
    """DiT_Video from the fixture's official constructor keywords, loaded strictly."""
    cfg = dit_video_config_from_official(ctor)
    return load_into(lambda: DiT_Video(cfg), weights, "fixture DiT_Video")


@handles("ppvd_dit_video")
def dit_video_fixture(fx: Fixture) -> Iterable[Check]:
    dit = build_dit_video(fx.meta["constructor"]["DiT_Video"], fx.weights)
    keep = int(fx.meta.get("keep_tokens", 64))
    inp = fx.inputs
    x = torch.cat([inp["noise_q"].float() / 16, inp["image_u8"].float() / 255 - 0.5], 1)
    inter: dict[str, torch.Tensor] = {}

    def put(name: str, fn=lambda t: t[:, :keep]):
        return lambda m, a, o: inter.__setitem__(name, fn(o))

    f, t0 = dit.cfg.fusion_after, dit.cfg.temporal_from
    hooks = [dit.x_embedder.register_forward_hook(put("inter.x_embed")),
             dit.t_embedder.register_forward_hook(put("inter.t_emb", lambda t: t)),
             dit.blocks[f].register_forward_hook(put(f"inter.block{f}_out")),
             dit.blocks[f + 1].register_forward_pre_hook(lambda m, a: inter.__setitem__(
                 f"inter.block{f + 1}_in", a[0][:, :keep])),
             dit.blocks[dit.cfg.rgtp_from - 1].register_forward_hook(
                 put(f"inter.block{dit.cfg.rgtp_from - 1}_out")),
             dit.blocks[dit.cfg.rgtp_from].register_forward_pre_hook(lambda m, a, kw: inter.__setitem__(
                 f"inter.block{dit.cfg.rgtp_from}_ref_tokens", kw["extra"][0]), with_kwargs=True),
             dit.temporal_blocks[0].register_forward_hook(put("inter.temporal0_out", lambda t: t[:keep])),
             dit.blocks[-1].register_forward_hook(put(f"inter.block{dit.cfg.depth - 1}_out")),
             dit.final_layer.register_forward_hook(put("inter.final_layer_out"))]
    out = dit(x, inp["semantics"], inp["timestep"])
    for h in hooks:
        h.remove()
    yield compare_fx(fx, "dit_out", out, default=_suggested(fx))
    for name in sorted(k for k in fx.outputs if k.startswith("inter.")):
        if name not in inter:
            yield Check(name, float("inf"), "-", False, "not produced by our model")
        else:
            yield compare_fx(fx, name, inter[name], default=_suggested(fx))


def _suggested(fx: Fixture, key: str = "atol") -> tuple[float, float]:
    sug = fx.meta.get("tolerance", {}).get("suggested_reimplementation", {})
    return float(sug.get(key, 2e-4)), float(sug.get("rtol", 1e-4))
