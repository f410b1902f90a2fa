"""Continuous control: Gaussian teachers distilled into small real-time students.

For every environment named by ``envs`` (zoo teachers Pendulum-v1-sac,
LunarLanderContinuous-v3-ppo, BipedalWalker-v3-ppo):

1. **Compression sweep**: students of ``sizes`` hidden units (one layer),
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

Teachers, budgets, student settings, sizes, losses and seeds: the row ``continuous`` of
``experiments.yml``.

    python benchmarks/run.py continuous [--envs Pendulum-v1] [--sizes 64 32 16 8] [--loss-size 16]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from _common import (
    SUMMARY_HEADER,
    check_choices,
    command_line,
    machine,
    quiet_tensorflow,
    results_dir,
    summarise_runs,
    summary_row,
    tflite_interpreter_fn,
    timed_distill,
)

quiet_tensorflow()


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


def sweep(
    cases: dict[str, list],
    loss_settings: dict[str, dict],
    envs: list[str],
    sizes: list[int],
    loss_size: int,
    losses: list[str],
    seeds: list[int],
    episodes: int,
    repeats: int,
    max_steps: int | None = None,
) -> tuple[dict, str]:
    """Gaussian teachers into one-layer students of each size, then the losses at one size.

    Environments not measured again are kept from the last results, with their command and CPU.

    Args:
        cases: environment -> ``[zoo teacher, labelled states per student, student settings beyond the
            defaults]``.
        loss_settings: loss name -> its DistillConfig settings.
        envs: the environments of ``cases`` to measure.
        sizes: hidden units of the students of the sweep.
        loss_size: student width of the loss comparison.
        losses: the losses of ``loss_settings`` to compare.
        seeds: one student per seed, size and loss.
        episodes: final evaluation episodes per run.
        repeats: timed calls per latency measurement.
        max_steps: cap the labelled-state budgets (quick tries only).
    """
    from kd_rl.models import load_policy

    check_choices("envs", envs, cases)
    check_choices("losses", losses, loss_settings)
    results, models = {}, {}
    measured_on = {"command": command_line(), "cpu": machine()["cpu"]}
    for env_id in envs:
        teacher_name, steps, student_settings = cases[env_id]
        steps = min(steps, max_steps or steps)
        teacher = load_policy(teacher_name)
        models[(env_id, "teacher")] = teacher
        r = results[env_id] = {
            "teacher": teacher_name, "labelled_states": steps, "sizes": {}, "losses": {}, "seeds": seeds,
            "loss_size": loss_size, "student_settings": student_settings, **measured_on,
            "date": machine()["date"],
        }  # fmt: skip
        runs_to_do = [("kl", h) for h in sizes] + [(loss, loss_size) for loss in losses if loss != "kl"]
        if loss_size not in sizes and "kl" in losses:
            runs_to_do.append(("kl", loss_size))
        for loss, hidden in runs_to_do:
            runs = []
            for seed in seeds:
                student, m = timed_distill(
                    teacher, env_id=env_id, hidden_units=hidden, steps=steps, seed=seed, eval_episodes=episodes,
                    **student_settings, **loss_settings[loss],
                )  # fmt: skip
                m["std_ratio"] = _std_ratio(student, teacher, env_id, seed)
                runs.append(m)
                if seed == seeds[0] and loss == "kl":
                    models[(env_id, hidden)] = student
                print(
                    env_id, loss, hidden, seed, f"{m['student_mean_return']:.1f} ({m['normalised_score']:.3f})",
                    f"error {m['action_error']:.3f} std ratio {m['std_ratio']:.2f}", flush=True,
                )  # fmt: skip
            if loss == "kl" and hidden in sizes:
                r["sizes"][hidden] = {"runs": runs}
            if hidden == loss_size and loss in losses:
                r["losses"][loss] = {"runs": runs}
        first = runs[0]
        r.update(
            teacher_params=first["teacher_params"],
            teacher_mean_return=float(np.mean([m["teacher_mean_return"] for m in runs])),
            random_mean_return=float(np.mean([m["random_mean_return"] for m in runs])),
        )

    with tempfile.TemporaryDirectory() as tmp:
        for (env_id, key), model in models.items():
            measured = _sizes_and_latency(model, Path(tmp), repeats)
            if key == "teacher":
                results[env_id]["teacher_files"] = measured
            elif key in results[env_id]["sizes"]:
                results[env_id]["sizes"][key].update(measured)

    results = {**_previous_results(set(results)), **results}
    parts = [_env_table(env_id, r) for env_id, r in results.items()]
    args = {
        "envs": envs,
        "sizes": sizes,
        "loss_size": loss_size,
        "losses": losses,
        "seeds": seeds,
        "episodes": episodes,
        "repeats": repeats,
        "max_steps": max_steps,
    }
    return {"args": args, "results": results}, "\n\n".join(parts)


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
    from run import main

    main(script=__file__)
