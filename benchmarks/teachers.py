"""Env steps and wall seconds until each teacher algorithm first solves CartPole-v1.

"Solved" is a mean greedy return >= 475 over 20 evaluation episodes (the
periodic evaluation of ``train_teacher``). DQN uses the ``CartPole-v1-large``
hyperparameters (two layers of 256 units) with a 50,000-step budget, PPO the
``CartPole-v1`` ones with 100,000 steps; 3 seeds each. Wall seconds count
everything up to that evaluation, evaluations included.

    python benchmarks/teachers.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import curve_points, quiet_tensorflow, results_dir, write_results

quiet_tensorflow()

SOLVED = 475.0
CASES = {"dqn": ("CartPole-v1-large", 50_000, 2_500), "ppo": ("CartPole-v1", 100_000, 4_096)}
TARGET_SECONDS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--algos", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--max-steps", type=int, help="cap the step budgets (quick tries only)")
    args = parser.parse_args()

    from kd_rl.teachers import train_teacher

    # Runs of algorithms not asked for this time are kept from the last results, so one
    # algorithm can be measured again on its own.
    previous = results_dir() / "teachers.json"
    runs = (
        [r for r in json.loads(previous.read_text())["runs"] if r["algo"] not in args.algos]
        if previous.exists()
        else []
    )
    for algo in args.algos:
        key, steps, eval_every = CASES[algo]
        steps = min(steps, args.max_steps or steps)
        eval_every = min(eval_every, steps)
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                m = train_teacher(
                    key,
                    algo,
                    Path(tmp) / "run",
                    steps=steps,
                    seed=seed,
                    eval_every=eval_every,
                    eval_episodes=20,
                    progress=False,
                )
                curve = curve_points(Path(tmp) / "run" / "curve.csv", "mean_return", "wall_seconds")
            solved = next(((s, w) for s, r, w in curve if r >= SOLVED), None)
            runs.append(
                {
                    "algo": algo,
                    "hyperparameters": key,
                    "seed": seed,
                    "budget": steps,
                    "solved_at_env_steps": solved[0] if solved else None,
                    "solved_after_seconds": solved[1] if solved else None,
                    "steps_per_second": m["steps_per_second"],
                    "final_mean_return": m["mean_return"],
                    "wall_seconds": m["wall_seconds"],
                    "curve": curve,
                }
            )
            print(runs[-1]["algo"], seed, runs[-1]["solved_at_env_steps"], runs[-1]["solved_after_seconds"], flush=True)
    rows = [
        "| algo | seed | solved at env step | wall s to solve | steps/s "
        "| return of the exported (best) weights, 20 ep. |",
        "|---|---|---|---|---|---|",
    ]
    verdicts = []
    for algo in sorted({r["algo"] for r in runs}):
        mine = [r for r in runs if r["algo"] == algo]
        for r in mine:
            rows.append(
                f"| {algo} | {r['seed']} | {r['solved_at_env_steps'] or 'not solved'} | "
                f"{r['solved_after_seconds'] or '—'} | {r['steps_per_second']:.0f} | "
                f"{r['final_mean_return']:.1f} |"
            )
        ok = all(r["solved_at_env_steps"] is not None and r["solved_after_seconds"] <= TARGET_SECONDS for r in mine)
        solved = [r["solved_at_env_steps"] for r in mine if r["solved_at_env_steps"]]
        verdicts.append(
            f"{algo}: {len(solved)}/{len(mine)} seeds solved within {mine[0]['budget']:,} steps"
            + (f", median {np.median(solved):,.0f} steps" if solved else "")
            + f"; target (every seed, < {TARGET_SECONDS} s): {'met' if ok else 'NOT met'}."
        )
    write_results(
        "teachers", {"runs": runs, "solved_threshold": SOLVED}, "\n".join(rows) + "\n\n" + "\n".join(verdicts)
    )


if __name__ == "__main__":
    main()
