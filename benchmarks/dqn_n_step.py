"""DQN's multi-step targets: env steps to the threshold with ``n_step: 1`` against ``n_step: 3``.

Each case trains kd_rl's DQN on one hyperparameter entry twice per seed, once
with one-step targets and once with 3-step returns (`dqn.yml`'s ``n_step``,
`kd_rl.teachers.collect.OffPolicyEnvs`), everything else equal, evaluating
greedily every ``eval_every`` env steps over 20 episodes and stopping at the
first evaluation that reaches the threshold, as `benchmarks/teachers.py` does.
The seeds (10 and up) are kept apart from the 0-2 that `teachers.py` reports
beside Stable-Baselines3, since these runs chose the default.

- ``CartPole-v1-rlzoo``, ``LunarLander-v3-rlzoo``: RL-Zoo's settings as SB3
  runs them (vanilla DQN).
- ``Acrobot-v1-untuned``: Acrobot-v1 with every key from ``dqn.yml``'s
  ``default`` entry, what an environment without an entry trains with (Double
  DQN, one hidden layer of 100 units).

    python benchmarks/dqn_n_step.py [--cases CartPole-v1-rlzoo ...] [--n-steps 1 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import quiet_tensorflow, train_to_threshold, write_results

quiet_tensorflow()

EPISODES = 20
#: name -> (hyperparameter entry, take every key from ``default``, threshold, budget, eval_every, seeds)
CASES = {
    "CartPole-v1-rlzoo": ("CartPole-v1-rlzoo", False, 475.0, 50_000, 2_500, (10, 11, 12, 13, 14, 15)),
    "LunarLander-v3-rlzoo": ("LunarLander-v3-rlzoo", False, 200.0, 100_000, 10_000, (10, 11, 12)),
    "Acrobot-v1-untuned": ("Acrobot-v1", True, -100.0, 100_000, 5_000, (10, 11, 12)),
}


def run(case: str, n_step: int, seed: int) -> dict:
    from kd_rl.teachers.hyperparams import load_hyperparameters

    entry, untuned, threshold, budget, eval_every, _ = CASES[case]
    overrides = {"n_step": n_step}
    if untuned:  # every key from `default`, over the environment's own entry
        _, defaults = load_hyperparameters("default", "dqn")
        overrides = {**defaults, "hidden_units": list(defaults["hidden_units"]), **overrides}
    start = time.perf_counter()
    r = train_to_threshold(entry, "dqn", seed, budget, eval_every, threshold, EPISODES, overrides)
    curve = [(steps, ret) for steps, ret, _ in r["curve"]]
    return {
        "case": case,
        "n_step": n_step,
        "seed": seed,
        "budget": budget,
        "solved_at_env_steps": r["solved_at_env_steps"],
        "best_return": max(ret for _, ret in curve),
        "wall_seconds": time.perf_counter() - start,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--n-steps", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    runs = []
    for case in args.cases:
        for seed in CASES[case][5]:  # seed-major, so both settings share the machine's load
            for n_step in args.n_steps:
                runs.append(run(case, n_step, seed))
                r = runs[-1]
                print(f"{case} n_step {n_step} seed {seed}: solved at {r['solved_at_env_steps']}", flush=True)
    rows = [
        "| case | n_step | seeds | seeds solved | env steps to the threshold, per seed | median env steps |",
        "|---|---|---|---|---|---|",
    ]
    for case in args.cases:
        budget, seeds = CASES[case][3], CASES[case][5]
        for n_step in args.n_steps:
            steps = [r["solved_at_env_steps"] for r in runs if (r["case"], r["n_step"]) == (case, n_step)]
            per_seed = ", ".join(f"{s:,}" if s is not None else "not solved" for s in steps)
            median = float(np.median([budget if s is None else s for s in steps]))
            solved = sum(s is not None for s in steps)
            rows.append(
                f"| {case} | {n_step} | {seeds[0]}-{seeds[-1]} | {solved}/{len(steps)} | {per_seed} | {median:,.0f} |"
            )
    table = "\n".join(rows) + (
        "\n\nThresholds and evaluation intervals: "
        + "; ".join(f"{c} {CASES[c][2]:g} every {CASES[c][4]:,} env steps" for c in args.cases)
        + f"; {EPISODES} greedy episodes per evaluation. A seed that does not solve counts as the budget in the "
        "median."
    )
    write_results("dqn_n_step", {"cases": {c: CASES[c] for c in args.cases}, "runs": runs}, table)


if __name__ == "__main__":
    main()
