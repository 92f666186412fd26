"""Strict loading and one-line errors for missing, truncated, unsafe and mismatched checkpoints."""
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ppd_ros.checkpoints import CHECKPOINT_LAYOUTS, check_state_dict, load_model, read_state_dict, select_keys
from ppd_ros.config import DiTConfig
from ppd_ros.errors import CheckpointError, CheckpointMismatch
from ppd_ros.models import DiT

from .conftest import FIXTURES, manifest

SMALL = DiTConfig(hidden_size=32, depth=2, num_heads=2, semantics_dim=16)


def _state(prefix="dit."):
    torch.manual_seed(0)
    return {prefix + k: torch.randn(v.shape) for k, v in DiT(SMALL).state_dict().items()}


def test_loads_pth_with_prefix_and_safetensors_without(tmp_path):
    state = _state()
    torch.save(state, tmp_path / "ppd.pth")
    save_file({k[4:]: v.contiguous() for k, v in state.items()}, tmp_path / "ppd.safetensors")
    a = load_model(lambda: DiT(SMALL), tmp_path / "ppd.pth", "ppd_dit")
    b = load_model(lambda: DiT(SMALL), tmp_path / "ppd.safetensors", "ppd_dit")
    assert torch.equal(a.final_layer.linear.weight, state["dit.final_layer.linear.weight"])
    assert torch.equal(b.final_layer.linear.weight, state["dit.final_layer.linear.weight"])
    assert not any(t.is_meta for t in a.parameters())


def test_stray_sem_encoder_keys_are_ignored_but_other_extras_are_not(tmp_path):
    state = _state()
    state["sem_encoder.pretrained.cls_token"] = torch.zeros(1, 1, 8)
    torch.save(state, tmp_path / "a.pth")
    load_model(lambda: DiT(SMALL), tmp_path / "a.pth", "ppd_dit")
    state["dit.something_else"] = torch.zeros(1)
    torch.save(state, tmp_path / "b.pth")
    with pytest.raises(CheckpointMismatch, match="unexpected 1 .*something_else"):
        load_model(lambda: DiT(SMALL), tmp_path / "b.pth", "ppd_dit")


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file(tmp_path, suffix):
    good = tmp_path / f"good{suffix}"
    state = {k[4:]: v.contiguous() for k, v in _state().items()}
    torch.save(state, good) if suffix == ".pth" else save_file(state, good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        read_state_dict(bad)
    assert "\n" not in str(err.value)


def test_pickle_needing_code_execution_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="code execution"):
        read_state_dict(path)


@pytest.mark.needs_shared("fixtures/ppd/da2_semantics_small")
def test_wrong_model_names_first_keys(tmp_path):
    da2 = FIXTURES / "ppd" / "da2_semantics_small" / "weights.safetensors"
    with pytest.raises(CheckpointMismatch, match=r"0 of \d+ expected keys found; missing .*x_embedder"):
        load_model(lambda: DiT(SMALL), da2, "ppd_dit")


def test_shape_mismatch_is_reported():
    state = {k[4:]: v for k, v in _state().items()}
    state["final_layer.linear.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatch, match=r"shape mismatches .*final_layer.linear.bias: file \(3,\)"):
        check_state_dict(DiT(SMALL), state)


def test_not_a_tensor_dict(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        read_state_dict(tmp_path / "list.pth")


def test_declared_ignored_groups_match_manifests():
    # the DA2 file's depth head is exactly the group PPD ignores; nothing else is dropped
    keys = manifest("da2_vitl.json")
    kept = select_keys(dict.fromkeys(keys, torch.zeros(0)), CHECKPOINT_LAYOUTS["da2_vit"])
    dropped = set(keys) - set(kept)
    assert dropped == {k for k in keys if k.startswith("depth_head.")} and len(dropped) == 64
    assert all(k.startswith("pretrained.") for k in kept)
