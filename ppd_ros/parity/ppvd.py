"""Parity handlers for the PPVD fixtures (shared/fixtures/ppvd): DiT_Video and the video pipeline."""
from __future__ import annotations

import re
from typing import Iterable

import numpy as np
import torch

from ..checkpoints import load_into
from ..config import dit_video_config_from_official
from ..models.dit_video import DiT_Video
from . import Check, Fixture, compare, compare_fx, handles


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

    f = dit.cfg.fusion_after
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
    try:
        out = dit(x, inp["semantics"], inp["timestep"])
    finally:
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


def build_video_pipeline(meta: dict, weights: dict[str, torch.Tensor], steps: int | None = None):
    """PPVDPipeline from a fixture's constructor block and prefixed (sem_encoder./dit_video.) weights."""
    from ..checkpoints import CHECKPOINT_LAYOUTS, select_keys
    from ..config import InferenceConfig, VideoConfig, pi3_config_from_official
    from ..models.pi3 import Pi3Semantic
    from ..pipelines.video import PPVDPipeline, dit_video_state
    ctor = meta["constructor"]
    dcfg = dit_video_config_from_official(ctor["DiT_Video"])
    pcfg = pi3_config_from_official(ctor["Pi3_semantic"])
    pi3_state = select_keys({k[len("sem_encoder."):]: v for k, v in weights.items() if k.startswith("sem_encoder.")},
                            CHECKPOINT_LAYOUTS["pi3"])
    dit = load_into(lambda: DiT_Video(dcfg), dit_video_state(weights, dcfg), "fixture DiT_Video")
    enc = load_into(lambda: Pi3Semantic(pcfg), pi3_state, "fixture π3")
    cfg = InferenceConfig(steps=int(steps or ctor.get("sampling_steps", 4)), device="cpu", dtype="float32")
    return PPVDPipeline(dit, enc, cfg, VideoConfig(resolution=dcfg.input_size))


def _crop_box(meta: dict, size: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The latent crop the fixture stored: parsed from its produced_by note, else centred."""
    note = meta.get("produced_by", {}).get("step_latent_crops", "")
    m = re.search(r"\[(\d+):(\d+),\s*(\d+):(\d+)\]", note)
    if m:
        a, b, c, d = map(int, m.groups())
        return slice(a, b), slice(c, d)
    h, w = shape[-2:]
    return slice((size - h) // 2, (size - h) // 2 + h), slice((size - w) // 2, (size - w) // 2 + w)


@handles("ppvd_video_pipeline")
def video_pipeline_fixture(fx: Fixture) -> Iterable[Check]:
    pipe = build_video_pipeline(fx.meta, fx.weights)
    frames = fx.inputs["frames_u8"].numpy()
    state = pipe.new_stream("exact", noise=fx.inputs["noise_q"].float() / 16)
    records: list = []
    state.on_window = records.append
    results = []
    for i, f in enumerate(frames):
        results += pipe.push(state, f, stamp=i)
    results += pipe.flush(state)
    tol = fx.meta.get("tolerance", {}).get("suggested_reimplementation", {})
    atol_d, atol_w = float(tol.get("depth_aligned_atol", 1e-3)), float(tol.get("window_preds_atol", 5e-4))
    idx = [r.index for r in results]
    yield Check("published_frames", float(len(idx) != len(frames)), "one result per frame, in order",
                idx == list(range(len(frames))) and [r.stamp for r in results] == list(range(len(frames))))
    yield compare("depth_aligned", np.stack([r.depth for r in results]), fx.outputs["depth_aligned"], atol_d)
    out = fx.outputs
    yield Check("windows", float(len(records)), f"== {out['window_preds'].shape[0]}",
                len(records) == out["window_preds"].shape[0])
    n = min(len(records), out["window_preds"].shape[0])
    yield compare("window_frame_idx", np.stack([r.frame_index for r in records[:n]]), out["window_frame_idx"][:n], 0)
    yield compare("window_preds", np.stack([r.prediction[:, None] for r in records[:n]]), out["window_preds"][:n],
                  atol_w)
    yield compare("scale_shift", torch.tensor([[r.scale, r.shift] for r in records[1:n]]), out["scale_shift"],
                  atol_w, 1e-4)
    if "window_semantics_slice" in out:
        want = out["window_semantics_slice"]
        got = torch.stack([r.semantics[:, : want.shape[2], : want.shape[3]] for r in records[:n]])
        yield compare("window_semantics_slice", got, want[:n], *_suggested_pi3())
    if "step_latent_crops" in out:
        want = out["step_latent_crops"]
        ys, xs = _crop_box(fx.meta, pipe.video.resolution, tuple(want.shape))
        got = torch.stack([torch.stack([lat[:, 0, ys, xs] for lat in r.step_latents]) for r in records[:n]])
        yield compare("step_latent_crops", got, want[:n], atol_w)
    if "sampling_timesteps" in out:
        ok = torch.equal(pipe.sampler.timesteps, out["sampling_timesteps"].to(torch.int32))
        yield Check("sampling_timesteps", 0.0 if ok else float("inf"), "exact", ok)


def _suggested_pi3() -> tuple[float, float]:
    return 5e-4, 1e-4  # π3 semantics reach ~20: the π3 fixture's suggested tolerance
