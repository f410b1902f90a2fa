"""DQN's initial weights on CartPole-v1: TF-Agents' (``init: tf_agents``) against PyTorch's (``init: torch``).

Stable-Baselines3's DQN starts from PyTorch's ``nn.Linear`` default (kernels
and biases uniform in ±1/sqrt(fan_in)), and RL-Baselines3-Zoo tuned its
hyperparameters with it; TF-Agents' Q-network examples start from He-normal
hidden layers and an output layer near -0.2. This script trains kd_rl's DQN
with RL-Zoo's CartPole-v1 settings as SB3 runs them (the ``CartPole-v1-rlzoo``
entry of ``dqn.yml``: [256, 256], constant learning rate 2.3e-3, 50,000 env
steps, vanilla DQN, with SB3's one-step targets in place of the entry's
3-step returns; the target network refreshed once per round of 128 gradient
steps, as SB3's 10-env-step interval does) under each initialisation, 3 seeds,
evaluating greedily every 2,500 env steps over 20 episodes and stopping at the
first evaluation that reaches 475, as `benchmarks/teachers.py` does.

    python benchmarks/dqn_init.py [--seeds 0 1 2] [--inits tf_agents torch]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import quiet_tensorflow, train_to_threshold, write_results

quiet_tensorflow()

THRESHOLD, BUDGET, EVAL_EVERY, EPISODES = 475.0, 50_000, 2_500, 20
ENTRY = "CartPole-v1-rlzoo"  # RL-Zoo's settings (kd_rl/hyperparams/dqn.yml)
SB3_TARGETS = {"n_step": 1}  # SB3's DQN bootstraps after one step (the entry: 3)


def run(init: str, seed: int) -> dict:
    start = time.perf_counter()
    r = train_to_threshold(
        ENTRY, "dqn", seed, BUDGET, EVAL_EVERY, THRESHOLD, EPISODES, overrides={"init": init, **SB3_TARGETS}
    )
    return {
        "init": init,
        "seed": seed,
        "solved_at_env_steps": r["solved_at_env_steps"],
        "wall_seconds": time.perf_counter() - start,
        "curve": [(steps, ret) for steps, ret, _ in r["curve"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--inits", nargs="+", default=["tf_agents", "torch"], choices=["tf_agents", "torch"])
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:  # seed-major, so both initialisations share the machine's load
        for init in args.inits:
            runs.append(run(init, seed))
            r = runs[-1]
            print(f"init {init} seed {seed}: solved at {r['solved_at_env_steps']} ({r['wall_seconds']:.0f} s)")
    rows = [
        "| init | seeds solved | env steps to 475, per seed | median env steps |",
        "|---|---|---|---|",
    ]
    for init in args.inits:
        mine = [r for r in runs if r["init"] == init]
        steps = [r["solved_at_env_steps"] for r in mine]
        per_seed = ", ".join(f"{s:,}" if s is not None else "not solved" for s in steps)
        median = float(np.median([BUDGET if s is None else s for s in steps]))
        solved = sum(s is not None for s in steps)
        rows.append(f"| {init} | {solved}/{len(mine)} | {per_seed} | {median:,.0f} |")
    table = "\n".join(rows) + (
        f"\n\nRL-Zoo's CartPole-v1 DQN settings (the `{ENTRY}` entry of kd_rl/hyperparams/dqn.yml, with SB3's "
        f"one-step targets: {SB3_TARGETS}), "
        f"budget {BUDGET:,} env steps; "
        "a seed that does not solve counts as the budget in the median."
    )
    write_results("dqn_init", {"entry": ENTRY, "overrides": SB3_TARGETS, "budget": BUDGET, "runs": runs}, table)


if __name__ == "__main__":
    main()
