"""Stable-Baselines3's SAC gradient step on Hopper-v5's shapes: milliseconds per gradient step.

The peer of ``benchmarks/teachers.py``'s ``sac_step``: SB3's SAC with RL-Baselines3-Zoo's MuJoCo
settings (two 256-unit layers for the actor and each critic, batches of 256, automatic entropy
tuning) on an environment with Hopper-v5's spaces (11 observations, 3 actions in [-1, 1]), its replay
buffer filled with random transitions, then ``train(gradient_steps, batch_size)`` timed round after
round. It runs in the SB3 venv (``_sb3_venv.py``), importing neither kd_rl nor TensorFlow::

    python _sac_step_peer.py --gradient-steps 64 --rounds 10 --threads 2

It prints one JSON line on stdout: the median milliseconds per gradient step over the rounds, and
each round's.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium
import numpy as np


class HopperShaped(gymnasium.Env):
    """Hopper-v5's observation and action spaces, random observations: SB3 needs an environment to build."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (11,), np.float32)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.normal(size=11).astype(np.float32), {}

    def step(self, action):
        return self.np_random.normal(size=11).astype(np.float32), 0.0, False, False, {}


def measure(gradient_steps: int, rounds: int, threads: int, batch_size: int = 256) -> dict:
    import torch
    from stable_baselines3 import SAC

    torch.set_num_threads(threads)
    from stable_baselines3.common.logger import configure

    model = SAC("MlpPolicy", HopperShaped(), batch_size=batch_size, learning_starts=0, seed=0, device="cpu")
    model.set_logger(configure(None, []))  # train() logs; learn() would have made the logger
    rng = np.random.default_rng(0)
    for _ in range(10 * batch_size):  # random transitions to sample from
        obs, nxt = rng.normal(size=(1, 11)), rng.normal(size=(1, 11))
        action = rng.uniform(-1, 1, size=(1, 3))
        model.replay_buffer.add(obs, nxt, action, rng.normal(size=1), np.zeros(1), [{}])
    model.train(gradient_steps=gradient_steps, batch_size=batch_size)  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.train(gradient_steps=gradient_steps, batch_size=batch_size)
        times.append((time.perf_counter() - start) * 1000 / gradient_steps)
    return {"ms_per_step": float(np.median(times)), "rounds_ms_per_step": times, "threads": threads}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gradient-steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.gradient_steps, args.rounds, args.threads)))
