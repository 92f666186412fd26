"""Flow-matching (linear interpolation) schedule and Euler sampler, exactly as the official PPD.

The sampler owns no model: it receives the denoiser as a callable ``(latent, t) -> velocity``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sampling_timesteps(steps: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Integer timesteps from T down, as ``round(arange(T, -1, -(T+1)/N))`` in float32 (int32)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = num_train_timesteps
    # float32 accumulation matters (N=20 gives 499, not 500, at index 10): compute it the same way.
    seq = torch.arange(t, -1, -(t + 1) / steps, dtype=torch.float32)
    return torch.round(seq).to(torch.int32)[:steps]


@dataclass(frozen=True)
class FlowMatchingSchedule:
    """x_t = (1 - t/T) x_0 + (t/T) x_T; the network predicts v = x_T - x_0."""

    num_train_timesteps: int = 1000

    def euler_step(self, x_t: torch.Tensor, v: torch.Tensor, t: int, s: int) -> torch.Tensor:
        """Step from timestep t to s (s < 0 means: jump to the clean estimate)."""
        big_t = float(self.num_train_timesteps)
        a = torch.tensor(t, dtype=torch.float32) / big_t
        v = v.to(torch.float32)
        x0_hat = x_t - a * v
        if s < 0:
            return x0_hat
        xT_hat = x_t + (1 - a) * v
        b = torch.tensor(s, dtype=torch.float32) / big_t
        return (1 - b) * x0_hat + b * xT_hat


class EulerSampler:
    """Runs N Euler steps of a velocity denoiser from a given initial latent."""

    def __init__(self, steps: int = 4, schedule: FlowMatchingSchedule | None = None) -> None:
        self.schedule = schedule or FlowMatchingSchedule()
        self.timesteps = sampling_timesteps(steps, self.schedule.num_train_timesteps)

    def __call__(self, denoiser: Denoiser, init_latent: torch.Tensor,
                 on_step: Callable[[int, torch.Tensor], None] | None = None, start: int = 0) -> torch.Tensor:
        """Returns the final latent + 0.5 (float32); ``on_step(i, latent)`` sees each updated latent.

        ``start`` > 0 begins at ``timesteps[start]`` (a warm start: ``init_latent`` must then be a latent
        at that timestep, e.g. from :func:`renoise`) and runs the remaining ``steps - start`` evaluations.
        """
        if not 0 <= start < len(self.timesteps):
            raise ValueError(f"start must be in [0, {len(self.timesteps)}), got {start}")
        latent = init_latent.to(torch.float32)
        ts = [int(t) for t in self.timesteps]
        for i, t in enumerate(ts):
            if i < start:
                continue
            s = ts[i + 1] if i + 1 < len(ts) else -1
            v = denoiser(latent, torch.tensor(t, dtype=torch.int32, device=latent.device))
            latent = self.schedule.euler_step(latent, v, t, s)
            if on_step is not None:
                on_step(i, latent)
        return latent + 0.5


def renoise(clean: torch.Tensor, noise: torch.Tensor, t: int, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The forward process at timestep t: ``(1 - t/T) x_0 + (t/T) x_T`` (float32).

    Why: a warm start re-noises the previous frame's clean latent with the stream's own fixed noise,
    so a frame that did not change lands on (nearly) the latent its cold trajectory would have passed.
    """
    a = float(t) / float(num_train_timesteps)
    return (1 - a) * clean.to(torch.float32) + a * noise.to(torch.float32)


def initial_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard-normal float32 latent drawn on the CPU (as the official code) and moved to ``device``."""
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
