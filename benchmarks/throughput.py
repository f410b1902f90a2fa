"""Distillation throughput of ``make_distill_step`` (samples per second).

Batches of 64, 256 and 1024 observations with stored teacher logits (as in the
live loop), with and without XLA (``jit_compile=True``), and with one update
per call or a stack of updates per call (``[steps, batch, obs_dim]``, what the
live loop passes: ``updates_per_round`` = 100 batches per call). Median, min
and max over timed rounds, all measured in one run.

The teacher, batch sizes, stack and rounds: the row ``throughput`` of ``experiments.yml``.

    python benchmarks/run.py throughput [--rounds 7] [--samples 400000]
"""

from __future__ import annotations

import time

import numpy as np
from _common import quiet_tensorflow

quiet_tensorflow()


def measure(rounds: int, samples: int, stack: int, teacher: str, batches: list[int]) -> tuple[dict, str]:
    """Samples per second of the distillation step per batch size, with and without XLA, one or a stack per call.

    Args:
        rounds: timed rounds per setting.
        samples: samples per timed round.
        stack: updates per call in the stacked form.
        teacher: the zoo teacher whose outputs are the targets.
        batches: batch sizes; the target is judged at the largest.
    """
    import keras
    import tensorflow as tf

    from kd_rl.distill import make_distill_step
    from kd_rl.models import StudentModel, load_policy

    args = {"rounds": rounds, "samples": samples, "stack": stack, "teacher": teacher}
    teacher = load_policy(teacher)
    rng = np.random.default_rng(0)
    results = {}

    # The fixed cost of one call into TensorFlow, with nothing to compute.
    empty = tf.function(lambda x: x[0, 0])
    tiny = tf.constant(np.zeros((1, 1), np.float32))
    call_us = []
    for _ in range(rounds):
        empty(tiny)
        start = time.perf_counter()
        for _ in range(1000):
            out = empty(tiny)
        out.numpy()
        call_us.append((time.perf_counter() - start) * 1e3)  # µs per call: total s / 1000 * 1e6
    empty_call_us = float(np.median(call_us))
    print(f"empty tf.function call: {empty_call_us:.0f} µs", flush=True)
    for per_call in (1, stack):
        for jit in (False, True):
            for batch in batches:
                student = StudentModel(teacher.num_actions, observation_dim=teacher.observation_dim)
                step = make_distill_step(
                    teacher, student, keras.optimizers.Adam(1e-3), loss="kl", temperature=0.01, jit_compile=jit
                )
                shape = (batch,) if per_call == 1 else (per_call, batch)
                obs = rng.normal(size=(*shape, teacher.observation_dim)).astype(np.float32)
                obs = tf.constant(obs)
                logits = tf.reshape(teacher(tf.reshape(obs, (-1, teacher.observation_dim))), (*shape, -1))
                calls = max(1, samples // (batch * per_call))
                for _ in range(max(3, calls // 10)):
                    step(obs, logits)
                rates = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    for _ in range(calls):
                        loss = step(obs, logits)
                    loss.numpy()
                    rates.append(batch * per_call * calls / (time.perf_counter() - start))
                results[f"batch={batch} jit={jit} updates_per_call={per_call}"] = {
                    "batch": batch,
                    "jit_compile": jit,
                    "updates_per_call": per_call,
                    "median_samples_per_s": float(np.median(rates)),
                    "min_samples_per_s": float(np.min(rates)),
                    "max_samples_per_s": float(np.max(rates)),
                }
                print(f"batch {batch} jit {jit} per call {per_call}: {np.median(rates):,.0f}", flush=True)
    rows = [
        "| batch | updates per call | jit_compile | median samples/s | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        rows.append(
            f"| {r['batch']} | {r['updates_per_call']} | {r['jit_compile']} | {r['median_samples_per_s']:,.0f} | "
            f"{r['min_samples_per_s']:,.0f} | {r['max_samples_per_s']:,.0f} |"
        )
    lines = [
        f"An empty `tf.function` call costs {empty_call_us:,.0f} µs here (median of {rounds} rounds of "
        "1,000 calls): the fixed price of every call, which stacking updates pays once per stack."
    ]
    for per_call in (1, stack):
        best = max(
            (r for r in results.values() if r["batch"] == max(batches) and r["updates_per_call"] == per_call),
            key=lambda r: r["median_samples_per_s"],
        )
        lines.append(
            f"Best at batch {max(batches)}, {per_call} update(s) per call: "
            f"{best['median_samples_per_s']:,.0f} samples/s (jit_compile={best['jit_compile']}; target >= 1,000,000: "
            f"{'met' if best['median_samples_per_s'] >= 1e6 else 'NOT met'})."
        )
    data = {"args": args, "empty_call_us": empty_call_us, "results": results}
    return data, "\n".join(rows) + "\n\n" + "\n".join(lines)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
