"""The compression sweep: how small can a distilled student be?

Students of 100, 50, 25, 12, 6 and 3 hidden units are distilled (default
settings: student-driven collection, KL at T = 0.01) from the large CartPole-v1
teacher (10,000 labelled states) and from the LunarLander-v3 teacher (50,000),
3 seeds each. For every size: parameters, file bytes (float32 TFLite, int8
TFLite, NumPy ``.npz``), batch-1 latency of the float32 TFLite model in the
LiteRT interpreter and of ``NumpyPolicy`` (median µs of the first seed's
student, all timed in one process at the end), and the return and normalised
score ``(student − random) / (teacher − random)`` over 100 evaluation
episodes per seed.

Teachers, budgets, sizes and seeds: the row ``compression`` of ``experiments.yml``.

    python benchmarks/run.py compression [--envs CartPole-v1 LunarLander-v3] [--sizes 100 50 25 12 6 3]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from _common import check_choices, quiet_tensorflow, tflite_interpreter_fn, timed_distill

quiet_tensorflow()


def _sizes_and_latency(model, env_id: str, workdir: Path, repeats: int) -> dict:
    from kd_rl.evaluate import inference_latency_us
    from kd_rl.export import export_model
    from kd_rl.policies import NumpyPolicy, TFLitePolicy, observation_dim

    files = {
        "tflite": export_model(model, "tflite", workdir / "m.tflite"),
        "tflite-int8": export_model(model, "tflite-int8", workdir / "m8.tflite", env_id=env_id),
        "numpy": export_model(model, "numpy", workdir / "m.npz"),
    }
    dim = observation_dim(model)
    return {
        "bytes": {fmt: path.stat().st_size for fmt, path in files.items()},
        "tflite_latency": inference_latency_us(
            tflite_interpreter_fn(TFLitePolicy(files["tflite"])), dim, repeats, warmup=200
        ),
        "numpy_latency": inference_latency_us(NumpyPolicy.load(files["numpy"]), dim, repeats, warmup=200),
    }


def sweep(
    cases: dict[str, list],
    envs: list[str],
    sizes: list[int],
    seeds: list[int],
    episodes: int,
    repeats: int,
    max_steps: int | None = None,
) -> tuple[dict, str]:
    """Students of every size from each teacher: parameters, file bytes, latency, return and normalised score.

    Args:
        cases: environment -> ``[zoo teacher, labelled states per student]``.
        envs: the environments of ``cases`` to measure.
        sizes: hidden units of the students.
        seeds: one student per seed and size.
        episodes: final evaluation episodes per run.
        repeats: timed calls per latency measurement.
        max_steps: cap the labelled-state budgets (quick tries only).
    """
    from kd_rl.models import load_policy

    check_choices("envs", envs, cases)
    results, models = {}, {}
    for env_id in envs:
        teacher_name, steps = cases[env_id]
        steps = min(steps, max_steps or steps)
        teacher = load_policy(teacher_name)
        models[(env_id, "teacher")] = teacher
        results[env_id] = {"teacher": teacher_name, "labelled_states": steps, "sizes": {}}
        for hidden in sizes:
            runs = []
            for seed in seeds:
                student, m = timed_distill(
                    teacher, env_id=env_id, hidden_units=hidden, steps=steps, seed=seed, eval_episodes=episodes
                )
                runs.append(m)
                if seed == seeds[0]:
                    models[(env_id, hidden)] = student
                print(env_id, hidden, seed, f"{m['student_mean_return']:.1f} ({m['normalised_score']:.3f})", flush=True)
            results[env_id]["sizes"][hidden] = {"runs": runs}
        results[env_id]["teacher_params"] = runs[0]["teacher_params"]
        results[env_id]["teacher_mean_return"] = float(np.mean([r["teacher_mean_return"] for r in runs]))
        results[env_id]["random_mean_return"] = float(np.mean([r["random_mean_return"] for r in runs]))

    # Sizes and latencies last, in one quiet stretch, so every row is timed alike.
    with tempfile.TemporaryDirectory() as tmp:
        for (env_id, key), model in models.items():
            measured = _sizes_and_latency(model, env_id, Path(tmp), repeats)
            if key == "teacher":
                results[env_id]["teacher_files"] = measured
            else:
                results[env_id]["sizes"][key].update(measured)

    parts = []
    for env_id, r in results.items():
        t = r["teacher_files"]
        n_seeds = len(seeds)
        rows = [
            f"**{env_id}**: teacher `{r['teacher']}`, {r['teacher_params']:,} parameters, return "
            f"{r['teacher_mean_return']:.1f} (random policy {r['random_mean_return']:.1f}); "
            f"{r['labelled_states']:,} labelled states per student; {n_seeds} seeds per size.\n",
            "| hidden units | params | share of teacher | TFLite bytes | int8 bytes | .npz bytes | "
            f"LiteRT µs (median) | NumPy µs (median) | return (mean ± std, {n_seeds} seeds) | min seed | "
            f"normalised score (mean ± std, {n_seeds} seeds) | min seed |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| teacher | {r['teacher_params']:,} | 100% | {t['bytes']['tflite']:,} | {t['bytes']['tflite-int8']:,} | "
            f"{t['bytes']['numpy']:,} | {t['tflite_latency']['median_us']:.2f} | "
            f"{t['numpy_latency']['median_us']:.2f} | {r['teacher_mean_return']:.1f} | | 1 | |",
        ]
        for hidden, s in r["sizes"].items():
            returns = np.array([m["student_mean_return"] for m in s["runs"]])
            scores = np.array([m["normalised_score"] for m in s["runs"]], dtype=float)
            params = s["runs"][0]["student_params"]
            s["mean_return"], s["std_return"] = float(returns.mean()), float(returns.std())
            s["mean_normalised_score"], s["std_normalised_score"] = float(scores.mean()), float(scores.std())
            rows.append(
                f"| {hidden} | {params:,} | {100 * params / r['teacher_params']:.2f}% | {s['bytes']['tflite']:,} | "
                f"{s['bytes']['tflite-int8']:,} | {s['bytes']['numpy']:,} | {s['tflite_latency']['median_us']:.2f} | "
                f"{s['numpy_latency']['median_us']:.2f} | {returns.mean():.1f} ± {returns.std():.1f} | "
                f"{returns.min():.1f} | {scores.mean():.3f} ± {scores.std():.3f} | {scores.min():.3f} |"
            )
        keep = [h for h, s in r["sizes"].items() if s["mean_normalised_score"] >= 0.95]
        smallest = min(keep, key=lambda h: r["sizes"][h]["runs"][0]["student_params"]) if keep else None
        rows.append(
            "\n"
            + (
                f"Smallest student with a normalised score >= 0.95 (mean over {n_seeds} seeds): {smallest} units, "
                f"{r['sizes'][smallest]['runs'][0]['student_params']:,} parameters "
                f"({r['teacher_params'] / r['sizes'][smallest]['runs'][0]['student_params']:.0f}x fewer)."
                if smallest is not None
                else f"No student size reached a normalised score of 0.95 (mean over {n_seeds} seeds)."
            )
        )
        parts.append("\n".join(rows))
    args = {
        "envs": envs,
        "sizes": sizes,
        "seeds": seeds,
        "episodes": episodes,
        "repeats": repeats,
        "max_steps": max_steps,
    }
    return {"args": args, "results": results}, "\n\n".join(parts)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
