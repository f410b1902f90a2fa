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

The teacher, network, budgets, evaluation intervals and threshold: the row ``sample_efficiency`` of
``experiments.yml``.

    python benchmarks/run.py sample_efficiency [--seeds 0 1 2]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from _common import curve_points, quiet_tensorflow

quiet_tensorflow()


def _read_curve(folder: str, run: str = "run") -> list[tuple[int, float]]:
    return curve_points(Path(folder) / run / "curve.csv", "mean_return")


def _first_reaching(curve: list[tuple[int, float]], threshold: float) -> int | None:
    return next((steps for steps, ret in curve if ret >= threshold), None)


def compare(
    teacher: str,
    env_id: str,
    hidden: int,
    score: float,
    seeds: list[int],
    distill_steps: int,
    dqn_steps: int,
    distill_eval_every: int,
    dqn_eval_every: int,
    eval_episodes: int,
) -> tuple[dict, str]:
    """Env steps until a network reaches the normalised score ``score``: distilled, and by DQN from scratch.

    Args:
        teacher: the zoo teacher (its DQN hyperparameter entry is ``env_id``'s).
        env_id: the environment.
        hidden: hidden units of the network both methods train.
        score: the normalised score to reach.
        seeds: one run of each method per seed.
        distill_steps: env steps of each distillation.
        dqn_steps: env steps of each DQN run.
        distill_eval_every: env steps between the distillation's evaluations (and its rounds).
        dqn_eval_every: env steps between the DQN's evaluations.
        eval_episodes: greedy episodes per evaluation.
    """
    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.evaluate import random_policy_return, run_episodes
    from kd_rl.models import load_policy
    from kd_rl.teachers import train_teacher
    from kd_rl.zoo import zoo_entry

    args = {"seeds": seeds, "distill_steps": distill_steps, "dqn_steps": dqn_steps, "teacher": teacher}
    entry = zoo_entry(teacher)
    teacher = load_policy(teacher)
    teacher_return = run_episodes(teacher, env_id, 100, seed=0).mean_return
    random_return = random_policy_return(env_id, 100, seed=0)
    threshold = random_return + score * (teacher_return - random_return)
    runs = []
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            distill_policy(
                teacher,
                DistillConfig(
                    env_id=env_id,
                    hidden_units=hidden,
                    steps=distill_steps,
                    seed=seed,
                    collect_per_round=distill_eval_every,
                    updates_per_round=distill_eval_every // 5,
                    eval_every=distill_eval_every,
                    curve_episodes=eval_episodes,
                    eval_episodes=eval_episodes,
                ),
                out_dir=Path(tmp) / "run",
                progress=False,
            )
            runs.append({"method": "distillation", "seed": seed, "budget": distill_steps, "curve": _read_curve(tmp)})
            train_teacher(
                env_id,
                "dqn",
                Path(tmp) / "dqn",
                steps=dqn_steps,
                seed=seed,
                hidden_units=hidden,
                eval_every=dqn_eval_every,
                eval_episodes=eval_episodes,
                progress=False,
            )
            runs.append(
                {"method": "DQN from scratch", "seed": seed, "budget": dqn_steps, "curve": _read_curve(tmp, "dqn")}
            )
        for r in runs[-2:]:
            r["reached_at_env_steps"] = _first_reaching(r["curve"], threshold)
            r["best_return"] = max(ret for _, ret in r["curve"])
            print(r["method"], seed, r["reached_at_env_steps"], r["best_return"], flush=True)

    rows = [
        f"Teacher `{args['teacher']}`: {teacher_return:.1f} over 100 episodes, random policy {random_return:.1f}; "
        f"threshold (normalised score {score}) = {threshold:.1f}. {len(seeds)} seeds per method. "
        f"The teacher itself cost {entry['env_steps']:,} env steps of DQN (its exported weights are the best "
        f"periodic evaluation, at {entry['best_eval_env_steps']:,}); that cost is not in the distillation rows.\n",
        f"| method | seed | budget (env steps) | env steps to a normalised score of {score} | "
        f"best {eval_episodes}-episode return |",
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
        f"Distillation reached a normalised score of {score} on {d['seeds_reached']}/{len(seeds)} seeds"
        + (f" (median {d['median_env_steps']:,.0f} env steps)" if d["median_env_steps"] is not None else "")
        + f"; DQN from scratch on {q['seeds_reached']}/{len(seeds)}"
        + (f" (median {q['median_env_steps']:,.0f} env steps)" if q["median_env_steps"] is not None else "")
        + "."
    )
    if d["median_env_steps"] and q["median_env_steps"]:
        ratio = q["median_env_steps"] / d["median_env_steps"]
        text += f" Ratio of medians: {ratio:.1f}x fewer env steps by distillation."
    data = {
        "args": args,
        "threshold": threshold,
        "teacher_return": teacher_return,
        "runs": runs,
        "random_return": random_return,
        "threshold_normalised_score": score,
        "summary": summary,
    }
    return data, "\n".join(rows) + "\n\n" + text


if __name__ == "__main__":
    from run import main

    main(script=__file__)
