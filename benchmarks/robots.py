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

``robots_memory`` (`memory`) does the same for recurrent students
(``student_recurrent``: a GRU or LSTM state carried through each episode), and
times each case's batch-1 LiteRT step beside memoryless and windowed students.
"""

from __future__ import annotations

import numpy as np
from _common import litert_step_us, quiet_tensorflow, timed_distill

quiet_tensorflow()


def _case_runs(cases: dict, seeds: list[int], episodes: int) -> tuple[dict, dict]:
    """One student per case and seed: ``(results, first)``, each case's summary and its first seed's student."""
    from kd_rl.models import load_policy

    results, first = {}, {}
    for case, (name, env_id, steps, settings) in cases.items():
        teacher = load_policy(name)
        runs = []
        for seed in seeds:
            student, m = timed_distill(teacher, env_id=env_id, steps=steps, seed=seed, eval_episodes=episodes,
                                       **settings)  # fmt: skip
            first.setdefault(case, student)
            runs.append(
                {key: m[key] for key in ("normalised_score", "student_mean_return", "teacher_mean_return",
                                         "random_mean_return", "agreement", "student_params", "total_seconds")}
            )  # fmt: skip
            print(case, seed, f"{m['student_mean_return']:.1f} ({m['normalised_score']:.3f})", flush=True)
        scores = [r["normalised_score"] for r in runs]
        results[case] = {"teacher": name, "env_id": env_id, "steps": steps, "settings": settings, "runs": runs,
                         "mean_score": float(np.mean(scores)), "min_score": float(np.min(scores))}  # fmt: skip
    return results, first


def views(cases: dict, seeds: list[int], episodes: int) -> tuple[dict, str]:
    """Each case's students, one per seed: their normalised scores, agreement and size.

    Args:
        cases: case name -> [zoo teacher, environment, labelled states, DistillConfig settings
            (``student_obs``, ``student_obs_noise``, ``hidden_units``, ...)].
        seeds: one student per case and seed.
        episodes: final evaluation episodes per run.
    """
    results, _ = _case_runs(cases, seeds, episodes)
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


def memory(cases: dict, seeds: list[int], episodes: int, compare: dict, repeats: int) -> tuple[dict, str]:
    """Recurrent students that see less, over seeds; then the batch-1 LiteRT step and file of each case's
    first student beside memoryless and windowed students of the same task, in one stretch.

    Args:
        cases: case name -> [zoo teacher, environment, labelled states, DistillConfig settings
            (``student_recurrent``, ``student_obs``, ...)].
        seeds: one student per case and seed.
        episodes: final evaluation episodes per run.
        compare: case name -> {label: StudentModel settings}: untrained students of the same task
            timed beside it (time and size depend on the shapes only).
        repeats: timed calls per latency measurement.
    """
    import tempfile
    from pathlib import Path

    from kd_rl.export import export_model
    from kd_rl.models import StudentModel

    results, first = _case_runs(cases, seeds, episodes)
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:  # latencies last, in one stretch
        for case, student in first.items():
            models = {"this student": student}
            for label, kwargs in compare.get(case, {}).items():
                models[label] = StudentModel(**kwargs)
            timings[case] = {}
            for label, model in models.items():
                path = export_model(model, "tflite", Path(tmp) / f"{len(timings)}-{len(timings[case])}.tflite")
                timings[case][label] = {"params": int(model.count_params()), "tflite_bytes": path.stat().st_size,
                                        "latency": litert_step_us(path, repeats)}  # fmt: skip
    rows = [
        f"{len(seeds)} seeds per case, {episodes} final-evaluation episodes per run; student-driven collection, "
        "the teacher labelling from the whole observation; the noisy students play with their noise.\n",
        "| case | environment | labelled states | student sees | cell (units) | noise σ | student params | "
        "return (mean over seeds) | normalised score: mean / min | agreement (mean) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, r in results.items():
        s = r["settings"]
        rows.append(
            f"| {case} | {r['env_id']} | {r['steps']:,} | {s.get('student_obs') or 'all'} | "
            f"{s.get('student_cell', 'gru').upper()} ({s.get('student_recurrent', 0)}) | "
            f"{s.get('student_obs_noise', 0)} | {r['runs'][0]['student_params']:,} | "
            f"{np.mean([x['student_mean_return'] for x in r['runs']]):.1f} | "
            f"{r['mean_score']:.3f} / {r['min_score']:.3f} | {np.mean([x['agreement'] for x in r['runs']]):.3f} |"
        )
    rows += [
        "\nBatch-1 LiteRT step (the inputs set, one invoke, the outputs read; a recurrent student's state is one "
        "more input and output), one thread, each case's first student beside untrained students of the same "
        "shapes:\n",
        "| case | student | params | TFLite bytes | median µs | p90 µs |",
        "|---|---|---|---|---|---|",
    ]
    for case, models in timings.items():
        for label, t in models.items():
            rows.append(
                f"| {case} | {label} | {t['params']:,} | {t['tflite_bytes']:,} | {t['latency']['median_us']:.1f} | "
                f"{t['latency']['p90_us']:.1f} |"
            )
    data = {"args": {"cases": cases, "seeds": seeds, "episodes": episodes, "compare": compare, "repeats": repeats},
            "results": results, "timings": timings}  # fmt: skip
    return data, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
