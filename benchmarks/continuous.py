"""Continuous control: Gaussian teachers distilled into small real-time students.

For every environment named by ``--envs`` (zoo teachers Pendulum-v1-sac,
LunarLanderContinuous-v3-ppo, BipedalWalker-v3-ppo):

1. **Compression sweep**: students of ``--sizes`` hidden units (one layer),
   distilled with the Gaussian KL (kd_rl's default, decoupled form) on
   student-driven data, 3 seeds each. For
   every size: parameters, share of the teacher's, float32 TFLite bytes, the
   batch-1 latency of the student's deterministic action in the LiteRT
   interpreter and in ``NumpyPolicy`` (median µs, first seed's student, all
   timed at the end in one quiet stretch), and the return and normalised score
   ``(student − random) / (teacher − random)`` over 100 episodes per seed (the
   random policy on the same episodes).
2. **Losses at equal data budgets**: the Gaussian KL in its decoupled form
   (``kl``, the default) and exact (``kl-exact``), MSE on the means and the
   NLL of the teacher's deterministic action, at one student size, 3 seeds
   each: normalised score, action error (mean ``|a_s − a_t|`` over the range
   on student-visited states) and the student's action noise against the
   teacher's: the median over visited states of ``sigma_student / sigma_teacher``
   (1 keeps the teacher's exploration noise; MSE does not train the std at all).

    python benchmarks/continuous.py [--envs Pendulum-v1] [--sizes 64 32 16 8] [--loss-size 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    SUMMARY_HEADER,
    command_line,
    machine,
    quiet_tensorflow,
    results_dir,
    summarise_runs,
    summary_row,
    tflite_interpreter_fn,
    timed_distill,
    write_results,
)

quiet_tensorflow()

#: --losses names -> DistillConfig settings.
LOSSES = {
    "kl": {"loss": "kl", "gaussian_kl": "decoupled"},
    "kl-exact": {"loss": "kl", "gaussian_kl": "exact"},
    "mse": {"loss": "mse"},
    "nll": {"loss": "nll"},
}

#: Environment -> (zoo teacher, labelled states per student, student settings beyond the defaults).
#: BipedalWalker's 11-unit student kept 0.27 of the score with the defaults (relu, raw observations),
#: 0.60 with the teacher's observation normaliser and 0.91 with tanh as well (one seed, 30 episodes);
#: its PPO teacher's log-std is one value per dimension, so the students' is too (fewer parameters).
CASES = {
    "Pendulum-v1": ("Pendulum-v1-sac", 20_000, {}),
    "LunarLanderContinuous-v3": ("LunarLanderContinuous-v3-ppo", 30_000, {}),
    "BipedalWalker-v3": (
        "BipedalWalker-v3-ppo",
        300_000,
        {"activation": "tanh", "inherit_normalizer": True, "state_dependent_std": False},
    ),
}


def _std_ratio(student, teacher, env_id: str, seed: int) -> float:
    """Median over the student's visited states of ``sigma_student / sigma_teacher`` (geometric over dimensions)."""
    from kd_rl.data import visited_states
    from kd_rl.models import split_gaussian

    states = visited_states(student, env_id, 2_000, seed=seed)
    _, log_std_s = split_gaussian(student(states).numpy())
    _, log_std_t = split_gaussian(teacher(states).numpy())
    return float(np.exp(np.median((log_std_s - log_std_t).mean(axis=-1))))


def _sizes_and_latency(model, workdir: Path, repeats: int) -> dict:
    from kd_rl.evaluate import inference_latency_us
    from kd_rl.export import export_model
    from kd_rl.policies import NumpyPolicy, TFLitePolicy, observation_dim

    tflite = export_model(model, "tflite", workdir / "m.tflite")
    numpy_file = export_model(model, "numpy", workdir / "m.npz")
    dim = observation_dim(model)
    return {
        "tflite_bytes": tflite.stat().st_size,
        "tflite_latency": inference_latency_us(tflite_interpreter_fn(TFLitePolicy(tflite)), dim, repeats, 200),
        "numpy_latency": inference_latency_us(NumpyPolicy.load(numpy_file), dim, repeats, 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Pendulum-v1"], choices=list(CASES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 32, 16, 8])
    parser.add_argument("--loss-size", type=int, default=16, help="student width of the loss comparison")
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3000, help="timed calls per latency measurement")
    parser.add_argument("--max-steps", type=int, help="cap the labelled-state budgets (quick tries only)")
    args = parser.parse_args()

    from kd_rl.models import load_policy

    results, models = {}, {}
    measured_on = {"command": command_line(), "cpu": machine()["cpu"]}
    for env_id in args.envs:
        teacher_name, steps, student_settings = CASES[env_id]
        steps = min(steps, args.max_steps or steps)
        teacher = load_policy(teacher_name)
        models[(env_id, "teacher")] = teacher
        r = results[env_id] = {
            "teacher": teacher_name, "labelled_states": steps, "sizes": {}, "losses": {}, "seeds": args.seeds,
            "loss_size": args.loss_size, "student_settings": student_settings, **measured_on,
            "date": machine()["date"],
        }  # fmt: skip
        sweep = [("kl", h) for h in args.sizes] + [(loss, args.loss_size) for loss in args.losses if loss != "kl"]
        if args.loss_size not in args.sizes and "kl" in args.losses:
            sweep.append(("kl", args.loss_size))
        for loss, hidden in sweep:
            runs = []
            for seed in args.seeds:
                student, m = timed_distill(
                    teacher, env_id=env_id, hidden_units=hidden, steps=steps, seed=seed, eval_episodes=args.episodes,
                    **student_settings, **LOSSES[loss],
                )  # fmt: skip
                m["std_ratio"] = _std_ratio(student, teacher, env_id, seed)
                runs.append(m)
                if seed == args.seeds[0] and loss == "kl":
                    models[(env_id, hidden)] = student
                print(
                    env_id, loss, hidden, seed, f"{m['student_mean_return']:.1f} ({m['normalised_score']:.3f})",
                    f"error {m['action_error']:.3f} std ratio {m['std_ratio']:.2f}", flush=True,
                )  # fmt: skip
            if loss == "kl" and hidden in args.sizes:
                r["sizes"][hidden] = {"runs": runs}
            if hidden == args.loss_size and loss in args.losses:
                r["losses"][loss] = {"runs": runs}
        first = runs[0]
        r.update(
            teacher_params=first["teacher_params"],
            teacher_mean_return=float(np.mean([m["teacher_mean_return"] for m in runs])),
            random_mean_return=float(np.mean([m["random_mean_return"] for m in runs])),
        )

    with tempfile.TemporaryDirectory() as tmp:
        for (env_id, key), model in models.items():
            measured = _sizes_and_latency(model, Path(tmp), args.repeats)
            if key == "teacher":
                results[env_id]["teacher_files"] = measured
            elif key in results[env_id]["sizes"]:
                results[env_id]["sizes"][key].update(measured)

    results = {**_previous_results(set(results)), **results}
    parts = [_env_table(env_id, r) for env_id, r in results.items()]
    write_results("continuous", {"args": vars(args), "results": results}, "\n\n".join(parts))


def _previous_results(rerun: set) -> dict:
    """The last results file's environments that this run does not measure again (with their command and CPU)."""
    path = results_dir() / "continuous.json"
    if not path.is_file():
        return {}
    previous = json.loads(path.read_text())
    kept = {}
    for env_id, r in previous["results"].items():
        if env_id in rerun:
            continue
        r.setdefault("command", previous["command"])
        r.setdefault("cpu", previous["machine"]["cpu"])
        r.setdefault("date", previous["machine"]["date"])
        r.setdefault("loss_size", previous["args"]["loss_size"])
        r.setdefault("seeds", previous["args"]["seeds"])
        kept[env_id] = r
    return kept


def _env_table(env_id: str, r: dict) -> str:
    """One environment's sweep and loss tables, with the command and CPU that measured them."""
    n = len(r["seeds"])
    t = r["teacher_files"]
    settings = r.get("student_settings") or {}
    students = (
        f"{settings.get('activation', 'relu')} hidden units"
        + (", the teacher's observation normaliser" if settings.get("inherit_normalizer") else "")
        + (", one learned log-std per dimension" if settings.get("state_dependent_std") is False else "")
    )
    rows = [
        f"**{env_id}**: teacher `{r['teacher']}`, {r['teacher_params']:,} parameters, return "
        f"{r['teacher_mean_return']:.1f} (random policy {r['random_mean_return']:.1f}); "
        f"{r['labelled_states']:,} labelled states per student, student-driven, Gaussian KL (decoupled); "
        f"students: {students}; {n} seeds per size. Measured with `{r['command']}` on {r['cpu']}, {r['date']}.\n",
        "| hidden units | params | share | TFLite bytes | LiteRT µs | NumPy µs | return (mean ± std) | "
        "normalised score (mean ± std) | worst seed |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| teacher | {r['teacher_params']:,} | 100% | {t['tflite_bytes']:,} | "
        f"{t['tflite_latency']['median_us']:.2f} | {t['numpy_latency']['median_us']:.2f} | "
        f"{r['teacher_mean_return']:.1f} | 1 | |",
    ]
    for hidden, s in sorted(r["sizes"].items(), key=lambda item: -int(item[0])):  # JSON keys are strings
        returns = np.array([m["student_mean_return"] for m in s["runs"]])
        scores = np.array([m["normalised_score"] for m in s["runs"]], dtype=float)
        params = s["runs"][0]["student_params"]
        s["mean_normalised_score"] = float(scores.mean())
        rows.append(
            f"| {hidden} | {params:,} | {100 * params / r['teacher_params']:.2f}% | {s['tflite_bytes']:,} | "
            f"{s['tflite_latency']['median_us']:.2f} | {s['numpy_latency']['median_us']:.2f} | "
            f"{returns.mean():.1f} ± {returns.std():.1f} | {scores.mean():.3f} ± {scores.std():.3f} | "
            f"{scores.min():.3f} |"
        )
    keep = [h for h, s in r["sizes"].items() if s["mean_normalised_score"] >= 0.95]
    if keep:
        h = min(keep, key=lambda k: r["sizes"][k]["runs"][0]["student_params"])
        p = r["sizes"][h]["runs"][0]["student_params"]
        rows.append(
            f"\nSmallest student keeping >= 95% of the normalised score (mean of {n} seeds): {h} units, "
            f"{p:,} parameters, 1/{r['teacher_params'] / p:.0f} of the teacher's."
        )
    else:
        rows.append(f"\nNo student size kept 95% of the normalised score (mean of {n} seeds).")
    if r["losses"]:
        rows += [
            f"\nLosses at equal data budgets ({r['labelled_states']:,} labelled states, {r['loss_size']} hidden "
            f"units, {n} seeds): normalised score; action error (mean |a_s − a_t| / range on the student's "
            "states); the student's action noise over the teacher's (median σ_s / σ_t on those states).\n",
            SUMMARY_HEADER,
        ]
        for loss, s in r["losses"].items():
            rows.append(summary_row(f"{loss}: normalised score", summarise_runs(s["runs"], "normalised_score")))
            rows.append(summary_row(f"{loss}: action error", summarise_runs(s["runs"], "action_error", False)))
            rows.append(summary_row(f"{loss}: σ_s / σ_t", summarise_runs(s["runs"], "std_ratio"), "{:.2f}"))
    return "\n".join(rows)


if __name__ == "__main__":
    main()
