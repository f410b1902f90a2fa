"""Parallel environments for teacher training: env steps per second, serial against one process per env.

`kd_rl.teachers.make_batched_env` steps ``n`` environments serially in one
process (TF-Agents' ``BatchedPyEnvironment``), or with ``parallel=True`` each
in a process of its own (``ParallelPyEnvironment``). For a cheap simulator
(CartPole-v1), a mid one (LunarLander-v3) and a slow one (BipedalWalker-v3),
with 2 and 4 environments: the median over ``--repeats`` timed stretches of
``--steps`` batched steps (random actions, auto-reset), after one warm-up
stretch. The ratio says what ``parallel=True`` buys on this machine.

    python benchmarks/teacher_envs.py [--envs CartPole-v1 LunarLander-v3 BipedalWalker-v3] [--num-envs 2 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import quiet_tensorflow, write_results

quiet_tensorflow()


def _steps_per_second(env, steps: int, repeats: int, seed: int = 0) -> list[float]:
    """Env steps per second (batched steps x envs) of ``repeats`` stretches of ``steps`` batched steps."""
    spec = env.action_spec()
    rng = np.random.default_rng(seed)
    shape = (env.batch_size, *spec.shape)

    def actions():
        if np.issubdtype(spec.dtype, np.integer):
            return rng.integers(spec.minimum, spec.maximum + 1, size=shape).astype(spec.dtype)
        return rng.uniform(spec.minimum, spec.maximum, size=shape).astype(spec.dtype)

    env.reset()
    rates = []
    for stretch in range(repeats + 1):
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions())
        if stretch:  # the first stretch warms up
            rates.append(steps * env.batch_size / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "LunarLander-v3", "BipedalWalker-v3"])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--steps", type=int, default=500, help="batched steps per timed stretch")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from kd_rl.teachers import make_batched_env

    results = []
    for env_id in args.envs:
        for n in args.num_envs:
            row = {"env_id": env_id, "num_envs": n}
            for parallel in (False, True):
                env = make_batched_env(env_id, n, seed=0, parallel=parallel)
                try:
                    rates = _steps_per_second(env, args.steps, args.repeats)
                finally:
                    env.close()
                row["parallel" if parallel else "serial"] = {"median": float(np.median(rates)), "runs": rates}
            row["ratio"] = row["parallel"]["median"] / row["serial"]["median"]
            results.append(row)
            print(env_id, n, f"serial {row['serial']['median']:.0f}/s", f"parallel {row['parallel']['median']:.0f}/s")

    lines = [
        f"Env steps per second (median of {args.repeats} stretches of {args.steps} batched steps, random actions):\n",
        "| environment | envs | serial (one process) | parallel (a process per env) | parallel / serial |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['env_id']} | {r['num_envs']} | {r['serial']['median']:,.0f} | {r['parallel']['median']:,.0f} | "
            f"{r['ratio']:.2f} |"
        )
    write_results("teacher_envs", {"args": vars(args), "results": results}, "\n".join(lines))


if __name__ == "__main__":
    main()
