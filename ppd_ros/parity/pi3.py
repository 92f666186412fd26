"""Parity handlers for π3 semantics and the official demo noise (shared/fixtures/ppvd)."""
from __future__ import annotations

import re
from typing import Iterable

import torch
from safetensors.torch import load_file

from ..checkpoints import CHECKPOINT_LAYOUTS, load_into, select_keys
from ..config import pi3_config_from_official
from ..models.pi3 import Pi3Semantic
from ..official_noise import noise_sha256, official_demo_noise
from . import Check, Fixture, compare, handles


def build_pi3(ctor: dict, weights: dict[str, torch.Tensor]) -> Pi3Semantic:
    """Pi3Semantic from a ``Pi3_semantic(...)`` constructor dict, loaded strictly (unused heads dropped)."""
    cfg = pi3_config_from_official(ctor)
    return load_into(lambda: Pi3Semantic(cfg), select_keys(weights, CHECKPOINT_LAYOUTS["pi3"]), "fixture π3")


def _tolerance(fx: Fixture) -> tuple[float, float]:
    tol = fx.meta.get("tolerance", {}).get("suggested_reimplementation", {})
    return float(tol.get("atol", 5e-4)), float(tol.get("rtol", 1e-4))


@handles("ppvd_pi3_semantics")
def pi3_semantics_fixture(fx: Fixture) -> Iterable[Check]:
    model = build_pi3(fx.meta["constructor"]["Pi3_semantic"], fx.weights)
    atol, rtol = _tolerance(fx)
    regs = model.cfg.dec_registers
    for name, keep in fx.meta["input_sets"].items():
        imgs = fx.inputs[f"imgs_{name}_u8"].float() / 255.0
        n = imgs.shape[0]
        grid = model.grid(*imgs.shape[-2:])
        t = regs + grid[0] * grid[1]
        keep = int(keep) if keep is not None else grid[0] * grid[1]  # intermediates keep [:keep] patches
        inter: dict[str, torch.Tensor] = {
            f"inter.pos_embed_{name}": model.encoder.interpolate_pos_encoding(*grid, torch.float32)}
        # Every inter.dec<i>_<set> the fixture stores, whatever the depth: hook exactly those blocks.
        wanted = [int(m.group(1)) for k in fx.outputs if (m := re.fullmatch(rf"inter\.dec(\d+)_{name}", k))]
        def tap(i: int):  # global blocks run on (1, N*T, D): view back per frame, keep the stored slice
            return lambda mod, a, out: inter.__setitem__(f"inter.dec{i}_{name}", out.reshape(n, t, -1)[:, :regs + keep])

        hooks = [model.decoder[i].register_forward_hook(tap(i)) for i in wanted if i < len(model.decoder)]
        hooks.append(model.encoder.norm.register_forward_hook(  # final norm = x_norm_* tokens
            lambda mod, a, out: inter.__setitem__(
                f"inter.enc_patch_{name}", out[:, model.encoder.num_prefix_tokens:][:, :keep])))
        try:
            sem = model.forward_semantics(imgs)
        finally:
            for h in hooks:
                h.remove()
        yield compare(f"semantics_{name}", sem, fx.outputs[f"semantics_{name}"], atol, rtol)
        for key in sorted(k for k in fx.outputs if k.startswith("inter.") and k.endswith(f"_{name}")):
            if key not in inter:
                yield Check(key, float("inf"), "-", False, "not produced by our model")
            else:
                yield compare(key, inter[key], fx.outputs[key], atol, rtol)


def _how_to_use(fx: Fixture) -> tuple[str, str, list[int]]:
    """(file, key, noise shape) read from meta['how_to_use']; the official defaults otherwise."""
    text = " ".join(fx.meta.get("how_to_use", []))
    src = re.search(r"load_file\('([^']+)'\)\['([^']+)'\]", text)
    size = re.search(r"randn\(size=\[([\d,\s]+)\]", text)
    shape = [int(s) for s in size.group(1).split(",")] if size else [16, 1, 512, 512]
    return (src.group(1) if src else "rng_state.safetensors", src.group(2) if src else "cpu_rng_state", shape)


@handles("ppvd_official_demo_noise")
def official_noise_fixture(fx: Fixture) -> Iterable[Check]:
    fname, key, shape = _how_to_use(fx)
    if len(shape) != 4 or shape[1] != 1 or shape[2] != shape[3]:
        yield Check("noise_shape", float("inf"), "-", False, f"unsupported noise shape {shape}")
        return
    state = load_file(str(fx.path / fname))[key]
    noise = official_demo_noise(state, frames=shape[0], size=shape[2])
    want = fx.meta["noise_sha256_of_float32_bytes"]
    got = noise_sha256(noise)
    yield Check("noise_sha256", 0.0 if got == want else float("inf"), "exact", got == want,
                "" if got == want else f"{got[:12]}… vs {want[:12]}…")
    first = fx.meta.get("noise_first8")
    if first is not None:
        yield compare("noise_first8", noise.flatten()[:len(first)], torch.tensor(first), 0.0)
    if "noise_mean" in fx.meta:
        yield compare("noise_mean", noise.double().mean(), torch.tensor(fx.meta["noise_mean"]), 1e-6)
    if "noise_std" in fx.meta:
        yield compare("noise_std", noise.double().std(), torch.tensor(fx.meta["noise_std"]), 1e-6)
