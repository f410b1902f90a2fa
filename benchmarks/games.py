"""Rusu et al. (2016) in miniature: MinAtar DQN teachers distilled into students 4x, 15x and 27x smaller.

Rusu et al. distilled 1.7M-parameter Atari DQNs into students of a quarter,
a fifteenth and a twenty-seventh of their parameters, which kept 108%, 102%
and 84% of the teachers' scores (geometric mean over 10 games, KL at
τ = 0.01). Here each MinAtar teacher (Young & Tian's network: one 16-filter
3x3 convolution and 128 units) is distilled into three convolutional students
of about the same shares, with kd_rl's defaults otherwise (student-driven
collection, KL at T = 0.01), for every seed. Each student is scored over the
final evaluation's episodes as ``(student − random) / (teacher − random)``;
a size's summary is the geometric mean over games of the per-game mean
score. At one size the KL is compared with NLL on the teacher's greedy action
and MSE on the Q-values, as Rusu did. Last, the batch-1 LiteRT action of the
teacher and of each size's first student is timed, all in one stretch.

Teachers, sizes, budgets and seeds: the row ``games_rusu`` of ``experiments.yml``.

    python benchmarks/run.py games_rusu [--games MinAtar/Breakout-v1] [--seeds 0 1 2]
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import check_choices, quiet_tensorflow, timed_distill

quiet_tensorflow()


def litert_latency_us(path: Path, repeats: int) -> dict:
    """Median and percentiles of one batch-1 LiteRT invoke of the ``.tflite`` at ``path`` (a zero frame)."""
    from kd_rl.policies import TFLitePolicy

    policy = TFLitePolicy(path)
    interpreter, index = policy.interpreter, policy._input["index"]
    x = np.zeros((1, *policy.observation_shape), np.float32)
    times = []
    for i in range(repeats + 200):
        start = time.perf_counter()
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        interpreter.get_tensor(policy._output["index"])
        if i >= 200:  # the first calls warm the caches
            times.append((time.perf_counter() - start) * 1e6)
    return {"median_us": float(np.median(times)), "p90_us": float(np.percentile(times, 90)), "calls": repeats}


def _geometric_mean(values) -> float:
    values = [max(float(v), 0.0) for v in values]
    return 0.0 if min(values) == 0.0 else float(math.exp(np.mean(np.log(values))))


def rusu(
    teachers: dict[str, str],
    sizes: dict[str, list],
    games: list[str],
    seeds: list[int],
    steps: int,
    episodes: int,
    losses_at: str,
    losses: list[str],
    repeats: int,
    max_steps: int | None = None,
) -> tuple[dict, str]:
    """Students of each size from each game's teacher, the losses at one size, and batch-1 LiteRT latency.

    Args:
        teachers: game id -> teacher (a zoo name or a ``.keras`` path).
        sizes: size name -> ``[conv_layers, hidden_units]`` of the student.
        games: the games of ``teachers`` to measure.
        seeds: one student per seed, size and game.
        steps: labelled states per student.
        episodes: final evaluation episodes per run.
        losses_at: the size at which KL, NLL and MSE are compared.
        losses: the losses compared at ``losses_at`` (KL is the sizes' own runs).
        repeats: timed calls per latency measurement.
        max_steps: cap the labelled-state budget (quick tries only).
    """
    from kd_rl.export import export_model
    from kd_rl.models import load_policy

    check_choices("games", games, teachers)
    check_choices("losses_at", [losses_at], sizes)
    steps = min(steps, max_steps or steps)
    results, first = {}, {}
    for game in games:
        teacher = load_policy(teachers[game])
        first[(game, "teacher")] = teacher
        entry = {"teacher": teachers[game], "teacher_params": teacher.count_params(), "sizes": {}, "losses": {}}
        for name, (conv, hidden) in sizes.items():
            for loss in ["kl", *(losses if name == losses_at else [])]:
                runs = []
                for seed in seeds:
                    student, m = timed_distill(
                        teacher, env_id=game, conv_layers=conv, hidden_units=hidden, steps=steps, seed=seed,
                        eval_episodes=episodes, loss=loss,
                    )  # fmt: skip
                    runs.append(m)
                    if seed == seeds[0] and loss == "kl":
                        first[(game, name)] = student
                    print(game, name, loss, seed, f"{m['student_mean_return']:.2f} ({m['normalised_score']:.3f})",
                          flush=True)  # fmt: skip
                scores = [float(m["normalised_score"]) for m in runs]
                summary = {
                    "runs": runs,
                    "params": runs[0]["student_params"],
                    "share": runs[0]["student_params"] / entry["teacher_params"],
                    "mean_score": float(np.mean(scores)),
                    "min_score": float(np.min(scores)),
                    "mean_return": float(np.mean([m["student_mean_return"] for m in runs])),
                }
                (entry["sizes"] if loss == "kl" else entry["losses"])[name if loss == "kl" else loss] = summary
        entry["losses"]["kl"] = entry["sizes"][losses_at]
        entry["teacher_mean_return"] = float(np.mean([m["teacher_mean_return"] for m in runs]))
        entry["random_mean_return"] = float(np.mean([m["random_mean_return"] for m in runs]))
        results[game] = entry

    with tempfile.TemporaryDirectory() as tmp:  # latencies last, in one stretch
        for (game, name), model in first.items():
            path = export_model(model, "tflite", Path(tmp) / f"{abs(hash((game, name)))}.tflite")
            measured = {"latency": litert_latency_us(path, repeats), "tflite_bytes": path.stat().st_size}
            if name == "teacher":
                results[game]["teacher_files"] = measured
            else:
                results[game]["sizes"][name].update(measured)

    summary = {name: _geometric_mean([results[g]["sizes"][name]["mean_score"] for g in games]) for name in sizes}
    loss_summary = {
        loss: _geometric_mean([results[g]["losses"][loss]["mean_score"] for g in games]) for loss in ["kl", *losses]
    }
    n = len(seeds)
    rows = [
        f"{steps:,} labelled states per student, {n} seeds per size, {episodes} final-evaluation episodes per run; "
        "student-driven collection, KL at T = 0.01.\n",
        "| game | teacher params | teacher return | random | LiteRT µs (teacher) | "
        + " | ".join(f"{name}: params (share), score mean / min, LiteRT µs" for name in sizes)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(sizes),
    ]
    for game, r in results.items():
        cells = [
            f"{s['params']:,} ({100 * s['share']:.1f}%), {s['mean_score']:.3f} / {s['min_score']:.3f}, "
            f"{s['latency']['median_us']:.1f}"
            for s in r["sizes"].values()
        ]
        rows.append(
            f"| {game} | {r['teacher_params']:,} | {r['teacher_mean_return']:.2f} | {r['random_mean_return']:.2f} | "
            f"{r['teacher_files']['latency']['median_us']:.1f} | " + " | ".join(cells) + " |"
        )
    rows.append(
        f"\nGeometric mean over {len(games)} game(s) of the mean normalised score: "
        + "; ".join(f"{name} {value:.3f}" for name, value in summary.items())
        + " (Rusu et al.: 1.083, 1.017 and 0.839 at 1/4, 1/15 and 1/27)."
    )
    rows.append(
        f"\nLosses at {losses_at} ({n} seeds; geometric mean of the mean score): "
        + "; ".join(f"{loss} {value:.3f}" for loss, value in loss_summary.items())
        + "."
    )
    args = {
        "games": games, "sizes": sizes, "seeds": seeds, "steps": steps, "episodes": episodes,
        "losses_at": losses_at, "losses": losses, "repeats": repeats, "max_steps": max_steps,
    }  # fmt: skip
    data = {"args": args, "results": results, "geometric_mean": summary, "losses_geometric_mean": loss_summary}
    return data, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
