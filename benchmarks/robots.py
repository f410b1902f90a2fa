"""Students that see less than their teacher: a subset of the observation, and sensor noise.

A robot's teacher is trained in simulation with the full state; its student
must act from what the robot's sensors give: fewer features (no velocities)
and noisy ones. Each case distils a zoo teacher, which always acts and labels
from the whole observation, into a memoryless MLP student that sees a subset
(``student_obs``) and/or noisy features (``student_obs_noise``), possibly
through a window of its last readings (``student_history``), with
student-driven collection. Each run is scored ``(student − random) /
(teacher − random)`` over the final evaluation's episodes, the student playing
with its sensor noise.

Cases, budgets and seeds: the row ``robots_views`` of ``experiments.yml``.

    python benchmarks/run.py robots_views [--seeds 0 1 2]
"""

from __future__ import annotations

import numpy as np
from _common import quiet_tensorflow, timed_distill

quiet_tensorflow()


def views(cases: dict, seeds: list[int], episodes: int) -> tuple[dict, str]:
    """Each case's students, one per seed: their normalised scores, agreement and size.

    Args:
        cases: case name -> [zoo teacher, environment, labelled states, DistillConfig settings
            (``student_obs``, ``student_obs_noise``, ``hidden_units``, ...)].
        seeds: one student per case and seed.
        episodes: final evaluation episodes per run.
    """
    from kd_rl.models import load_policy

    results = {}
    for case, (name, env_id, steps, settings) in cases.items():
        teacher = load_policy(name)
        runs = []
        for seed in seeds:
            _, m = timed_distill(teacher, env_id=env_id, steps=steps, seed=seed, eval_episodes=episodes, **settings)
            runs.append(
                {key: m[key] for key in ("normalised_score", "student_mean_return", "teacher_mean_return",
                                         "random_mean_return", "agreement", "student_params", "total_seconds")}
            )  # fmt: skip
            print(case, seed, f"{m['student_mean_return']:.1f} ({m['normalised_score']:.3f})", flush=True)
        scores = [r["normalised_score"] for r in runs]
        results[case] = {"teacher": name, "env_id": env_id, "steps": steps, "settings": settings, "runs": runs,
                         "mean_score": float(np.mean(scores)), "min_score": float(np.min(scores))}  # fmt: skip
    rows = [
        f"{len(seeds)} seeds per case, {episodes} final-evaluation episodes per run; student-driven collection, "
        "the teacher labelling from the whole observation; the noisy students play with their noise.\n",
        "| case | teacher | environment | labelled states | student sees | readings | noise σ | student params | "
        "return (mean over seeds) | normalised score: mean / min | agreement (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, r in results.items():
        seen = r["settings"].get("student_obs") or "all"
        rows.append(
            f"| {case} | `{r['teacher']}` | {r['env_id']} | {r['steps']:,} | {seen} | "
            f"{r['settings'].get('student_history', 1)} | "
            f"{r['settings'].get('student_obs_noise', 0)} | {r['runs'][0]['student_params']:,} | "
            f"{np.mean([x['student_mean_return'] for x in r['runs']]):.1f} | "
            f"{r['mean_score']:.3f} / {r['min_score']:.3f} | {np.mean([x['agreement'] for x in r['runs']]):.3f} |"
        )
    data = {"args": {"cases": cases, "seeds": seeds, "episodes": episodes}, "results": results}
    return data, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
