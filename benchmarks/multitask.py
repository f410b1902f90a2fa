"""Multi-task distillation: four DQN teachers into one small student (Rusu et al. 2016).

1. **One student, four tasks**: CartPole-v1, Acrobot-v1, MountainCar-v0 and
   LunarLander-v3 (the zoo's DQN teachers) distilled into one
   `kd_rl.multitask.MultiTaskStudent` (per-task adapters of ``adapter``
   units, a shared trunk of ``trunk`` units, per-task heads) with at most
   1/10 of the teachers' summed parameters; ``steps`` labelled states per
   task, 3 seeds. Per task: normalised score ``(student − random) / (teacher −
   random)`` over 100 episodes (all three policies on the same episodes), and
   the geometric mean over tasks (Rusu et al.: 0.893 on ten Atari games).
2. **Against four single-task students** with the same total parameter count
   (each a two-layer ``StudentModel`` of about a quarter of the multi-task
   student's parameters) and the same total labelled states (``steps``
   each), side by side.
3. **Transfer**: a student for the last task initialised from a multi-task
   student of the other three (its trunk), against one from scratch (same
   architecture): labelled states until the new task's curve first reaches
   95% of the normalised score (curve points every ``eval_every`` states, 10
   episodes each, scored against the final evaluation's teacher and random
   returns).

The tasks, student and budgets: the row ``multitask`` of ``experiments.yml``.

    python benchmarks/run.py multitask [--steps 30000] [--seeds 0 1 2]
"""

from __future__ import annotations

import math

import numpy as np
from _common import SUMMARY_HEADER, quiet_tensorflow, summarise_runs, summary_row

quiet_tensorflow()


def _two_layer_width(obs_dim: int, outputs: int, budget: int) -> int:
    """The width h of a [h, h] MLP with at most ``budget`` parameters."""
    # (obs + 1) h + (h + 1) h + (h + 1) outputs = h² + (obs + 2 + outputs) h + outputs
    b = obs_dim + 2 + outputs
    return max(1, int((-b + math.sqrt(b * b + 4 * (budget - outputs))) / 2))


def _first_reaching(curve_path, env_id: str, teacher_return: float, random_return: float, level: float = 0.95):
    from _common import curve_points

    for steps, value in curve_points(curve_path, env_id):
        if (value - random_return) / (teacher_return - random_return) >= level:
            return steps
    return None


def compare(
    tasks: dict[str, str],
    steps: int,
    trunk: list[int],
    adapter: int,
    seeds: list[int],
    episodes: int,
    eval_every: int,
    skip_transfer: bool = False,
) -> tuple[dict, str]:
    """One multi-task student against single-task students of the same size, then transfer to the last task.

    Args:
        tasks: environment -> its zoo teacher; the last is the transfer study's new task.
        steps: labelled states per task.
        trunk: hidden units of the shared trunk.
        adapter: units of each task's adapter.
        seeds: one student of each kind per seed.
        episodes: final evaluation episodes per task.
        eval_every: curve spacing of the transfer study.
        skip_transfer: leave the transfer study out.
    """
    import tempfile
    from pathlib import Path

    from _common import timed_distill

    from kd_rl.models import count_params, load_policy
    from kd_rl.multitask import MultiTaskConfig, MultiTaskStudent, distill_multitask, geometric_mean, task_spec

    env_ids = list(tasks)
    teachers = [load_policy(tasks[e]) for e in env_ids]
    teacher_params = sum(count_params(t) for t in teachers)
    config = dict(trunk_units=tuple(trunk), adapter_units=adapter, steps=steps, eval_every=0)
    probe = MultiTaskStudent([task_spec(e, t) for e, t in zip(env_ids, teachers)], trunk, adapter)
    student_params = count_params(probe)
    print(f"teachers {teacher_params:,} params, multi-task student {student_params:,}", flush=True)

    multi, single = [], []
    for seed in seeds:
        _, m = distill_multitask(
            teachers, MultiTaskConfig(env_ids=tuple(env_ids), seed=seed, eval_episodes=episodes, **config),
            progress=False,
        )  # fmt: skip
        m["seed"] = seed
        multi.append(m)
        print("multi", seed, f"{m['geometric_mean_score']:.3f}", [f"{t['normalised_score']:.3f}" for t in m["tasks"]])
        # Four single-task students sharing the multi-task student's parameter budget.
        scores = {}
        for env_id, teacher in zip(env_ids, teachers):
            spec = task_spec(env_id, teacher)
            outputs = spec.get("num_actions") or 2 * len(spec["action_low"])
            h = _two_layer_width(spec["obs_dim"], outputs, student_params // len(env_ids))
            _, s = timed_distill(
                teacher, env_id=env_id, hidden_units=(h, h), steps=steps, seed=seed, eval_episodes=episodes
            )
            scores[env_id] = {"normalised_score": s["normalised_score"], "params": s["student_params"], "hidden": h}
        single.append(
            {
                "seed": seed,
                "tasks": scores,
                "geometric_mean_score": geometric_mean([v["normalised_score"] for v in scores.values()]),
                "student_params": sum(v["params"] for v in scores.values()),
            }
        )
        print("single", seed, f"{single[-1]['geometric_mean_score']:.3f}", flush=True)

    transfer = []
    if not skip_transfer:
        new_env, old_envs = env_ids[-1], env_ids[:-1]
        new_teacher = teachers[-1]
        with tempfile.TemporaryDirectory() as tmp:
            for seed in seeds:
                row = {"seed": seed}
                base, _ = distill_multitask(
                    teachers[:-1], MultiTaskConfig(env_ids=tuple(old_envs), seed=seed, eval_episodes=10, **config),
                    progress=False,
                )  # fmt: skip
                new_task = [task_spec(new_env, new_teacher)]
                starts = {
                    "from the multi-task trunk": base.with_tasks(new_task),
                    "from scratch": MultiTaskStudent([*base.tasks, *new_task], trunk, adapter),
                }
                for label, student in starts.items():
                    run = Path(tmp) / f"{seed}-{label.replace(' ', '-')}"
                    one = dict(config, eval_every=eval_every, eval_episodes=episodes)
                    _, m = distill_multitask(
                        [new_teacher], MultiTaskConfig(env_ids=(new_env,), seed=seed, **one),
                        out_dir=run, student=student, progress=False,
                    )  # fmt: skip
                    t = m["tasks"][0]
                    reached = _first_reaching(
                        run / "curve.csv", new_env, t["teacher_mean_return"], t["random_mean_return"]
                    )
                    row[label] = {"states_to_95": reached, "final_score": t["normalised_score"]}
                transfer.append(row)
                print("transfer", seed, row, flush=True)

    rows = [
        f"Teachers: {', '.join(f'`{tasks[e]}`' for e in env_ids)}; {teacher_params:,} parameters in all. "
        f"Multi-task student: adapters of {adapter} units, trunk {trunk}, "
        f"{student_params:,} parameters (1/{teacher_params / student_params:.1f} of the teachers'); "
        f"{steps:,} labelled states per task, student-driven, KL at each teacher's default T; "
        f"{len(seeds)} seeds, {episodes} evaluation episodes per task.\n",
        "| task | multi-task student: normalised score (mean ± std) | worst seed | "
        "single-task students: normalised score (mean ± std) | single-task width |",
        "|---|---|---|---|---|",
    ]
    for k, env_id in enumerate(env_ids):
        ms = np.array([m["tasks"][k]["normalised_score"] for m in multi], float)
        ss = np.array([s["tasks"][env_id]["normalised_score"] for s in single], float)
        rows.append(
            f"| {env_id} | {ms.mean():.3f} ± {ms.std():.3f} | {ms.min():.3f} | {ss.mean():.3f} ± {ss.std():.3f} | "
            f"[{single[0]['tasks'][env_id]['hidden']}] × 2 |"
        )
    rows += [
        f"\nParameters: multi-task student {student_params:,}; four single-task students "
        f"{single[0]['student_params']:,} in all.\n",
        SUMMARY_HEADER,
        summary_row("multi-task: geometric mean score", summarise_runs(multi, "geometric_mean_score")),
        summary_row("multi-task: worst task's score", summarise_runs(multi, "min_score")),
        summary_row("single-task students: geometric mean score", summarise_runs(single, "geometric_mean_score")),
    ]
    if transfer:
        rows += [
            f"\nTransfer to {env_ids[-1]} (labelled states until the curve first reaches 95% of the normalised "
            f"score; curve every {eval_every:,} states, 10 episodes; — = not within {steps:,}):\n",
            "| seed | from the multi-task trunk | from scratch | final score (trunk / scratch) |",
            "|---|---|---|---|",
        ]
        for row in transfer:
            a, b = row["from the multi-task trunk"], row["from scratch"]
            rows.append(
                f"| {row['seed']} | {a['states_to_95'] or '—'} | {b['states_to_95'] or '—'} | "
                f"{a['final_score']:.3f} / {b['final_score']:.3f} |"
            )
    args = {
        "steps": steps,
        "trunk": trunk,
        "adapter": adapter,
        "seeds": seeds,
        "episodes": episodes,
        "eval_every": eval_every,
        "skip_transfer": skip_transfer,
    }
    data = {"args": args, "multi": multi, "single": single, "transfer": transfer, "teacher_params": teacher_params}
    return data, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
