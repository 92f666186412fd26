"""Parity handlers for the MoGe-2 fixtures (shared/fixtures/moge2/{forward,infer,focal_shift})."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from ..checkpoints import load_into
from ..config import moge2_config_from_official
from ..intrinsics import recover_focal_shift
from ..models.moge2 import MoGe2Model
from ..pipelines.moge import num_tokens_for_level, postprocess
from . import Check, Fixture, compare, handles


def build_moge2(fx: Fixture) -> MoGe2Model:
    """The fixture's reduced MoGe-2, from meta.model_config + backbone keywords, loaded strictly."""
    cfg = moge2_config_from_official(fx.meta["model_config"], fx.meta["backbone_factory"]["kwargs"])
    return load_into(lambda: MoGe2Model(cfg), fx.weights, f"{fx.path.name} weights")


def _reimpl_tol(fx: Fixture, name: str | None = None) -> tuple[float, float]:
    t = fx.meta.get("tolerance", {}).get("reimplementation", {})
    t = t.get(name, t) if name else t
    return float(t.get("atol", 1e-4)), float(t.get("rtol", 1e-4))


def _cmp(fx: Fixture, name: str, got: torch.Tensor | np.ndarray, tol: tuple[float, float]) -> Check:
    return compare(name, got, fx.outputs[name], *tol)


@handles("moge2_forward")
def forward_fixture(fx: Fixture) -> Iterable[Check]:
    model = build_moge2(fx)
    inter: dict[str, torch.Tensor] = {}

    def on_encoder(m: torch.nn.Module, a: tuple, out: tuple[torch.Tensor, torch.Tensor]) -> None:
        inter["inter.encoder_features"], inter["inter.cls_token"] = out

    def on_neck(m: torch.nn.Module, a: tuple, out: list[torch.Tensor]) -> None:
        for i, o in enumerate(out):
            inter[f"inter.neck_out_{i}"] = o

    hooks = [model.encoder.backbone.patch_embed.register_forward_pre_hook(
                 lambda m, a: inter.__setitem__("inter.encoder_input_normalized", a[0])),
             model.encoder.register_forward_hook(on_encoder), model.neck.register_forward_hook(on_neck)]
    out = model(fx.inputs["image"], num_tokens=int(fx.meta["call"]["forward"]["num_tokens"]))
    for h in hooks:
        h.remove()
    tol = _reimpl_tol(fx)
    yield _cmp(fx, "points", out.points, tol)
    yield _cmp(fx, "mask", out.mask, tol)
    yield _cmp(fx, "metric_scale", out.metric_scale, tol)
    if "normal" in fx.outputs:
        got = out.normal if out.normal is not None else torch.full_like(fx.outputs["normal"], float("nan"))
        yield _cmp(fx, "normal", got, tol)
    for name in sorted(k for k in fx.outputs if k.startswith("inter.")):
        if name not in inter:
            yield Check(name, float("inf"), "-", False, "not produced by our model")
        else:
            yield _cmp(fx, name, inter[name], tol)
    if "semantics" in fx.outputs:
        yield _cmp(fx, "semantics", model.forward_semantics(fx.inputs["image_semantics"]), tol)


def _mask_check(fx: Fixture, name: str, got: torch.Tensor, prob: torch.Tensor, depth: torch.Tensor) -> Check:
    """Exact except where the mask prob is within 1e-5 of 0.5 or the depth within 1e-5 of 0 (meta)."""
    want = fx.outputs[name].bool()
    g = got.reshape(want.shape).bool()
    borderline = ((prob.reshape(want.shape) - 0.5).abs() < 1e-5) | (depth.reshape(want.shape).abs() < 1e-5)
    bad = int(((g != want) & ~borderline).sum())
    return Check(name, float(bad), "exact off borderline pixels", bad == 0, f"{bad} differing pixels")


@handles("moge2_infer")
def infer_fixture(fx: Fixture) -> Iterable[Check]:
    """One network forward; ``infer`` = this forward + ``postprocess`` (tested in test_models_moge2)."""
    model = build_moge2(fx)
    image = fx.inputs["image"]
    call = fx.meta["call"]
    dt, kt = _reimpl_tol(fx, "depth"), _reimpl_tol(fx, "intrinsics")
    ci = call["infer"]
    if ci.get("use_fp16"):
        yield Check("call", float("inf"), "-", False, "fp16 fixtures are not reproducible on CPU")
        return
    n = ci.get("num_tokens") or num_tokens_for_level(ci.get("resolution_level", 9), model.cfg.num_tokens_range)
    raw = model(image[None], n)
    if "debug.raw_points" in fx.outputs:
        yield _cmp(fx, "debug.raw_points", raw.points, _reimpl_tol(fx))
        yield _cmp(fx, "debug.raw_mask_prob", raw.mask, _reimpl_tol(fx))
        yield _cmp(fx, "debug.metric_scale", raw.metric_scale, _reimpl_tol(fx))
    pred = postprocess(raw, ci.get("fov_x"))
    if "debug.focal" in fx.outputs:
        yield _cmp(fx, "debug.focal", pred.focal, kt)
        yield compare("debug.shift", pred.shift, fx.outputs["debug.shift"], dt[0], dt[1])
    yield _cmp(fx, "depth", pred.depth[0], dt)
    yield _mask_check(fx, "mask", pred.mask[0], raw.mask, pred.depth[0])
    yield _cmp(fx, "intrinsics", pred.intrinsics[0], kt)
    cf = call.get("infer_fov")
    if "fov.depth" in fx.outputs and cf is not None:
        n_fov = cf.get("num_tokens") or num_tokens_for_level(cf.get("resolution_level", 9), model.cfg.num_tokens_range)
        fov = postprocess(raw if n_fov == n else model(image[None], n_fov), cf["fov_x"])
        yield _cmp(fx, "fov.depth", fov.depth[0], dt)
        yield _mask_check(fx, "fov.mask", fov.mask[0], raw.mask, fov.depth[0])
        yield _cmp(fx, "fov.intrinsics", fov.intrinsics[0], kt)


@handles("moge2_focal_shift")
def focal_shift_fixture(fx: Fixture) -> Iterable[Check]:
    x = fx.inputs
    tol = _reimpl_tol(fx)
    mask = x["mask"].bool() if "mask" in x else None
    focal, shift = recover_focal_shift(x["points"], mask)
    yield _cmp(fx, "focal", focal, tol)
    yield _cmp(fx, "shift", shift, tol)
    if "known_focal.shift" in fx.outputs:
        _, s_known = recover_focal_shift(x["points"], mask, focal=x["focal_known"])
        yield _cmp(fx, "known_focal.shift", s_known, tol)
    if "nomask.focal" in fx.outputs:
        f_nm, s_nm = recover_focal_shift(x["points_clean"])
        yield _cmp(fx, "nomask.focal", f_nm, tol)
        yield _cmp(fx, "nomask.shift", s_nm, tol)
    if "derived.fx_normalized" in fx.outputs:
        h, w = x["points"].shape[1:3]
        a = w / h
        yield _cmp(fx, "derived.fx_normalized", focal / 2 * (1 + a ** 2) ** 0.5 / a, tol)
        yield _cmp(fx, "derived.fy_normalized", focal / 2 * (1 + a ** 2) ** 0.5, tol)
