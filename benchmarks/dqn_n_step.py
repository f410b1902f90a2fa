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

The cases (entry, threshold, budget, seeds): the row ``dqn_n_step`` of ``experiments.yml``.

    python benchmarks/run.py dqn_n_step [--cases CartPole-v1-rlzoo ...] [--n-steps 1 3]
"""

from __future__ import annotations

import time

import numpy as np
from _common import check_choices, quiet_tensorflow, train_to_threshold

quiet_tensorflow()


def run(case: str, setting: list, n_step: int, seed: int, episodes: int) -> dict:
    """One DQN run of ``case`` (its ``setting``, see `compare`) with ``n_step``, stopped at the threshold."""
    from kd_rl.teachers.hyperparam_tables import load_hyperparameters

    entry, untuned, threshold, budget, eval_every, _ = setting
    overrides = {"n_step": n_step}
    if untuned:  # every key from `default`, over the environment's own entry
        _, defaults = load_hyperparameters("default", "dqn")
        overrides = {**defaults, "hidden_units": list(defaults["hidden_units"]), **overrides}
    start = time.perf_counter()
    r = train_to_threshold(entry, "dqn", seed, budget, eval_every, threshold, episodes, overrides)
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


def compare(case_settings: dict[str, list], episodes: int, cases: list[str], n_steps: list[int]) -> tuple[dict, str]:
    """Env steps to the threshold with each ``n_step``, per case, seed by seed.

    Args:
        case_settings: case -> ``[hyperparameter entry, take every key from default, threshold, budget,
            eval_every, seeds]``.
        episodes: greedy episodes per evaluation.
        cases: the cases of ``case_settings`` to run.
        n_steps: the ``n_step`` values to compare.
    """
    check_choices("cases", cases, case_settings)
    runs = []
    for case in cases:
        for seed in case_settings[case][5]:  # seed-major, so both settings share the machine's load
            for n_step in n_steps:
                runs.append(run(case, case_settings[case], n_step, seed, episodes))
                r = runs[-1]
                print(f"{case} n_step {n_step} seed {seed}: solved at {r['solved_at_env_steps']}", flush=True)
    rows = [
        "| case | n_step | seeds | seeds solved | env steps to the threshold, per seed | median env steps |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        budget, seeds = case_settings[case][3], case_settings[case][5]
        for n_step in n_steps:
            steps = [r["solved_at_env_steps"] for r in runs if (r["case"], r["n_step"]) == (case, n_step)]
            per_seed = ", ".join(f"{s:,}" if s is not None else "not solved" for s in steps)
            median = float(np.median([budget if s is None else s for s in steps]))
            solved = sum(s is not None for s in steps)
            rows.append(
                f"| {case} | {n_step} | {seeds[0]}-{seeds[-1]} | {solved}/{len(steps)} | {per_seed} | {median:,.0f} |"
            )
    table = "\n".join(rows) + (
        "\n\nThresholds and evaluation intervals: "
        + "; ".join(f"{c} {case_settings[c][2]:g} every {case_settings[c][4]:,} env steps" for c in cases)
        + f"; {episodes} greedy episodes per evaluation. A seed that does not solve counts as the budget in the "
        "median."
    )
    return {"cases": {c: case_settings[c] for c in cases}, "runs": runs}, table


if __name__ == "__main__":
    from run import main

    main(script=__file__)
