"""π3 semantic encoder: fixture parity, full-size keys, strict loading, cached global K/V."""
import json

import pytest
import torch

from ppd_ros.checkpoints import CHECKPOINT_LAYOUTS, load_into, select_keys
from ppd_ros.config import Pi3Config, pi3_config_from_official, preset
from ppd_ros.errors import CheckpointMismatch, ConfigError, InputError
from ppd_ros.models.pi3 import GlobalKV, Pi3Semantic
from ppd_ros.parity import Fixture, discover_handlers, run_fixture

from .conftest import FIXTURES, MANIFESTS, manifest
from .tolerances import fp32_same_maths

PI3_FIXTURE = FIXTURES / "ppvd" / "pi3_semantics_small"


def _pi3_manifest_meta() -> dict:
    return json.loads((MANIFESTS / "pi3.json").read_text())["_meta"]


@pytest.mark.numeric
@pytest.mark.needs_shared("fixtures/ppvd/pi3_semantics_small")
def test_pi3_semantics_fixture_passes():
    discover_handlers()
    checks = run_fixture(PI3_FIXTURE)
    names = {c.name for c in checks}
    fx = Fixture(PI3_FIXTURE)
    assert names == set(fx.outputs), names ^ set(fx.outputs)  # every stored output and intermediate
    failures = [c for c in checks if not c.passed]
    assert not failures, failures


@pytest.mark.needs_shared("fixtures/ppvd/pi3_semantics_small")
def test_fixture_constructor_matches_registered_preset():
    ctor = Fixture(PI3_FIXTURE).meta["constructor"]["Pi3_semantic"]
    assert pi3_config_from_official(ctor) == preset("fixture_pi3_semantics_small")


def test_full_size_matches_manifest_minus_declared_heads():
    with torch.device("meta"):
        model = Pi3Semantic(preset("pi3"))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ignored = CHECKPOINT_LAYOUTS["pi3"].ignored_prefixes
    want = {k: v for k, v in manifest("pi3.json").items() if not k.startswith(ignored)}
    assert ours == want
    meta = _pi3_manifest_meta()
    n = sum(torch.Size(s).numel() for s in ours.values())
    print(f"π3 semantic trunk: {len(ours)} tensors, {n:,} values "
          f"(file: {meta['num_tensors']} tensors, {meta['num_parameters_and_buffers']:,})")
    assert (len(ours), n) == (meta["needed_for_semantics"]["tensors"], meta["needed_for_semantics"]["numel"])
    assert "encoder.mask_token" not in ours
    assert {"image_mean", "image_std"} <= set(ours)  # persistent buffers: they are in the file
    with torch.device("meta"):  # shapes of the official 512x512 call, without any compute
        assert model.forward_semantics(torch.empty(2, 3, 512, 512)).shape == (2, 1024, 2048)
        _, kv = model.forward_semantics_with_cache(torch.empty(1, 3, 512, 512))
    assert kv.keys.shape == (18, 16, 1, 1029, 64)
    print(f"cached global K/V per reference frame: {kv.nbytes // 2 / 2**20:.1f} MiB in bf16")


def test_declared_ignored_groups_equal_manifest_unused_groups():
    meta = _pi3_manifest_meta()
    declared = {p.rstrip(".") for p in CHECKPOINT_LAYOUTS["pi3"].ignored_prefixes}
    unused = {g for g, info in meta["groups"].items() if not info["used_by_forward_semantics"]}
    assert declared == unused == set(meta["skippable_heads"])


@pytest.mark.needs_shared("fixtures/ppvd/pi3_semantics_small")
def test_file_with_heads_loads_strictly_and_missing_keys_are_named():
    weights = Fixture(PI3_FIXTURE).weights
    cfg = preset("fixture_pi3_semantics_small")
    full = dict(weights, **{"point_head.proj.weight": torch.zeros(4, 48), "camera_head.fc_t.bias": torch.zeros(3)})
    model = load_into(lambda: Pi3Semantic(cfg), select_keys(full, CHECKPOINT_LAYOUTS["pi3"]), "π3")
    assert torch.equal(model.image_std, weights["image_std"])
    broken = {k: v for k, v in weights.items() if k != "decoder.35.ls2.gamma"}
    with pytest.raises(CheckpointMismatch, match="decoder.35.ls2.gamma"):
        load_into(lambda: Pi3Semantic(cfg), broken, "π3")
    stray = dict(weights, **{"depth_head.w": torch.zeros(1)})  # not a declared group: loud
    with pytest.raises(CheckpointMismatch, match="depth_head.w"):
        load_into(lambda: Pi3Semantic(cfg), select_keys(stray, CHECKPOINT_LAYOUTS["pi3"]), "π3")


# --- a small random π3 for behaviour tests ------------------------------------------------------
def _small_model(seed: int = 0) -> Pi3Semantic:
    model = Pi3Semantic(Pi3Config(dim=32, num_heads=2, enc_depth=1, dec_depth=4, img_size=56)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("bias"):
                p.copy_(0.1 * noise)
            elif p.dim() == 1:  # norm weights, LayerScale gammas (strong enough to mix frames)
                p.copy_(1 + 0.1 * noise)
            elif "token" in name or "pos_embed" in name:
                p.copy_(0.2 * noise)
            else:
                p.copy_(noise / (p[0].numel() ** 0.5))
    return model


def _same_maths(model: Pi3Semantic) -> dict[str, float]:
    """Encoder + decoder blocks (6 matmuls each) in another summation order; the patch embedding is the
    longest reduction (tests/tolerances.py): ~3e-5 for the small model."""
    cfg = model.cfg
    return fp32_same_maths(1 + 6 * (cfg.enc_depth + cfg.dec_depth), 3 * cfg.patch_size ** 2)


def _frames(n: int, h: int = 48, w: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_cached_kv_of_the_same_set_reproduces_full_computation():
    model, imgs = _small_model(), _frames(3)
    full = model.forward_semantics(imgs)  # (3, 12, 64)
    assert full.shape == (3, (48 // 16) * (64 // 16), 64)
    sem_all, kv_all = model.forward_semantics_with_cache(imgs, None)
    torch.testing.assert_close(sem_all, full, **_same_maths(model))
    assert kv_all.keys.shape == (2, 2, 3, 5 + 12, 16)  # (G, heads, F, T, hd)
    for j in range(3):
        others = [i for i in range(3) if i != j]
        sem_j, kv_j = model.forward_semantics_with_cache(imgs[j:j + 1], kv_all.frames(others))
        torch.testing.assert_close(sem_j, full[j:j + 1], **_same_maths(model))
        torch.testing.assert_close(kv_j.keys, kv_all.frames([j]).keys, **_same_maths(model))
        # Without the cache the frame sees only itself: the global blocks really use the cache.
        alone = model.forward_semantics(imgs[j:j + 1])
        assert (alone - full[j:j + 1]).abs().max() > 1e-2


@torch.no_grad()
def test_stale_cache_is_an_approximation_not_the_exact_set():
    model, imgs = _small_model(), _frames(3)
    _, kv_refs = model.forward_semantics_with_cache(imgs[:2], None)  # references computed on their own
    approx, _ = model.forward_semantics_with_cache(imgs[2:], kv_refs)
    exact = model.forward_semantics(imgs)[2:]
    err = (approx - exact).abs().max()
    assert 0 < err < exact.abs().max()  # close in scale, but not equal: refs never saw frame 2


@torch.no_grad()
def test_decode_resumes_after_precomputed_frame_local_block():
    model, imgs = _small_model(), _frames(2)
    grid = model.grid(*imgs.shape[-2:])
    x0 = model.decoder_input(model.encode(imgs))
    x1 = model.decoder[0](x0, model.positions(grid))  # frame-local: computable frame by frame
    torch.testing.assert_close(model.decode(x1, grid, start=1), model.forward_semantics(imgs), **_same_maths(model))


@pytest.mark.numeric
@torch.no_grad()
def test_permutation_equivariant_over_frames():
    model, imgs = _small_model(), _frames(3, seed=5)
    out = model.forward_semantics(imgs)
    torch.testing.assert_close(model.forward_semantics(imgs.flip(0)), out.flip(0), **_same_maths(model))


def test_positions_registers_at_origin_patches_shifted_by_one():
    model = _small_model()
    pos = model.positions((2, 3))
    assert pos[:5].abs().sum() == 0
    assert pos[5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]


def test_global_kv_frames_and_cat_round_trip():
    keys = torch.arange(2 * 1 * 4 * 3 * 2, dtype=torch.float32).reshape(2, 1, 4, 3, 2)
    kv = GlobalKV(keys, -keys)
    parts = [kv.frames([0, 1]), kv.frames(slice(2, 4))]
    back = GlobalKV.cat(parts)
    assert torch.equal(back.keys, keys) and torch.equal(back.values, -keys)
    assert kv.frames([3, 0]).num_frames == 2 and kv.nbytes == 2 * keys.numel() * 4


@torch.no_grad()
def test_bad_inputs_raise_typed_errors():
    model = _small_model()
    with pytest.raises(InputError, match=r"\(N, 3, h, w\)"):
        model.forward_semantics(torch.rand(3, 48, 64))
    with pytest.raises(InputError, match="smaller than one"):
        model.forward_semantics(torch.rand(1, 3, 8, 64))
    _, kv = model.forward_semantics_with_cache(_frames(1), None)
    with pytest.raises(InputError, match="cached K/V"):
        model.forward_semantics_with_cache(_frames(1, h=32), kv)  # other grid -> other T
    with pytest.raises(InputError, match="decode start"):
        model.decode(model.decoder_input(model.encode(_frames(1))), (3, 4), start=3)


def test_config_validation():
    with pytest.raises(ConfigError):
        Pi3Config(dim=30, num_heads=4)
    with pytest.raises(ConfigError):
        Pi3Config(dec_depth=35)
    with pytest.raises(ConfigError, match="no field 'depth'"):
        pi3_config_from_official({"dim": 48, "depth": 3})
