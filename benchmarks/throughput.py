"""Distillation throughput of ``make_distill_step`` (samples per second).

Batches of 64, 256 and 1024 observations with stored teacher logits (as in the
live loop), with and without XLA (``jit_compile=True``); median over rounds.

    python benchmarks/throughput.py [--rounds 7] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import quiet_tensorflow, write_results

quiet_tensorflow()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round")
    parser.add_argument("--teacher", default="CartPole-v1-dqn")
    args = parser.parse_args()

    import tensorflow as tf

    from kd_rl.distill import make_distill_step
    from kd_rl.models import StudentModel, load_policy

    teacher = load_policy(args.teacher)
    rng = np.random.default_rng(0)
    results = {}
    for jit in (False, True):
        for batch in (64, 256, 1024):
            student = StudentModel(teacher.num_actions, observation_dim=teacher.observation_dim)
            step = make_distill_step(
                teacher, student, tf.keras.optimizers.Adam(1e-3), loss="kl", temperature=0.01, jit_compile=jit
            )
            obs = tf.constant(rng.normal(size=(batch, teacher.observation_dim)).astype(np.float32))
            logits = teacher(obs)
            for _ in range(20):
                step(obs, logits)
            rates = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                for _ in range(args.steps):
                    loss = step(obs, logits)
                loss.numpy()
                rates.append(batch * args.steps / (time.perf_counter() - start))
            results[f"batch={batch} jit={jit}"] = {
                "batch": batch,
                "jit_compile": jit,
                "median_samples_per_s": float(np.median(rates)),
                "min_samples_per_s": float(np.min(rates)),
                "max_samples_per_s": float(np.max(rates)),
            }
    rows = ["| batch | jit_compile | median samples/s | min | max |", "|---|---|---|---|---|"]
    for r in results.values():
        rows.append(
            f"| {r['batch']} | {r['jit_compile']} | {r['median_samples_per_s']:,.0f} | "
            f"{r['min_samples_per_s']:,.0f} | {r['max_samples_per_s']:,.0f} |"
        )
    best = max(r["median_samples_per_s"] for r in results.values() if r["batch"] == 1024)
    table = (
        "\n".join(rows) + f"\n\nBest at batch 1024: {best:,.0f} samples/s (target >= 1,000,000: "
        f"{'met' if best >= 1e6 else 'NOT met'})."
    )
    write_results("throughput", {"args": vars(args), "results": results}, table)


if __name__ == "__main__":
    main()
