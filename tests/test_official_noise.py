"""Official PPVD demo noise from the saved generator state."""
import json

import pytest
import torch
from safetensors.torch import load_file

from ppd_ros.errors import InputError
from ppd_ros.official_noise import noise_sha256, official_demo_noise
from ppd_ros.parity import discover_handlers, run_fixture

from .conftest import FIXTURES

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)

NOISE = FIXTURES / "ppvd" / "official_demo_noise"


@pytest.mark.needs_shared("fixtures/ppvd/official_demo_noise")
def test_reproduces_official_noise_without_touching_global_rng():
    meta = json.loads((NOISE / "meta.json").read_text())
    state = load_file(str(NOISE / "rng_state.safetensors"))["cpu_rng_state"]
    before = torch.get_rng_state()
    noise = official_demo_noise(state)
    assert torch.equal(torch.get_rng_state(), before)
    assert noise.shape == (16, 1, 512, 512) and noise.dtype == torch.float32
    assert noise_sha256(noise) == meta["noise_sha256_of_float32_bytes"]
    assert noise.flatten()[:8].tolist() == meta["noise_first8"]
    assert torch.equal(official_demo_noise(state), noise)  # the state is copied, not consumed


@pytest.mark.needs_shared("fixtures/ppvd/official_demo_noise")
def test_parity_handler_passes():
    discover_handlers()
    checks = run_fixture(NOISE)
    assert checks and all(c.passed for c in checks), checks


def test_bad_state_is_a_typed_error():
    with pytest.raises(InputError, match="uint8"):
        official_demo_noise(torch.zeros(5056, dtype=torch.float32))
    with pytest.raises(InputError, match="generator state"):
        official_demo_noise(torch.zeros(7, dtype=torch.uint8))
