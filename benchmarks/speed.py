"""Where a distillation's time goes, and kd_rl against imitation's DAgger side by side (issue #37).

1. ``profiles``: one distillation per case (zoo teacher, environment, labelled
   states, student settings), three times in one process: with kd_rl's forward
   passes before issue #37 (every forward pass one compiled TensorFlow call,
   ``KD_RL_FAST_POLICIES=0``, and no evaluation cache; the curve's default
   interval is today's in all three), then as it runs now
   with an empty evaluation cache (a first run), then again (a second run of a
   sweep over the same teacher: the cache serves the teacher's and the random
   policy's final evaluation). Each run's `kd_rl.timing.RunProfile` is
   reported section by section.
2. ``vs_dagger``: kd_rl's default CartPole-v1 distillation (the shipped DQN
   teacher, a 50-unit student, 10,000 labelled states) against DAgger from
   imitation 1.0.1 with the same teacher, a student of the same size and the
   same budget, seed by seed, in one run (`_imitation_venv.run_dagger`: a venv
   of its own, PyTorch on one thread). Both evaluate the student greedily on
   10 episodes every 2,000 labelled states (DAgger: after each round that
   passes a multiple of 2,000) and on 100 episodes at the end. Measured:

   - *time to a 500-return student*: the training seconds at the first
     curve point whose mean return is 500, the curve's own evaluations left
     out for both. kd_rl's count starts at the call, so it includes its
     start-up (the student, the first trace of the step, the environments);
     DAgger's starts once its trainer and environments are built;
   - *the whole run*: wall seconds of the call, curve and final evaluations
     included (kd_rl's final evaluation also plays the teacher and a random
     policy on the same 100 episodes, with an empty cache);
   - kd_rl as it ran before issue #37 (compiled forward passes, no cache) on
     the same seeds, for the ratio of the two.

Targets (issue #37): kd_rl's time to a 500-return student <= 0.5x DAgger's and
its whole default run <= 0.7x, on the median over the seeds.

    python benchmarks/run.py speed_profiles speed_vs_dagger
    python benchmarks/speed.py [profiles] [vs_dagger]
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from _common import environment, quiet_tensorflow

quiet_tensorflow()

#: The three ways `profiles` runs each case: (label, NumPy forward passes, evaluation cache).
_MODES = (("compiled TF, no cache", False, False), ("first run", True, True), ("second run", True, True))


def _distill(teacher, cache: str, fast: bool, use_cache: bool, **config) -> tuple[dict, float]:
    """One `distill_policy` run (into a temporary folder, as ``kd-rl distill`` runs) with the NumPy path on or
    off and the cache in ``cache``: (metrics with the run's ``curve`` points, wall seconds of the call)."""
    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.plots import read_curve

    with environment(KD_RL_FAST_POLICIES="1" if fast else "0", KD_RL_CACHE_DIR=cache):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            _, metrics = distill_policy(
                teacher, DistillConfig(eval_cache=use_cache, **config), out_dir=os.path.join(out, "run"),
                progress=False,
            )  # fmt: skip
            wall = time.perf_counter() - start
            curve = read_curve(os.path.join(out, "run", "curve.csv"))
    keys = ("env_steps", "mean_return", "train_seconds")
    metrics["curve"] = [dict(zip(keys, map(float, values))) for values in zip(*(curve[k] for k in keys))]
    return metrics, wall


def profiles(cases: list, seed: int) -> tuple[dict, str]:
    """Each case's run profile: before issue #37, a first run and a second run over the same teacher.

    Args:
        cases: [zoo teacher, environment, labelled states, other DistillConfig settings] per case.
        seed: the runs' seed.
    """
    from kd_rl.models import load_policy

    results = []
    with tempfile.TemporaryDirectory() as cache:
        for name, env_id, steps, settings in cases:
            teacher = load_policy(name)
            _warm_up(teacher, env_id)
            runs = []
            for label, fast, use_cache in _MODES:
                m, wall = _distill(teacher, cache, fast, use_cache, env_id=env_id, steps=steps, seed=seed, **settings)
                runs.append(
                    {
                        "mode": label,
                        "profile": m["profile"],
                        "wall_seconds": wall,
                        "cache": m["eval_cache_status"],
                        "student_mean_return": m["student_mean_return"],
                        "teacher_mean_return": m["teacher_mean_return"],
                        "normalised_score": m["normalised_score"],
                        "labelled_states": m["labelled_states"],
                    }
                )
                print(name, label, f"{wall:.1f} s", flush=True)
            results.append({"teacher": name, "env_id": env_id, "steps": steps, "settings": settings, "runs": runs})
    return {"seed": seed, "cases": results}, _profiles_table(results)


def _profiles_table(results: list) -> str:
    from kd_rl.timing import SECTIONS

    shown = (*SECTIONS, "other", "total")
    lines = []
    for case in results:
        runs = case["runs"]
        lines += [
            f"**{case['teacher']}** on {case['env_id']}, {case['steps']:,} labelled states"
            + (f", {case['settings']}" if case["settings"] else "")
            + ": wall seconds per section.\n",
            "| section | " + " | ".join(r["mode"] for r in runs) + " |",
            "|---|" + "---|" * len(runs),
        ]
        for name in shown:
            label = f"&nbsp;&nbsp;{name}" if name.startswith(("collect_", "final_eval_")) else name
            lines.append(f"| {label} | " + " | ".join(f"{r['profile'][name]:.2f}" for r in runs) + " |")
        lines.append(
            "| speed-up of the total | "
            + " | ".join(f"{runs[0]['profile']['total'] / r['profile']['total']:.1f}x" for r in runs)
            + " |"
        )
        lines.append(
            "| student return (normalised) | "
            + " | ".join(f"{r['student_mean_return']:.1f} ({r['normalised_score']:.3f})" for r in runs)
            + " |"
        )
        lines.append("| evaluation cache | " + " | ".join(f"{r['cache']['teacher']}" for r in runs) + " |\n")
    return "\n".join(lines)


def _warm_up(teacher, env_id: str) -> None:
    """A short run, not reported, so that the first reported run does not pay the process's one-time costs."""
    with tempfile.TemporaryDirectory() as cache:
        _distill(teacher, cache, True, False, env_id=env_id, steps=500, eval_every=0, eval_episodes=2)


def _seconds_to(curve: list, threshold: float, seconds: str, states: str) -> tuple[float | None, int | None]:
    for point in curve:
        if point["mean_return"] >= threshold:
            return point[seconds], point[states]
    return None, None


def vs_dagger(
    teacher: str,
    env_id: str,
    seeds: list[int],
    steps: int,
    hidden: int,
    eval_every: int,
    curve_episodes: int,
    episodes: int,
    threshold: float,
    max_time_ratio: float,
    max_total_ratio: float,
) -> tuple[dict, str]:
    """kd_rl now, kd_rl before issue #37 and imitation's DAgger, seed by seed, same teacher, student and budget.

    Args:
        teacher: the zoo teacher.
        env_id: its environment.
        seeds: one run of each per seed.
        steps: labelled states (DAgger's budget: it ends its last round's episodes, so it labels a few more).
        hidden: the student's one hidden layer.
        eval_every: labelled states between the curve's evaluations.
        curve_episodes: episodes of each curve evaluation.
        episodes: episodes of the final evaluation.
        threshold: the return of "a 500-return student".
        max_time_ratio: target: kd_rl's time to the threshold over DAgger's, at most (median over seeds).
        max_total_ratio: target: kd_rl's whole run over DAgger's, at most (median over seeds).
    """
    from _imitation_venv import run_dagger

    from kd_rl.export import export_model
    from kd_rl.models import load_policy

    model = load_policy(teacher)
    _warm_up(model, env_id)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "teacher.npz")
        export_model(model, "numpy", npz)
        for seed in seeds:
            row = {"seed": seed}
            config = dict(
                env_id=env_id, steps=steps, seed=seed, hidden_units=hidden, eval_every=eval_every,
                curve_episodes=curve_episodes, eval_episodes=episodes,
            )  # fmt: skip
            for key, fast in (("kd_rl", True), ("kd_rl_before", False)):
                with tempfile.TemporaryDirectory() as cache:  # an empty cache: the teacher is evaluated
                    m, wall = _distill(model, cache, fast, fast, **config)
                to, at = _seconds_to(m["curve"], threshold, "train_seconds", "env_steps")
                at = None if at is None else int(at)
                row[key] = {
                    "seconds_to_threshold": to,
                    "labelled_states_to_threshold": at,
                    "train_seconds": m["train_seconds"],
                    "total_seconds": wall,
                    "student_mean_return": m["student_mean_return"],
                    "labelled_states": m["labelled_states"],
                    "student_params": m["student_params"],
                    "profile": m["profile"],
                    "curve": m["curve"],
                }
                print(seed, key, f"to {threshold:g}: {to} s, total {wall:.1f} s", flush=True)
            dagger = run_dagger(npz, seed, steps, [hidden], eval_every, curve_episodes, episodes, threshold)
            row["dagger"] = dagger
            print(seed, "dagger", f"to {threshold:g}: {dagger['seconds_to_threshold']} s, "
                  f"total {dagger['total_seconds']:.1f} s", flush=True)  # fmt: skip
            rows.append(row)
    data = {
        "teacher": teacher, "env_id": env_id, "steps": steps, "hidden": hidden, "threshold": threshold,
        "max_time_ratio": max_time_ratio, "max_total_ratio": max_total_ratio, "rows": rows,
    }  # fmt: skip
    return data, _dagger_table(data)


def _median(values) -> float | None:
    """The median over every seed, a seed that never reached the threshold (None) counted as never: None
    when that is the median."""
    values = [np.inf if v is None else v for v in values]
    median = float(np.median(values))
    return None if not np.isfinite(median) else median


def _dagger_table(data: dict) -> str:
    rows, threshold = data["rows"], data["threshold"]

    def fmt(x, unit=" s"):
        return "never" if x is None else f"{x:.2f}{unit}"

    lines = [
        f"{data['teacher']} into a {data['hidden']}-unit student on {data['env_id']}, {data['steps']:,} labelled "
        f"states, {len(rows)} seeds, one run. Time to a {threshold:g}-return student: training seconds at the "
        "first curve point with that mean return (curve evaluations left out for both); whole run: wall seconds "
        "of the call, curve and final evaluations included; training on the whole budget: the same training "
        "seconds at the last curve point.\n",
        "| seed | kd_rl: to 500 | DAgger: to 500 | ratio | kd_rl: whole run | DAgger: whole run | ratio | "
        "training on the whole budget (kd_rl / DAgger) | kd_rl before #37: to 500 / whole run | "
        "returns (kd_rl / DAgger, 100 episodes) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        k, d, b = r["kd_rl"], r["dagger"], r["kd_rl_before"]
        ratio = (
            "—"
            if k["seconds_to_threshold"] is None or d["seconds_to_threshold"] is None
            else f"{k['seconds_to_threshold'] / d['seconds_to_threshold']:.2f}"
        )
        lines.append(
            f"| {r['seed']} | {fmt(k['seconds_to_threshold'])} ({k['labelled_states_to_threshold']} states) | "
            f"{fmt(d['seconds_to_threshold'])} ({d['labelled_states_to_threshold']} states) | {ratio} | "
            f"{k['total_seconds']:.2f} s | {d['total_seconds']:.2f} s | "
            f"{k['total_seconds'] / d['total_seconds']:.2f} | "
            f"{k['curve'][-1]['train_seconds']:.2f} s ({k['labelled_states']:,} states) / {d['train_seconds']:.2f} s "
            f"({d['labelled_states']:,}) | "
            f"{fmt(b['seconds_to_threshold'])} / {b['total_seconds']:.2f} s | "
            f"{k['student_mean_return']:.1f} / {d['final']['mean_return']:.1f} |"
        )
    med = {
        key: {
            "to": _median(r[key]["seconds_to_threshold"] for r in rows),
            "total": _median(r[key]["total_seconds"] for r in rows),
        }
        for key in ("kd_rl", "kd_rl_before", "dagger")
    }
    data["medians"] = med
    to_ratio = None
    if med["kd_rl"]["to"] is not None and med["dagger"]["to"]:
        to_ratio = med["kd_rl"]["to"] / med["dagger"]["to"]
    total_ratio = med["kd_rl"]["total"] / med["dagger"]["total"]
    data["ratios"] = {"to_threshold": to_ratio, "total": total_ratio}
    met_to = to_ratio is not None and to_ratio <= data["max_time_ratio"]
    met_total = total_ratio <= data["max_total_ratio"]
    before = med["kd_rl_before"]
    lines += [
        "",
        f"Medians over the seeds: kd_rl {fmt(med['kd_rl']['to'])} to {threshold:g} and {fmt(med['kd_rl']['total'])} "
        f"in all; DAgger {fmt(med['dagger']['to'])} and {fmt(med['dagger']['total'])}; kd_rl before issue #37 "
        f"{fmt(before['to'])} and {fmt(before['total'])}.",
        f"Time to a {threshold:g}-return student: {'—' if to_ratio is None else f'{to_ratio:.2f}'}x DAgger's "
        f"(target <= {data['max_time_ratio']}x: {'met' if met_to else 'NOT met'}). Whole default run: "
        f"{total_ratio:.2f}x (target <= {data['max_total_ratio']}x: {'met' if met_total else 'NOT met'}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
