"""Sample efficiency: distilling a 50-unit student against training it from scratch.

Both methods train the same network (one hidden layer of 50 ReLU units) on
CartPole-v1 and are scored the same way: 20 greedy episodes at regular
intervals, and the first environment step at which that evaluation reaches a
normalised score of 0.95, ``(return − random) / (teacher − random)`` with the
teacher's and a random policy's returns over 100 episodes (the shipped
100-unit ``CartPole-v1-dqn`` teacher returns 500 and a random policy about
22, so about 476).

* distillation: `distill_policy` with its default losses and collection
  (student-driven, KL at T = 0.01, 0.2 updates of 128 states per env step) in
  rounds of 100 env steps and 20 updates, evaluated every 100 env steps, with
  a 5,000-step budget; every environment step is one the student took,
  labelled by the teacher;
* from scratch: DQN (`train_teacher`, the ``CartPole-v1`` hyperparameters with
  ``hidden_units: [50]``), evaluated every 1,000 env steps, with a
  100,000-step budget.

The evaluation interval bounds each number's resolution (100 and 1,000 steps).

The teacher's own training is not counted in the distillation column; it is
reported beside it (the zoo teacher's metrics).

    python benchmarks/sample_efficiency.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import curve_points, quiet_tensorflow, write_results

quiet_tensorflow()

DISTILL_EVAL_EVERY, DQN_EVAL_EVERY, EVAL_EPISODES, HIDDEN, SCORE = 100, 1_000, 20, 50, 0.95


def _read_curve(folder: str, run: str = "run") -> list[tuple[int, float]]:
    return curve_points(Path(folder) / run / "curve.csv", "mean_return")


def _first_reaching(curve: list[tuple[int, float]], threshold: float) -> int | None:
    return next((steps for steps, ret in curve if ret >= threshold), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--distill-steps", type=int, default=5_000)
    parser.add_argument("--dqn-steps", type=int, default=100_000)
    parser.add_argument("--teacher", default="CartPole-v1-dqn")
    args = parser.parse_args()

    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.evaluate import random_policy_return, run_episodes
    from kd_rl.models import load_policy
    from kd_rl.teachers import train_teacher
    from kd_rl.zoo import zoo_entry

    env_id = "CartPole-v1"
    teacher = load_policy(args.teacher)
    teacher_return = run_episodes(teacher, env_id, 100, seed=0).mean_return
    random_return = random_policy_return(env_id, 100, seed=0)
    threshold = random_return + SCORE * (teacher_return - random_return)  # normalised score 0.95
    entry = zoo_entry(args.teacher)
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            distill_policy(
                teacher,
                DistillConfig(
                    env_id=env_id,
                    hidden_units=HIDDEN,
                    steps=args.distill_steps,
                    seed=seed,
                    collect_per_round=DISTILL_EVAL_EVERY,
                    updates_per_round=DISTILL_EVAL_EVERY // 5,
                    eval_every=DISTILL_EVAL_EVERY,
                    curve_episodes=EVAL_EPISODES,
                    eval_episodes=EVAL_EPISODES,
                ),
                out_dir=Path(tmp) / "run",
                progress=False,
            )
            runs.append(
                {"method": "distillation", "seed": seed, "budget": args.distill_steps, "curve": _read_curve(tmp)}
            )
            train_teacher(
                env_id,
                "dqn",
                Path(tmp) / "dqn",
                steps=args.dqn_steps,
                seed=seed,
                hidden_units=HIDDEN,
                eval_every=DQN_EVAL_EVERY,
                eval_episodes=EVAL_EPISODES,
                progress=False,
            )
            runs.append(
                {"method": "DQN from scratch", "seed": seed, "budget": args.dqn_steps, "curve": _read_curve(tmp, "dqn")}
            )
        for r in runs[-2:]:
            r["reached_at_env_steps"] = _first_reaching(r["curve"], threshold)
            r["best_return"] = max(ret for _, ret in r["curve"])
            print(r["method"], seed, r["reached_at_env_steps"], r["best_return"], flush=True)

    rows = [
        f"Teacher `{args.teacher}`: {teacher_return:.1f} over 100 episodes, random policy {random_return:.1f}; "
        f"threshold (normalised score {SCORE}) = {threshold:.1f}. {len(args.seeds)} seeds per method. "
        f"The teacher itself cost {entry['env_steps']:,} env steps of DQN (its exported weights are the best "
        f"periodic evaluation, at {entry['best_eval_env_steps']:,}); that cost is not in the distillation rows.\n",
        f"| method | seed | budget (env steps) | env steps to a normalised score of {SCORE} | best 20-episode return |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        reached = f"{r['reached_at_env_steps']:,}" if r["reached_at_env_steps"] is not None else "not reached"
        rows.append(f"| {r['method']} | {r['seed']} | {r['budget']:,} | {reached} | {r['best_return']:.1f} |")
    summary = {}
    for method in ("distillation", "DQN from scratch"):
        reached = [r["reached_at_env_steps"] for r in runs if r["method"] == method]
        summary[method] = {
            "seeds_reached": sum(x is not None for x in reached),
            "median_env_steps": float(np.median([x for x in reached if x is not None])) if any(reached) else None,
        }
    d, q = summary["distillation"], summary["DQN from scratch"]
    text = (
        f"Distillation reached a normalised score of {SCORE} on {d['seeds_reached']}/{len(args.seeds)} seeds"
        + (f" (median {d['median_env_steps']:,.0f} env steps)" if d["median_env_steps"] is not None else "")
        + f"; DQN from scratch on {q['seeds_reached']}/{len(args.seeds)}"
        + (f" (median {q['median_env_steps']:,.0f} env steps)" if q["median_env_steps"] is not None else "")
        + "."
    )
    if d["median_env_steps"] and q["median_env_steps"]:
        ratio = q["median_env_steps"] / d["median_env_steps"]
        text += f" Ratio of medians: {ratio:.1f}x fewer env steps by distillation."
    write_results(
        "sample_efficiency",
        {"args": vars(args), "threshold": threshold, "teacher_return": teacher_return, "runs": runs}
        | {"random_return": random_return, "threshold_normalised_score": SCORE}
        | {"summary": summary},
        "\n".join(rows) + "\n\n" + text,
    )


if __name__ == "__main__":
    main()
