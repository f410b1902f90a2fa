"""Stable-Baselines3's DQN on a MinAtar game with a small CNN: env steps per second, and the return reached.

The peer of ``benchmarks/games.py``'s ``teacher_speed``: the same network as kd_rl's MinAtar
teachers (one 16-filter 3x3 convolution, 128 units), the same replay, batch, learning rate,
target-update period, ε schedule and learning start, one gradient step per 4 environment steps,
one environment. It runs in the SB3 venv (``_sb3_venv.py``) with MinAtar installed there, so it
imports neither kd_rl nor TensorFlow; the MinAtar game is wrapped here as kd_rl wraps it (seeded,
the minimal action set, sticky actions 0.1)::

    python _minatar_peer.py --game breakout --seed 0 --steps 200000 --eval-episodes 20 [--threads 1]

It prints one JSON line on stdout: the env steps, the wall seconds of ``learn`` alone, env steps
per second, and the mean greedy return over ``--eval-episodes`` episodes after training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import gymnasium
import numpy as np


class MinAtar(gymnasium.Env):
    """A MinAtar game with seeded resets: frames ``bool [10, 10, channels]``, the game's minimal actions."""

    def __init__(self, game: str):
        from minatar import Environment

        self.game = Environment(env_name=game, sticky_action_prob=0.1, difficulty_ramping=True)
        self.actions = list(self.game.minimal_action_set())
        self.action_space = gymnasium.spaces.Discrete(len(self.actions))
        self.observation_space = gymnasium.spaces.Box(0, 1, tuple(self.game.state_shape()), np.float32)
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None or self.steps == 0:
            self.game.seed(int(self.np_random.integers(2**31 - 1)))
        self.game.reset()
        self.steps = 1
        return self.game.state().astype(np.float32), {}

    def step(self, action):
        reward, done = self.game.act(self.actions[int(action)])
        self.steps += 1
        return self.game.state().astype(np.float32), float(reward), bool(done), self.steps >= 10_000, {}


def train(game: str, seed: int, steps: int, eval_episodes: int, threads: int) -> dict:
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    torch.set_num_threads(threads)

    class MinAtarCnn(BaseFeaturesExtractor):
        """Young & Tian's encoder: a 16-filter 3x3 convolution (valid padding) and ReLU, flattened."""

        def __init__(self, observation_space, features_dim: int = 128):
            h, w, c = observation_space.shape
            super().__init__(observation_space, features_dim)
            self.conv = torch.nn.Sequential(torch.nn.Conv2d(c, 16, 3), torch.nn.ReLU(), torch.nn.Flatten())
            self.linear = torch.nn.Sequential(torch.nn.Linear(16 * (h - 2) * (w - 2), features_dim), torch.nn.ReLU())

        def forward(self, observations):
            return self.linear(self.conv(observations.permute(0, 3, 1, 2)))

    env = MinAtar(game)
    env.reset(seed=seed)
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=1e-4,
        buffer_size=100_000,
        learning_starts=5_000,
        batch_size=32,
        gamma=0.99,
        train_freq=4,
        gradient_steps=1,
        target_update_interval=1_000,
        exploration_fraction=100_000 / 5_000_000,
        exploration_initial_eps=1.0,
        exploration_final_eps=0.01,
        max_grad_norm=10.0,
        policy_kwargs={"features_extractor_class": MinAtarCnn, "net_arch": []},
        seed=seed,
        verbose=0,
    )
    # ε falls over the first 100,000 of 5M steps, as kd_rl's MinAtar settings: SB3 reads the fraction
    # of the steps it is told to learn for, so give the schedule its horizon explicitly.
    model.exploration_schedule = lambda progress_remaining: max(
        0.01, 1.0 - 0.99 * (1.0 - progress_remaining) * steps / 100_000
    )
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    returns = []
    evaluation = MinAtar(game)
    for i in range(eval_episodes):
        obs, _ = evaluation.reset(seed=seed + 10_000 + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = evaluation.step(action)
            total += reward
            done = terminated or truncated
        returns.append(total)
    return {
        "env_steps": int(model.num_timesteps),
        "learn_seconds": seconds,
        "steps_per_second": model.num_timesteps / seconds,
        "mean_return": float(np.mean(returns)),
        "eval_episodes": eval_episodes,
        "params": int(sum(p.numel() for p in model.q_net.parameters())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", required=True, help="MinAtar's module name: breakout, asterix, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (torch.set_num_threads)")
    args = parser.parse_args()
    result = train(args.game, args.seed, args.steps, args.eval_episodes, args.threads)
    print(json.dumps(result), flush=True)
    print(f"SB3 DQN on {args.game}: {result['steps_per_second']:.0f} env steps/s", file=sys.stderr)


if __name__ == "__main__":
    main()
