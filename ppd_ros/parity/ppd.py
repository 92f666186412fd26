"""Parity handlers for the single-image PPD fixtures (shared/fixtures/ppd)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from ..checkpoints import CHECKPOINT_LAYOUTS, load_into, select_keys
from ..config import dit_config_from_official, vit_config_from_official
from ..diffusion import EulerSampler, sampling_timesteps
from ..models import DA2SemanticEncoder, DiT
from ..preprocess import keep_aspect_size, minmax_u8, resize_depth, resize_keep_aspect, to_tensor
from . import Check, Fixture, compare, compare_fx, handles


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def build_dit(fx: Fixture, weights: dict[str, torch.Tensor], semantics_dim: int | None = None) -> DiT:
    ctor = fx.meta["constructor"]
    sem = semantics_dim or int(ctor.get("semantics_dim", 1024))
    cfg = dit_config_from_official(ctor["DiT"], sem)
    return load_into(lambda: DiT(cfg), select_keys(weights, CHECKPOINT_LAYOUTS["ppd_dit"]), "fixture DiT")


def build_da2(fx: Fixture, weights: dict[str, torch.Tensor]) -> DA2SemanticEncoder:
    cfg = vit_config_from_official(fx.meta["constructor"]["DinoVisionTransformer"])
    return load_into(lambda: DA2SemanticEncoder(cfg), weights, "fixture DA2 encoder")


def _sample(dit: DiT, image: torch.Tensor, semantics: torch.Tensor, noise: torch.Tensor,
            timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    steps: list[torch.Tensor] = []
    first: list[torch.Tensor] = []
    cond = image - 0.5

    def denoise(latent: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = dit(torch.cat([latent, cond], 1), semantics, t)
        first.append(v)
        return v

    sampler = EulerSampler(len(timesteps))
    if not torch.equal(sampler.timesteps, timesteps.to(torch.int32)):
        raise AssertionError(f"timesteps {sampler.timesteps.tolist()} != fixture {timesteps.tolist()}")
    depth = sampler(denoise, noise, on_step=lambda i, lat: steps.append(lat.clone()))
    return depth, first[0], steps


def compare_intermediates(fx: Fixture, produced: dict[str, torch.Tensor]) -> Iterable[Check]:
    """Every ``inter.*`` output of the fixture against what our hooks captured."""
    for name in sorted(k for k in fx.outputs if k.startswith("inter.")):
        if name not in produced:
            yield Check(name, float("inf"), "-", False, "not produced by our model")
        else:
            yield compare_fx(fx, name, produced[name])


@handles("ppd_dit")
def dit_fixture(fx: Fixture) -> Iterable[Check]:
    dit = build_dit(fx, fx.weights)
    x, inp = fx.inputs, fx.inputs
    inter: dict[str, torch.Tensor] = {}
    d, half = dit.cfg.depth, dit.cfg.depth // 2
    hooks = [
        dit.x_embedder.register_forward_hook(lambda m, a, o: inter.__setitem__("inter.x_embed", o)),
        dit.t_embedder.register_forward_hook(lambda m, a, o: inter.__setitem__("inter.t_emb", o)),
        dit.blocks[half - 1].register_forward_hook(lambda m, a, o: inter.__setitem__(f"inter.block_{half - 1}", o)),
        dit.blocks[d - 1].register_forward_hook(lambda m, a, o: inter.__setitem__(f"inter.block_{d - 1}", o)),
        dit.proj_fusion.register_forward_hook(lambda m, a, o: inter.__setitem__("inter.proj_fusion_out", o)),
        dit.blocks[half].register_forward_pre_hook(lambda m, a: inter.__setitem__("inter.fused_tokens", a[0])),
        dit.final_layer.register_forward_hook(lambda m, a, o: inter.__setitem__("inter.final_layer_out", o)),
    ]
    out = dit(torch.cat([inp["noise"], inp["image"] - 0.5], 1), inp["semantics"], inp["timestep"])
    for h in hooks:
        h.remove()
    yield compare_fx(fx, "dit_out", out)
    yield from compare_intermediates(fx, inter)
    depth, _, steps = _sample(dit, x["image"], x["semantics"], x["init_noise"], x["sampling_timesteps"])
    yield compare_fx(fx, "step_latents", torch.stack(steps), default=(2e-4, 1e-4))
    yield compare_fx(fx, "sampled_depth", depth, default=(2e-4, 1e-4))


@handles("ppd_da2_semantics")
def da2_fixture(fx: Fixture) -> Iterable[Check]:
    enc = build_da2(fx, fx.weights)
    vit = enc.pretrained
    image = fx.inputs["image"]
    inter: dict[str, torch.Tensor] = {}
    vit_in = enc.vit_input(image)
    inter["inter.vit_input"] = vit_in
    gh, gw = vit_in.shape[-2] // vit.patch_size, vit_in.shape[-1] // vit.patch_size
    inter["inter.pos_embed_interp"] = vit.interpolate_pos_encoding(gh, gw, torch.float32)
    hooks = [blk.register_forward_hook(lambda m, a, o, i=i: inter.__setitem__(f"inter.vit_block_{i}", o))
             for i, blk in enumerate(vit.blocks)]
    sem = enc.forward_semantics(image)
    for h in hooks:
        h.remove()
    yield compare_fx(fx, "semantics", sem)
    yield from compare_intermediates(fx, inter)


@handles("ppd_end_to_end")
def e2e_fixture(fx: Fixture) -> Iterable[Check]:
    w = fx.weights
    enc = build_da2(fx, _strip(w, "sem_encoder."))
    dit = build_dit(fx, _strip(w, "dit."))
    image = fx.inputs["image_u8"].float() / 255.0
    sem = enc.forward_semantics(image)
    yield compare_fx(fx, "semantics", sem)
    depth, first, steps = _sample(dit, image, sem, fx.inputs["init_noise"], fx.inputs["sampling_timesteps"])
    yield compare_fx(fx, "dit_out_step0", first)
    yield compare_fx(fx, "step_latents", torch.stack(steps), default=(2e-4, 1e-4))
    yield compare_fx(fx, "depth", depth, default=(2e-4, 1e-4))
    res = fx.meta["resolution"]
    full = resize_depth(depth, (res["orig_H"], res["orig_W"]))[0, 0]
    yield compare_fx(fx, "depth_at_original_size", full, default=(2e-4, 1e-4))
    vis = minmax_u8(full.numpy())
    want = fx.outputs["vis_gray_u8"].numpy()
    diff = np.abs(vis.astype(int) - want.astype(int))
    frac = float((diff > 0).mean())
    yield Check("vis_gray_u8", float(diff.max()), "<=1 level on <0.1% px", bool(diff.max() <= 1 and frac < 1e-3),
                f"{frac:.2e} of pixels differ")


@handles("ppd_preprocess")
def preprocess_fixture(fx: Fixture) -> Iterable[Check]:
    names = {"INTER_CUBIC": 2, "INTER_AREA": 3}
    bad = []
    for row in fx.meta["size_table"]:
        h, w, interp = keep_aspect_size(*row["in_hw"])
        if [h, w] != list(row["out_hw"]) or interp != names[row["interp"]]:
            bad.append(f"{row['in_hw']}->{(h, w)}")
    yield Check("size_table", float(len(bad)), "exact", not bad, ", ".join(bad[:3]))
    k = 0
    while f"example{k}_bgr_u8" in fx.inputs:
        bgr = fx.inputs[f"example{k}_bgr_u8"].numpy()
        out = resize_keep_aspect(bgr)
        want = fx.outputs[f"example{k}_resized_bgr_u8"].numpy()
        if out.shape != want.shape:
            yield Check(f"example{k}_resized_bgr_u8", float("inf"), "exact", False, f"{out.shape} vs {want.shape}")
        else:
            diff = np.abs(out.astype(int) - want.astype(int))
            yield Check(f"example{k}_resized_bgr_u8", float(diff.max()), "|diff|<=1", bool(diff.max() <= 1))
        t = to_tensor(out[..., ::-1]).double()
        got = torch.tensor([t.sum().item(), (t * t).sum().item()], dtype=torch.float64)
        want_sum = fx.outputs[f"example{k}_tensor_checksum"]
        yield compare(f"example{k}_tensor_checksum", got, want_sum, 0.0, 1e-6)
        k += 1
    yield Check("timesteps_n4", 0.0, "exact", sampling_timesteps(4).tolist() == [1000, 750, 500, 249])
