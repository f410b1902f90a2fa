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

The entry, its overrides, the threshold, budget and seeds: the row ``dqn_init`` of ``experiments.yml``.

    python benchmarks/run.py dqn_init [--seeds 0 1 2] [--inits tf_agents torch]
"""

from __future__ import annotations

import time

import numpy as np
from _common import quiet_tensorflow, train_to_threshold

quiet_tensorflow()


def run(
    entry: str, overrides: dict, init: str, seed: int, threshold: float, budget: int, eval_every: int, episodes: int
) -> dict:
    """One DQN run from initialisation ``init``, stopped at the first evaluation reaching ``threshold``."""
    start = time.perf_counter()
    r = train_to_threshold(
        entry, "dqn", seed, budget, eval_every, threshold, episodes, overrides={"init": init, **overrides}
    )
    return {
        "init": init,
        "seed": seed,
        "solved_at_env_steps": r["solved_at_env_steps"],
        "wall_seconds": time.perf_counter() - start,
        "curve": [(steps, ret) for steps, ret, _ in r["curve"]],
    }


def compare(
    entry: str,
    overrides: dict,
    threshold: float,
    budget: int,
    eval_every: int,
    episodes: int,
    seeds: list[int],
    inits: list[str],
) -> tuple[dict, str]:
    """Env steps to the threshold from each initialisation, seed by seed.

    Args:
        entry: kd_rl's DQN hyperparameter entry.
        overrides: hyperparameters changed from the entry's.
        threshold: mean evaluation return that counts as solved.
        budget: env steps per run at most.
        eval_every: env steps between greedy evaluations.
        episodes: greedy episodes per evaluation.
        seeds: seeds of the runs of each initialisation.
        inits: the initialisations (``init``: tf_agents, torch).
    """
    runs = []
    for seed in seeds:  # seed-major, so both initialisations share the machine's load
        for init in inits:
            runs.append(run(entry, overrides, init, seed, threshold, budget, eval_every, episodes))
            r = runs[-1]
            print(f"init {init} seed {seed}: solved at {r['solved_at_env_steps']} ({r['wall_seconds']:.0f} s)")
    rows = [
        f"| init | seeds solved | env steps to {threshold:g}, per seed | median env steps |",
        "|---|---|---|---|",
    ]
    for init in inits:
        mine = [r for r in runs if r["init"] == init]
        steps = [r["solved_at_env_steps"] for r in mine]
        per_seed = ", ".join(f"{s:,}" if s is not None else "not solved" for s in steps)
        median = float(np.median([budget if s is None else s for s in steps]))
        solved = sum(s is not None for s in steps)
        rows.append(f"| {init} | {solved}/{len(mine)} | {per_seed} | {median:,.0f} |")
    table = "\n".join(rows) + (
        f"\n\nRL-Zoo's CartPole-v1 DQN settings (the `{entry}` entry of kd_rl/hyperparams/dqn.yml, with SB3's "
        f"one-step targets: {overrides}), "
        f"budget {budget:,} env steps; "
        "a seed that does not solve counts as the budget in the median."
    )
    return {"entry": entry, "overrides": overrides, "budget": budget, "runs": runs}, table


if __name__ == "__main__":
    from run import main

    main(script=__file__)
