"""Misbehaving Gymnasium environments for the fault-injection tests (tests/test_faults.py).

Importing this module registers them, so ``--env fault_envs:NanReward-v0`` works
from the command line (Gymnasium imports ``fault_envs`` first) when tests/ is on
PYTHONPATH. Each has CartPole-v1's spaces (``Box`` observations of shape (4,),
``Discrete(2)`` actions), so the shipped CartPole-v1 teachers fit them:

* ``NanReward-v0`` / ``InfReward-v0``: CartPole-v1 whose reward is NaN / +inf from
  the ``bad_from``-th step (counted over the environment's life, default 5) on;
* ``NeverEnds-v0``: never terminates or truncates, and no ``TimeLimit`` wraps it;
* ``CrashAt-v0``: CartPole-v1 that raises ``RuntimeError("simulated crash")`` once
  ``crash_at`` steps (kwarg, else the ``FAULT_CRASH_AT`` environment variable,
  default 300) have been taken by all its instances in this process together,
  so a run with several environments fails part-way;
* ``Noisy-v0``: CartPole-v1 whose observations are float64 and outside its
  declared observation space, so Gymnasium's passive env checker warns; with
  ``nan_obs_at=N`` its N-th step (over the environment's life) returns a NaN
  observation, a bad input that stops a kd_rl run after those warnings.
"""

from __future__ import annotations

import os

import gymnasium
import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

__all__ = ["BadReward", "CrashAt", "NeverEnds", "Noisy", "CRASH_MESSAGE"]

CRASH_MESSAGE = "simulated crash"
CARTPOLE_STEPS = 500


class BadReward(gymnasium.Wrapper):
    """CartPole-v1 whose reward becomes ``value`` from the ``bad_from``-th step on (over the env's life)."""

    def __init__(self, value: float = float("nan"), bad_from: int = 5, render_mode=None):
        super().__init__(gymnasium.make("CartPole-v1", render_mode=render_mode))
        self.value, self.bad_from, self.steps = float(value), int(bad_from), 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps >= self.bad_from:
            reward = self.value
        return obs, reward, terminated, truncated, info


class CrashAt(gymnasium.Wrapper):
    """CartPole-v1 that raises RuntimeError when all instances together reach ``crash_at`` steps."""

    total_steps = 0  # over every instance in this process

    def __init__(self, crash_at: int | None = None, render_mode=None):
        super().__init__(gymnasium.make("CartPole-v1", render_mode=render_mode))
        if crash_at is None:
            crash_at = int(os.environ.get("FAULT_CRASH_AT", "300"))
        self.crash_at = int(crash_at)

    def step(self, action):
        CrashAt.total_steps += 1
        if CrashAt.total_steps >= self.crash_at:
            raise RuntimeError(CRASH_MESSAGE)
        return self.env.step(action)


class NeverEnds(gymnasium.Env):
    """CartPole-v1's spaces; small random observations, reward 1, never terminated nor truncated."""

    metadata = {"render_modes": [], "render_fps": 50}

    def __init__(self, render_mode=None):
        high = np.array([4.8, np.finfo(np.float32).max, 0.42, np.finfo(np.float32).max], np.float32)
        self.observation_space = gymnasium.spaces.Box(-high, high, dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.render_mode = render_mode

    def _obs(self):
        return self.np_random.uniform(-0.05, 0.05, size=4).astype(np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 1.0, False, False, {}


class Noisy(CartPoleEnv):
    """CartPole-v1 declaring float32 observations in [-0.01, 0.01] but returning float64 ones outside it."""

    def __init__(self, nan_obs_at: int | None = None, render_mode=None):
        super().__init__(render_mode=render_mode)
        self.observation_space = gymnasium.spaces.Box(-0.01, 0.01, (4,), np.float32)
        self.nan_obs_at, self.steps = nan_obs_at, 0

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        return np.asarray(obs, np.float64) + 1.0, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.steps += 1
        obs = np.asarray(obs, np.float64) + 1.0
        if self.nan_obs_at is not None and self.steps >= self.nan_obs_at:
            obs[-1] = np.nan
        return obs, reward, terminated, truncated, info


def _register() -> None:
    entry = f"{__name__}:"
    gymnasium.register("NanReward-v0", entry + "BadReward", max_episode_steps=CARTPOLE_STEPS)
    gymnasium.register(
        "InfReward-v0", entry + "BadReward", max_episode_steps=CARTPOLE_STEPS, kwargs={"value": float("inf")}
    )
    gymnasium.register("NeverEnds-v0", entry + "NeverEnds", max_episode_steps=None)
    gymnasium.register("CrashAt-v0", entry + "CrashAt", max_episode_steps=CARTPOLE_STEPS)
    gymnasium.register("Noisy-v0", entry + "Noisy", max_episode_steps=CARTPOLE_STEPS)


if "NanReward-v0" not in gymnasium.registry:
    _register()
