"""Batch-1 action latency of teacher and student on every runtime kd_rl offers.

For each model: an eager Keras 3 call, a ``tf.function``, the TFLite float32
export in the LiteRT interpreter (alone, and through `TFLitePolicy`), the
TFLite int8 export through `TFLitePolicy`, and the NumPy forward pass, each
timed over many single calls (median and p99, microseconds), all in one
process so the ratios are fair.

The teacher, student width and repeats: the row ``latency`` of ``experiments.yml``.

    python benchmarks/run.py latency [--repeats 3000] [--teacher CartPole-v1-dqn]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import quiet_tensorflow, tflite_interpreter_fn

quiet_tensorflow()


def runtimes(model, env_id: str, workdir: Path) -> dict:
    import tensorflow as tf

    from kd_rl.export import export_model
    from kd_rl.policies import NumpyPolicy, TFLitePolicy, observation_dim

    dim = observation_dim(model)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, dim], tf.float32)])
    tfl = TFLitePolicy(export_model(model, "tflite", workdir / "m.tflite"))
    tfl8 = TFLitePolicy(export_model(model, "tflite-int8", workdir / "m8.tflite", env_id=env_id))
    npy = NumpyPolicy.load(export_model(model, "numpy", workdir / "m.npz"))
    return {
        "keras eager": lambda x: model(x).numpy(),
        "tf.function": lambda x: fn(x).numpy(),
        "LiteRT float32 (interpreter)": tflite_interpreter_fn(tfl),
        "LiteRT float32 (TFLitePolicy)": tfl,
        "LiteRT int8 (TFLitePolicy)": tfl8,
        "NumPy": npy,
    }


def measure(repeats: int, teacher: str, env: str, student_hidden: int) -> tuple[dict, str]:
    """Median and p99 batch-1 latency of the teacher and an untrained student on every runtime.

    Args:
        repeats: timed calls per measurement.
        teacher: the zoo teacher.
        env: its environment (the int8 export's calibration states).
        student_hidden: hidden units of the student.
    """
    from kd_rl.evaluate import inference_latency_us
    from kd_rl.models import StudentModel, load_policy

    args = {"repeats": repeats, "teacher": teacher, "env": env, "student_hidden": student_hidden}
    teacher = load_policy(teacher)
    student = StudentModel(teacher.num_actions, hidden_units=student_hidden, observation_dim=teacher.observation_dim)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in (("teacher", teacher), ("student", student)):
            results[name] = {"params": model.count_params()}
            for runtime, fn in runtimes(model, env, Path(tmp)).items():
                results[name][runtime] = inference_latency_us(fn, model.observation_dim, repeats, warmup=200)
    rows = ["| model | params | runtime | median µs | p99 µs | speed-up vs eager |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        eager = r["keras eager"]["median_us"]
        for runtime, t in r.items():
            if runtime == "params":
                continue
            rows.append(
                f"| {name} | {r['params']:,} | {runtime} | {t['median_us']:.2f} | {t['p99_us']:.2f} | "
                f"{eager / t['median_us']:.0f}× |"
            )
    s = results["student"]
    fastest = min((v["median_us"], k) for k, v in s.items() if k not in ("params", "keras eager", "tf.function"))
    summary = {
        "student_fastest_runtime": fastest[1],
        "student_fastest_median_us": fastest[0],
        "student_speedup_vs_eager": s["keras eager"]["median_us"] / fastest[0],
        "target_met": fastest[0] <= 5.0 and s["keras eager"]["median_us"] / fastest[0] >= 100,
    }
    table = "\n".join(rows) + (
        f"\n\nStudent's fastest path: {fastest[1]}, {fastest[0]:.2f} µs median, "
        f"{summary['student_speedup_vs_eager']:.0f}× faster than an eager Keras call "
        f"(target: <= 5 µs and >= 100×: {'met' if summary['target_met'] else 'NOT met'})."
    )
    return {"args": args, "results": results, "summary": summary}, table


if __name__ == "__main__":
    from run import main

    main(script=__file__)
