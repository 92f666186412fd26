"""MoGe-2: fixture parity through the harness, full-size manifest on meta, model.pt loading."""
import json
from fractions import Fraction

import pytest
import torch

from ppd_ros.checkpoints import load_into
from ppd_ros.config import FIXTURE_MOGE2_TINY, FIXTURE_MOGE2_TINY_BACKBONE, moge2_config_from_official, preset
from ppd_ros.errors import CheckpointError, CheckpointMismatch, ConfigError, InputError
from ppd_ros.models.moge2 import MoGe2Model, semantics_grid, token_grid
from ppd_ros.parity import HANDLERS, Fixture, discover_handlers, run_fixture
from ppd_ros.pipelines.moge import infer, load_moge2, num_tokens_for_level, postprocess

from .conftest import FIXTURES, MANIFESTS, manifest, require_shared

MOGE = FIXTURES / "moge2"


@pytest.mark.numeric
@pytest.mark.needs_shared("fixtures/moge2")
@pytest.mark.parametrize("name", ["forward", "infer", "focal_shift"])
def test_fixture_parity_through_harness(name):
    discover_handlers()
    assert {"moge2_forward", "moge2_infer", "moge2_focal_shift"} <= set(HANDLERS)
    with torch.no_grad():
        checks = run_fixture(MOGE / name)
    failed = [f"{c.name}: {c.max_abs:.3g} {c.note}" for c in checks if not c.passed]
    assert checks and not failed, failed
    assert len(checks) >= 5  # every stored output is compared, not just one


def test_full_size_keys_and_shapes_equal_manifest(capsys):
    want = manifest("moge2_vitl_normal.json")
    with torch.device("meta"):
        model = MoGe2Model(preset("moge2_vitl_normal"))
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert got == want
    n = sum(p.numel() for p in model.parameters())
    with capsys.disabled():
        print(f"\nMoGe-2 ViT-L normal: {n:,} parameters, {len(got)} tensors")
    meta = json.loads((MANIFESTS / "moge2_vitl_normal.json").read_text())["_meta"]
    assert n == meta["num_parameters"] == 330_901_544
    assert moge2_config_from_official(meta["model_config"]) == preset("moge2_vitl_normal")


@pytest.mark.needs_shared("fixtures/moge2/forward")
def test_fixture_config_from_meta_equals_preset():
    meta = json.loads((MOGE / "forward" / "meta.json").read_text())
    cfg = moge2_config_from_official(meta["model_config"], meta["backbone_factory"]["kwargs"])
    assert cfg == preset("fixture_moge2_tiny")


def test_token_grids_match_spec_examples():
    assert token_grid(768, 1024, 3600) == (51, 69)
    assert token_grid(672, 1184, 3600) == (45, 79)
    assert token_grid(496, 1616, 3600) == (33, 108)
    assert token_grid(70, 100, 150) == (10, 14)
    assert semantics_grid(768, 1024) == (48, 64)
    assert num_tokens_for_level(9, (1200, 3600)) == 3600 and num_tokens_for_level(0, (1200, 3600)) == 1200
    with pytest.raises(ConfigError):
        num_tokens_for_level(10, (1200, 3600))


@pytest.fixture(scope="module")
def tiny():
    require_shared("fixtures/moge2/infer")
    fx = Fixture(MOGE / "infer")
    cfg = moge2_config_from_official(fx.meta["model_config"], fx.meta["backbone_factory"]["kwargs"])
    return cfg, fx.weights, load_into(lambda: MoGe2Model(cfg), fx.weights, "fixture")


@pytest.mark.numeric
def test_infer_is_forward_plus_postprocess_and_keeps_batch(tiny):
    _, _, model = tiny
    img = torch.rand(3, 40, 56, generator=torch.Generator().manual_seed(0))
    pred = infer(model, img, num_tokens=60)
    with torch.no_grad():
        ref = postprocess(model(img[None], 60))
    assert pred.depth.shape == (1, 40, 56) and pred.points.shape == (1, 40, 56, 3)
    assert torch.equal(pred.depth, ref.depth) and torch.equal(pred.mask, ref.mask)
    assert torch.isposinf(pred.depth[~pred.mask]).all() and torch.isfinite(pred.depth[pred.mask]).all()
    # points are the pixel-centre unprojection of depth with the normalised K
    k, m = pred.intrinsics[0], pred.mask[0]
    u = ((torch.arange(56) + 0.5) / 56 - k[0, 2]) / k[0, 0]
    v = ((torch.arange(40) + 0.5) / 40 - k[1, 2]) / k[1, 1]
    z = pred.depth[0]
    assert m.any()
    # elementwise products of O(1) values, so a few ulps (2^-24 relative) either way: rtol 1e-5 is ~170 u
    assert torch.allclose(pred.points[0, ..., 0][m], (u[None, :] * z)[m], rtol=1e-5, atol=1e-6)
    assert torch.allclose(pred.points[0, ..., 1][m], (v[:, None] * z)[m], rtol=1e-5, atol=1e-6)
    # batch of two: other matmul blocking, the same maths; rel_bound(fp32, ~30 layers, n ~ 600) ~ 3e-5 < 1e-4
    two = infer(model, torch.stack([img, img.flip(-1)]), num_tokens=60)
    assert two.depth.shape == (2, 40, 56) and torch.allclose(two.depth[0], pred.depth[0], rtol=1e-4)


@pytest.mark.parametrize("bad", [torch.rand(40, 56), torch.rand(1, 4, 40, 56),
                                 torch.zeros(3, 40, 56, dtype=torch.uint8)])
def test_infer_rejects_bad_images(tiny, bad):
    with pytest.raises(InputError):
        infer(tiny[2], bad, num_tokens=60)


def test_model_pt_round_trip_and_errors(tiny, tmp_path):
    cfg, weights, model = tiny
    good = tmp_path / "model.pt"
    torch.save({"model": weights, "model_config": FIXTURE_MOGE2_TINY}, good)
    # the fixture backbone name is not a DINOv2 hub name: the file's config alone cannot build it
    with pytest.raises(CheckpointError, match="unknown MoGe-2 backbone"):
        load_moge2(good)
    loaded = load_moge2(good, config=cfg)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))

    bare = tmp_path / "bare.pt"
    torch.save(weights, bare)
    with pytest.raises(CheckpointError, match="'model' and 'model_config'"):
        load_moge2(bare)
    missing = tmp_path / "missing.pt"
    torch.save({"model": {k: v for k, v in weights.items() if "scale_head" not in k},
                "model_config": FIXTURE_MOGE2_TINY}, missing)
    with pytest.raises(CheckpointMismatch, match="scale_head"):
        load_moge2(missing, config=cfg)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": weights, "model_config": FIXTURE_MOGE2_TINY, "extra": Fraction(1, 3)}, unsafe)
    with pytest.raises(CheckpointError):
        load_moge2(unsafe, config=cfg)
    with pytest.raises(CheckpointError, match="no model_config"):
        load_moge2(MOGE / "infer" / "weights.safetensors")
    assert isinstance(load_moge2(MOGE / "infer" / "weights.safetensors", config=cfg), MoGe2Model)
    with pytest.raises(CheckpointError, match="not found"):
        load_moge2(tmp_path / "nope.pt")


def test_config_rejects_inconsistent_dicts():
    bad = json.loads(json.dumps(FIXTURE_MOGE2_TINY))
    bad["neck"]["resamplers"] = ["pixel_shuffle"] * 4
    with pytest.raises(ConfigError):
        moge2_config_from_official(bad, FIXTURE_MOGE2_TINY_BACKBONE)
    no_scale = {k: v for k, v in FIXTURE_MOGE2_TINY.items() if k != "scale_head"}
    with pytest.raises(ConfigError, match="scale_head"):
        moge2_config_from_official(no_scale, {"embed_dim": 64, "depth": 6, "num_heads": 4})
