"""Batch-1 action latency of teacher and student on every runtime kd_rl offers.

For each model: an eager Keras 3 call, a ``tf.function``, the TFLite float32
export in the LiteRT interpreter (alone, and through `TFLitePolicy`), the
TFLite int8 export through `TFLitePolicy`, the ONNX export in ONNX Runtime
(alone, and through `OnnxPolicy`), the NumPy forward pass, and the plain-C
export called from Python (`kd_rl.codegen.CPolicy`, through ``ctypes``), each
timed over many single calls from Python (median and p99, microseconds), all
in one process so the ratios are fair. The plain-C export is also timed in C
(``kd_rl_act``, the action, in a C loop of many calls: the median and p99 over
blocks of calls of the mean time per call), where Python's call overhead does
not hide it.

The teacher, student width and repeats: the row ``latency`` of ``experiments.yml``.

    python benchmarks/run.py latency [--repeats 3000] [--teacher CartPole-v1-dqn]
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from _common import quiet_tensorflow, tflite_interpreter_fn

quiet_tensorflow()


def runtimes(model, env_id: str, workdir: Path) -> dict:
    import tensorflow as tf

    from kd_rl.codegen import CPolicy
    from kd_rl.export import export_model
    from kd_rl.policies import NumpyPolicy, OnnxPolicy, TFLitePolicy, observation_dim

    dim = observation_dim(model)
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([1, dim], tf.float32)])
    tfl = TFLitePolicy(export_model(model, "tflite", workdir / "m.tflite"))
    tfl8 = TFLitePolicy(export_model(model, "tflite-int8", workdir / "m8.tflite", env_id=env_id))
    onnx = OnnxPolicy(export_model(model, "onnx", workdir / "m.onnx"))
    npy = NumpyPolicy.load(export_model(model, "numpy", workdir / "m.npz"))
    c = CPolicy(export_model(model, "c", workdir / "c"))
    session, name = onnx.session, onnx.session.get_inputs()[0].name
    return {
        "keras eager": lambda x: model(x).numpy(),
        "tf.function": lambda x: fn(x).numpy(),
        "LiteRT float32 (interpreter)": tflite_interpreter_fn(tfl),
        "LiteRT float32 (TFLitePolicy)": tfl,
        "LiteRT int8 (TFLitePolicy)": tfl8,
        "ONNX Runtime (session.run)": lambda x: session.run(None, {name: x})[0],
        "ONNX Runtime (OnnxPolicy)": onnx,
        "NumPy": npy,
        "C via ctypes (CPolicy)": c,
    }


# Times kd_rl_act (discrete) or kd_rl_policy (continuous) in C: BLOCKS blocks of CALLS calls each, over
# 1,024 fixed pseudo-random observations in [-1, 1); prints each block's mean nanoseconds per call.
_C_TIMER = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "kd_rl_policy.h"

static float observations[1024][KD_RL_OBSERVATION_DIM];

int main(int argc, char **argv) {
    int blocks = atoi(argv[1]), calls = atoi(argv[2]);
    unsigned state = 12345u;
    for (int i = 0; i < 1024; ++i)
        for (int j = 0; j < KD_RL_OBSERVATION_DIM; ++j) {
            state = state * 1103515245u + 12345u;
            observations[i][j] = (float)((state >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
    volatile float sink = 0.0f;
    for (int b = -1; b < blocks; ++b) { /* block -1 warms the caches up */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int k = 0; k < calls; ++k) {
#if KD_RL_CONTINUOUS
            float action[KD_RL_OUTPUT_DIM];
            kd_rl_policy(observations[k & 1023], action);
            sink += action[0];
#else
            sink += (float)kd_rl_act(observations[k & 1023]);
#endif
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (b >= 0) printf("%.3f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / calls);
    }
    return sink == 12345.0f;
}
"""
C_FLAGS = ("-O3",)  # GCC 12 vectorises the layers fully at -O3 (at -O2: 2-4x slower, and variable)


def c_latency_us(folder: Path, blocks: int = 200, calls: int = 10_000) -> dict:
    """The plain-C export's action latency timed in C: median and p99 over blocks of the mean µs per call."""
    import numpy as np

    from kd_rl.codegen import compile_c

    (folder / "timer.c").write_text(_C_TIMER)
    program = compile_c([folder / "timer.c", folder / "kd_rl_policy.c"], folder / "timer", (*C_FLAGS, f"-I{folder}"))
    out = subprocess.run([str(program), str(blocks), str(calls)], capture_output=True, text=True, check=True).stdout
    per_call = np.array([float(v) for v in out.split()]) / 1e3
    return {
        "median_us": float(np.median(per_call)),
        "p99_us": float(np.percentile(per_call, 99)),
        "iqr_us": float(np.subtract(*np.percentile(per_call, [75, 25]))),
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
            for runtime, fn in runtimes(model, env, Path(tmp) / name).items():
                results[name][runtime] = inference_latency_us(fn, model.observation_dim, repeats, warmup=200)
            results[name][f"C, timed in C (cc {' '.join(C_FLAGS)})"] = c_latency_us(Path(tmp) / name / "c")
    rows = ["| model | params | runtime | median µs | p99 µs | speed-up vs eager |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        eager = r["keras eager"]["median_us"]
        for runtime, t in r.items():
            if runtime == "params":
                continue
            rows.append(
                f"| {name} | {r['params']:,} | {runtime} | {t['median_us']:.3g} | {t['p99_us']:.3g} | "
                f"{eager / t['median_us']:.0f}× |"
            )
    s = results["student"]
    in_c = next(k for k in s if k.startswith("C, timed in C"))
    # Like with like: the exported paths called from Python against the eager call from Python; the C loop apart.
    from_python = {k: v for k, v in s.items() if k not in ("params", "keras eager", "tf.function", in_c)}
    fastest = min((v["median_us"], k) for k, v in from_python.items())
    summary = {
        "student_fastest_runtime": fastest[1],
        "student_fastest_median_us": fastest[0],
        "student_speedup_vs_eager": s["keras eager"]["median_us"] / fastest[0],
        "target_met": fastest[0] <= 5.0 and s["keras eager"]["median_us"] / fastest[0] >= 100,
        "student_c_median_us": s[in_c]["median_us"],
        "c_target_met": s[in_c]["median_us"] < 0.2,
    }
    table = "\n".join(rows) + (
        f"\n\nStudent's fastest exported path called from Python: {fastest[1]}, {fastest[0]:.2f} µs median, "
        f"{summary['student_speedup_vs_eager']:.0f}× faster than an eager Keras call "
        f"(target: <= 5 µs and >= 100×: {'met' if summary['target_met'] else 'NOT met'}); from Python the call "
        f"itself costs more than so small a network. The plain-C action timed in C: {s[in_c]['median_us']:.3f} µs "
        f"median (target: < 0.2 µs: {'met' if summary['c_target_met'] else 'NOT met'})."
    )
    return {"args": args, "results": results, "summary": summary}, table


if __name__ == "__main__":
    from run import main

    main(script=__file__)
