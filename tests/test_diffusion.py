"""Timestep tables and Euler steps against the spec."""
import pytest
import torch

from ppd_ros.diffusion import EulerSampler, FlowMatchingSchedule, initial_noise, sampling_timesteps

pytestmark = pytest.mark.numeric  # rerun on AVX2 kernels by ./bootstrap.sh test (docs/testing.md)

TABLE = {
    1: [1000], 2: [1000, 500], 3: [1000, 666, 333], 4: [1000, 750, 500, 249], 5: [1000, 800, 600, 399, 199],
    8: [1000, 875, 750, 625, 500, 374, 249, 124], 10: [1000, 900, 800, 700, 600, 500, 399, 299, 199, 99],
    20: [1000, 950, 900, 850, 800, 750, 700, 650, 600, 550, 499, 449, 399, 349, 299, 249, 199, 149, 99, 49],
}


@pytest.mark.parametrize("n", sorted(TABLE))
def test_sampling_timesteps_match_spec_table(n):
    assert sampling_timesteps(n).tolist() == TABLE[n]


def test_sampling_timesteps_rejects_zero():
    with pytest.raises(ValueError):
        sampling_timesteps(0)


def test_euler_step_matches_closed_form_and_last_step_jumps_to_x0():
    sch = FlowMatchingSchedule()
    x0, noise = torch.randn(3), torch.randn(3)
    x_t = 0.25 * x0 + 0.75 * noise  # t = 750
    v = noise - x0
    assert torch.allclose(sch.euler_step(x_t, v, 750, 500), 0.5 * x0 + 0.5 * noise, atol=1e-6)
    assert torch.allclose(sch.euler_step(x_t, v, 750, -1), x0, atol=1e-6)


def test_sampler_recovers_data_for_exact_velocity_and_adds_half():
    x0 = torch.full((1, 1, 2, 2), 0.3)
    noise = initial_noise((1, 1, 2, 2), torch.Generator().manual_seed(0))

    def oracle(latent, t):  # exact velocity of the straight path through x0
        a = t.float() / 1000
        return (latent - x0) / a

    out = EulerSampler(4)(oracle, noise)
    assert torch.allclose(out, x0 + 0.5, atol=1e-5)


def test_initial_noise_is_reproducible_by_seed():
    a = initial_noise((1, 1, 4, 4), torch.Generator().manual_seed(7))
    b = initial_noise((1, 1, 4, 4), torch.Generator().manual_seed(7))
    c = initial_noise((1, 1, 4, 4), torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
