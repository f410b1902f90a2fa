"""The compression sweep: how small can a distilled student be?

Students of 100, 50, 25, 12, 6 and 3 hidden units are distilled (default
settings: student-driven collection, KL at T = 0.01) from the large CartPole-v1
teacher (10,000 labelled states) and from the LunarLander-v3 teacher (50,000),
three seeds each. For every size: parameters, file bytes (float32 TFLite, int8
TFLite, NumPy ``.npz``), batch-1 latency of the float32 TFLite interpreter and
of ``NumpyPolicy`` (median µs of the seed-0 student, all timed in one process
at the end), and the return over 100 evaluation episodes per seed.

    python benchmarks/compression.py [--envs CartPole-v1 LunarLander-v3] [--sizes 100 50 25 12 6 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import quiet_tensorflow, tflite_interpreter_fn, timed_distill, write_results

quiet_tensorflow()

CASES = {"CartPole-v1": ("CartPole-v1-dqn-large", 10_000), "LunarLander-v3": ("LunarLander-v3-dqn", 50_000)}


def _sizes_and_latency(model, env_id: str, workdir: Path, repeats: int) -> dict:
    from kd_rl.evaluate import inference_latency_us
    from kd_rl.export import NumpyPolicy, TFLitePolicy, export_model

    files = {
        "tflite": export_model(model, "tflite", workdir / "m.tflite"),
        "tflite-int8": export_model(model, "tflite-int8", workdir / "m8.tflite", env_id=env_id),
        "numpy": export_model(model, "numpy", workdir / "m.npz"),
    }
    dim = model.observation_dim
    return {
        "bytes": {fmt: path.stat().st_size for fmt, path in files.items()},
        "tflite_latency": inference_latency_us(
            tflite_interpreter_fn(TFLitePolicy(files["tflite"])), dim, repeats, warmup=200
        ),
        "numpy_latency": inference_latency_us(NumpyPolicy.load(files["numpy"]), dim, repeats, warmup=200),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 50, 25, 12, 6, 3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3000, help="timed calls per latency measurement")
    args = parser.parse_args()

    from kd_rl.models import load_policy

    results, models = {}, {}
    for env_id in args.envs:
        teacher_name, steps = CASES[env_id]
        teacher = load_policy(teacher_name)
        models[(env_id, "teacher")] = teacher
        results[env_id] = {"teacher": teacher_name, "labelled_states": steps, "sizes": {}}
        for hidden in args.sizes:
            runs = []
            for seed in args.seeds:
                student, m = timed_distill(
                    teacher, env_id=env_id, hidden_units=hidden, steps=steps, seed=seed, eval_episodes=args.episodes
                )
                runs.append(m)
                if seed == args.seeds[0]:
                    models[(env_id, hidden)] = student
                print(env_id, hidden, seed, f"{m['student_mean_return']:.1f}", flush=True)
            results[env_id]["sizes"][hidden] = {"runs": runs}
        results[env_id]["teacher_params"] = runs[0]["teacher_params"]
        results[env_id]["teacher_mean_return"] = float(np.mean([r["teacher_mean_return"] for r in runs]))

    # Sizes and latencies last, in one quiet stretch, so every row is timed alike.
    with tempfile.TemporaryDirectory() as tmp:
        for (env_id, key), model in models.items():
            measured = _sizes_and_latency(model, env_id, Path(tmp), args.repeats)
            if key == "teacher":
                results[env_id]["teacher_files"] = measured
            else:
                results[env_id]["sizes"][key].update(measured)

    parts = []
    for env_id, r in results.items():
        t = r["teacher_files"]
        rows = [
            f"**{env_id}**: teacher `{r['teacher']}`, {r['teacher_params']:,} parameters, return "
            f"{r['teacher_mean_return']:.1f}; {r['labelled_states']:,} labelled states per student.\n",
            "| hidden units | params | share of teacher | TFLite bytes | int8 bytes | .npz bytes | "
            "TFLite µs (median) | NumPy µs (median) | return (mean ± std over seeds) | min seed | "
            "ratio to teacher |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| teacher | {r['teacher_params']:,} | 100% | {t['bytes']['tflite']:,} | {t['bytes']['tflite-int8']:,} | "
            f"{t['bytes']['numpy']:,} | {t['tflite_latency']['median_us']:.2f} | "
            f"{t['numpy_latency']['median_us']:.2f} | {r['teacher_mean_return']:.1f} | | 100% |",
        ]
        for hidden, s in r["sizes"].items():
            returns = np.array([m["student_mean_return"] for m in s["runs"]])
            params = s["runs"][0]["student_params"]
            s["mean_return"], s["std_return"] = float(returns.mean()), float(returns.std())
            s["return_ratio"] = s["mean_return"] / r["teacher_mean_return"]
            rows.append(
                f"| {hidden} | {params:,} | {100 * params / r['teacher_params']:.2f}% | {s['bytes']['tflite']:,} | "
                f"{s['bytes']['tflite-int8']:,} | {s['bytes']['numpy']:,} | {s['tflite_latency']['median_us']:.2f} | "
                f"{s['numpy_latency']['median_us']:.2f} | {returns.mean():.1f} ± {returns.std():.1f} | "
                f"{returns.min():.1f} | {100 * s['return_ratio']:.1f}% |"
            )
        keep = [h for h, s in r["sizes"].items() if s["return_ratio"] >= 0.95]
        smallest = min(keep, key=lambda h: r["sizes"][h]["runs"][0]["student_params"]) if keep else None
        rows.append(
            "\n"
            + (
                f"Smallest student keeping >= 95% of the teacher's return (mean over seeds): {smallest} units, "
                f"{r['sizes'][smallest]['runs'][0]['student_params']:,} parameters "
                f"({r['teacher_params'] / r['sizes'][smallest]['runs'][0]['student_params']:.0f}x fewer)."
                if smallest is not None
                else "No student size kept 95% of the teacher's return."
            )
        )
        parts.append("\n".join(rows))
    write_results("compression", {"args": vars(args), "results": results}, "\n\n".join(parts))


if __name__ == "__main__":
    main()
