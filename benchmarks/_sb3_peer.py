"""Env steps and wall seconds until Stable-Baselines3 first solves an environment (issue #16).

The peer of ``benchmarks/teachers.py``: it trains SB3's DQN, PPO or SAC with
RL-Baselines3-Zoo's hyperparameters (``rl_zoo.yml``) and stops at the first periodic greedy
evaluation whose mean return reaches the threshold. It runs inside the SB3 venv
that ``_sb3_venv.py`` makes, so it imports neither kd_rl nor TensorFlow::

    python _sb3_peer.py --env CartPole-v1 --algo ppo --seed 0 --budget 100000 \\
        --eval-every 5000 --eval-episodes 20 --threshold 475 [--threads 1]

and prints one JSON line on stdout (progress goes to stderr).

What is counted, as kd_rl's teacher runs count it:

- env steps are ``model.num_timesteps``, summed over the zoo's ``n_envs``
  copies; an evaluation is due when it passes each multiple of ``--eval-every``,
  and one more runs when the budget is reached;
- an evaluation is ``--eval-episodes`` greedy (``deterministic=True``) episodes
  on a separate environment seeded ``seed + 10000 + i``, apart from training's
  seeds; with the zoo's ``normalize`` the observations go through the training
  VecNormalize's statistics (not updated) and returns are the raw rewards;
- wall seconds run from just before the environments and the model are built,
  evaluations included.

Linear schedules (``lin_X``) and DQN's exploration fraction span the zoo's
``n_timesteps`` as they do in the zoo, or the budget where that is larger.

PyTorch uses ``--threads`` threads (default 1, ``torch.set_num_threads``): on a
2-core machine this keeps SB3 from claiming both cores, so it meets kd_rl on
even terms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

#: RL-Baselines3-Zoo's hyperparameters, ``ZOO[algo][env]`` as written in the zoo's
#: ``hyperparams/{algo}.yml``, and where they come from: ``rl_zoo.yml`` beside this file.
RL_ZOO_FILE = Path(__file__).resolve().with_name("rl_zoo.yml")
_RL_ZOO = yaml.safe_load(RL_ZOO_FILE.read_text())
ZOO: dict[str, dict[str, dict]] = _RL_ZOO["hyperparams"]
SOURCE: str = _RL_ZOO["source"]


def n_timesteps(algo: str, env_id: str) -> int:
    """RL-Zoo's step budget (``n_timesteps``) of its ``algo`` entry for ``env_id``."""
    return int(ZOO[algo][env_id]["n_timesteps"])


def _linear(initial: float) -> Callable[[float], float]:
    """The zoo's ``linear_schedule``: SB3 passes progress_remaining, 1 at the start and 0 at the end."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial

    return schedule


def _model_kwargs(hyperparameters: dict) -> dict:
    """The zoo entry less its own keys, with ``lin_X`` strings turned into schedules."""
    kwargs = {k: v for k, v in hyperparameters.items() if k not in ("n_timesteps", "n_envs", "normalize", "policy")}
    for key, value in kwargs.items():
        if isinstance(value, str) and value.startswith("lin_"):
            kwargs[key] = _linear(float(value[len("lin_") :]))
    return kwargs


def _check(args: argparse.Namespace) -> None:
    if args.algo not in ZOO:
        raise ValueError(f"--algo {args.algo!r}: expected one of {sorted(ZOO)}")
    if args.env not in ZOO[args.algo]:
        raise ValueError(f"--env {args.env!r}: no zoo entry for {args.algo}; expected one of {sorted(ZOO[args.algo])}")
    for name in ("budget", "eval_every", "eval_episodes", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")


def train(
    env_id: str,
    algo: str,
    seed: int,
    budget: int,
    eval_every: int,
    eval_episodes: int,
    threshold: float,
    threads: int = 1,
) -> dict:
    """Train until a greedy evaluation reaches ``threshold`` or ``budget`` env steps pass; return the record."""
    import gymnasium as gym
    import numpy as np
    import stable_baselines3 as sb3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(threads)
    hyperparameters = ZOO[algo][env_id]
    horizon = max(budget, int(hyperparameters["n_timesteps"]))
    start = time.perf_counter()

    vec_env = make_vec_env(env_id, n_envs=hyperparameters.get("n_envs", 1), seed=seed)
    if hyperparameters.get("normalize"):
        # The zoo gives VecNormalize the agent's discount, for its return-based reward scaling.
        vec_env = VecNormalize(vec_env, gamma=hyperparameters.get("gamma", 0.99))
    model_cls = {"dqn": sb3.DQN, "ppo": sb3.PPO, "sac": sb3.SAC}[algo]
    model = model_cls(
        hyperparameters["policy"], vec_env, seed=seed, device="cpu", verbose=0, **_model_kwargs(hyperparameters)
    )
    eval_env = gym.make(env_id)
    discrete = isinstance(eval_env.action_space, gym.spaces.Discrete)

    def evaluate() -> float:
        returns = []
        for i in range(eval_episodes):
            obs, _ = eval_env.reset(seed=seed + 10_000 + i)
            total, done = 0.0, False
            while not done:
                if isinstance(vec_env, VecNormalize):
                    obs = vec_env.normalize_obs(obs)  # reads the running statistics, never updates them
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(int(action) if discrete else action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns))

    curve: list[list] = []

    class Evaluate(BaseCallback):
        """Evaluate at each multiple of ``eval_every`` and at the budget; stop when solved or spent."""

        next_eval = eval_every

        def _on_step(self) -> bool:
            steps = self.model.num_timesteps
            if steps < self.next_eval and steps < budget:
                return True
            mean = evaluate()
            curve.append([steps, round(mean, 2), round(time.perf_counter() - start, 2)])
            print(f"{env_id} {algo} seed {seed}: {steps} steps, mean return {mean:.1f}", file=sys.stderr, flush=True)
            self.next_eval = (steps // eval_every + 1) * eval_every
            return mean < threshold and steps < budget

    model.learn(total_timesteps=horizon, callback=Evaluate())
    wall = time.perf_counter() - start
    solved = next((row for row in curve if row[1] >= threshold), None)
    return {
        "framework": "sb3",
        "sb3_version": sb3.__version__,
        "torch_version": torch.__version__,
        "gymnasium_version": gym.__version__,
        "env": env_id,
        "algo": algo,
        "seed": seed,
        "budget": budget,
        "threshold": threshold,
        "threads": threads,
        "solved_at_env_steps": solved[0] if solved else None,
        "solved_after_seconds": solved[2] if solved else None,
        "env_steps": int(model.num_timesteps),
        "wall_seconds": round(wall, 2),
        "steps_per_second": round(model.num_timesteps / wall, 1),
        "curve": curve,
        "schedule_horizon": horizon,
        "hyperparameters": {**hyperparameters, "source": SOURCE.format(algo=algo, env=env_id)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="a Gymnasium id with a zoo entry")
    parser.add_argument("--algo", required=True, help="dqn, ppo or sac")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, required=True, help="env steps at most")
    parser.add_argument("--eval-every", type=int, required=True, help="env steps between greedy evaluations")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--threshold", type=float, required=True, help="mean return that counts as solved")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (torch.set_num_threads)")
    args = parser.parse_args()
    try:
        _check(args)
    except ValueError as err:
        print(f"_sb3_peer.py: {err}", file=sys.stderr)
        sys.exit(2)
    record = train(
        args.env, args.algo, args.seed, args.budget, args.eval_every, args.eval_episodes, args.threshold, args.threads
    )
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
