"""Parallel environments for teacher training: env steps per second, serial against one process per env.

`kd_rl.teachers.make_batched_env` steps ``n`` environments serially in one
process (TF-Agents' ``BatchedPyEnvironment``), or with ``parallel=True`` each
in a process of its own (``ParallelPyEnvironment``). For a cheap simulator
(CartPole-v1), a mid one (LunarLander-v3) and a slow one (BipedalWalker-v3),
with 2 and 4 environments: the median over ``repeats`` timed stretches of
``steps`` batched steps (random actions, auto-reset), after one warm-up
stretch. The ratio says what ``parallel=True`` buys on this machine.

Then whole training runs (`kd_rl.teachers.train_teacher`, the shipped
hyperparameters, one evaluation at the end): env steps per second of DQN and SAC
with ``n_envs: 1``, with ``train_envs`` environments stepped together in this
process, and with them in processes (``parallel_envs: true``), one after the other
in the same run.

The environments and training runs: the row ``teacher_envs`` of ``experiments.yml``.

    python benchmarks/run.py teacher_envs [--envs CartPole-v1 LunarLander-v3 BipedalWalker-v3] [--num-envs 2 4]
        [--train-envs 4] [--training CartPole-v1:dqn:20000 ...]
"""

from __future__ import annotations

import time

import numpy as np
from _common import quiet_tensorflow

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


def _training_rate(env_id: str, algo: str, steps: int, n_envs: int, parallel: bool) -> float:
    """Env steps per second of a whole ``train_teacher`` run (``metrics.json``'s ``steps_per_second``)."""
    import tempfile
    from pathlib import Path

    from kd_rl.teachers import train_teacher

    overrides = {"n_envs": n_envs, "parallel_envs": parallel, "eval_every": steps, "periodic_eval_episodes": 1}
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train_teacher(
            env_id, algo, Path(tmp) / "run", steps=steps, seed=0, overrides=overrides, eval_episodes=1, progress=False
        )
    return float(metrics["steps_per_second"])


def _training_case(text: str) -> tuple[str, str, int]:
    """``ENV:ALGO:STEPS`` as ``(env_id, algo, steps)``."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"training: a run is ENV:ALGO:STEPS, got {text!r}")
    return parts[0], parts[1], int(parts[2])


def measure(
    envs: list[str], num_envs: list[int], steps: int, repeats: int, train_envs: int, training: list[str]
) -> tuple[dict, str]:
    """Env steps per second stepping environments serially and in processes, then of whole training runs.

    Args:
        envs: the environments to step.
        num_envs: the numbers of environments stepped together.
        steps: batched steps per timed stretch.
        repeats: timed stretches per setting.
        train_envs: n_envs of the batched training runs.
        training: training runs to time, each ENV:ALGO:STEPS (none: skip them).
    """
    from kd_rl.teachers import make_batched_env

    runs = [_training_case(t) for t in training]
    results = []
    for env_id in envs:
        for n in num_envs:
            row = {"env_id": env_id, "num_envs": n}
            for parallel in (False, True):
                env = make_batched_env(env_id, n, seed=0, parallel=parallel)
                try:
                    rates = _steps_per_second(env, steps, repeats)
                finally:
                    env.close()
                row["parallel" if parallel else "serial"] = {"median": float(np.median(rates)), "runs": rates}
            row["ratio"] = row["parallel"]["median"] / row["serial"]["median"]
            results.append(row)
            print(env_id, n, f"serial {row['serial']['median']:.0f}/s", f"parallel {row['parallel']['median']:.0f}/s")

    lines = [
        f"Env steps per second (median of {repeats} stretches of {steps} batched steps, random actions):\n",
        "| environment | envs | serial (one process) | parallel (a process per env) | parallel / serial |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['env_id']} | {r['num_envs']} | {r['serial']['median']:,.0f} | {r['parallel']['median']:,.0f} | "
            f"{r['ratio']:.2f} |"
        )

    timed = []
    for env_id, algo, run_steps in runs:
        row = {"env_id": env_id, "algo": algo, "steps": run_steps}
        for name, n, parallel in (
            ("one", 1, False),
            ("serial", train_envs, False),
            ("parallel", train_envs, True),
        ):
            row[name] = _training_rate(env_id, algo, run_steps, n, parallel)
        timed.append(row)
        print(env_id, algo, {k: round(row[k]) for k in ("one", "serial", "parallel")}, flush=True)
    if timed:
        n = train_envs
        lines += [
            "",
            f"Training runs (`train_teacher`, shipped hyperparameters, seed 0, one evaluation at the end): env steps "
            f"per second over the whole run with one environment, {n} stepped together in this process "
            f"(`n_envs: {n}`) and {n} in processes (`n_envs: {n}`, `parallel_envs: true`):\n",
            f"| environment | algo | env steps | n_envs 1 | n_envs {n} | n_envs {n}, parallel | "
            f"{n} / 1 | parallel / 1 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in timed:
            lines.append(
                f"| {r['env_id']} | {r['algo']} | {r['steps']:,} | {r['one']:,.0f} | {r['serial']:,.0f} | "
                f"{r['parallel']:,.0f} | {r['serial'] / r['one']:.2f} | {r['parallel'] / r['one']:.2f} |"
            )
    args = {
        "envs": envs,
        "num_envs": num_envs,
        "steps": steps,
        "repeats": repeats,
        "train_envs": train_envs,
        "training": [":".join(map(str, t)) for t in runs],
    }
    return {"args": args, "results": results, "training": timed}, "\n".join(lines)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
