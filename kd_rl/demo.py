"""``kd-rl demo`` (what ``make demo`` runs): the whole story on CartPole-v1.

1. Load the shipped 100-unit DQN teacher from the zoo (no network needed).
2. Distil it into a 50-unit student on the live environment with the default
   settings (student-driven data, KL at a low temperature).
3. Evaluate both on the same 100 seeded episodes and time a batch-1 action.
4. Write the plots and a summary table to ``runs/demo/`` and print the table.
"""

from __future__ import annotations

import os
from pathlib import Path

from kd_rl._io import write_text
from kd_rl.distill import DistillConfig, distill_policy
from kd_rl.evaluate import inference_latency_us, model_size_bytes
from kd_rl.losses import default_temperature
from kd_rl.models import load_policy
from kd_rl.plots import plot_comparison_bars, plot_distillation_curve, read_curve, save
from kd_rl.policies import NumpyPolicy

__all__ = ["run_demo", "summary_table"]


def summary_table(rows: list[dict]) -> str:
    """A Markdown table of policies: params, size, return, agreement, latency."""
    header = (
        "| policy | hidden units | parameters | .keras bytes | mean return ± std | agreement "
        "| batch-1 latency, Keras eager | batch-1 latency, NumPy |"
    )
    lines = [header, "|---" * 8 + "|"]
    for r in rows:
        agreement = "—" if r.get("agreement") is None else f"{r['agreement']:.3f}"
        lines.append(
            f"| {r['name']} | {r['hidden_units']} | {r['params']:,} | {r['size_bytes']:,} | "
            f"{r['mean_return']:.1f} ± {r['std_return']:.1f} | {agreement} | "
            f"{r['latency_keras_us']:.0f} µs | {r['latency_numpy_us']:.1f} µs |"
        )
    return "\n".join(lines)


def _score(value: float | None) -> str:
    return "n/a (the teacher scores like a random policy)" if value is None else f"{value:.3f}"


def run_demo(
    out_dir: str | os.PathLike = "runs/demo", teacher: str = "CartPole-v1-dqn", seed: int = 0, progress: bool = True
) -> dict:
    """Run the demo; returns the distillation metrics with the table added."""

    out = Path(out_dir)
    teacher_model = load_policy(teacher)
    print(f"teacher: {teacher} ({teacher_model.count_params():,} parameters, hidden {teacher_model.hidden_units})")
    config = DistillConfig(env_id="CartPole-v1", seed=seed)
    width = ",".join(map(str, config.hidden_units))
    temperature = default_temperature(teacher_model)
    print(
        f"distilling into a {width}-unit student on {config.env_id}: {config.steps:,} teacher-labelled "
        f"states, {config.collect}-driven data, loss {config.loss} at temperature {temperature:g} "
        f"(the default for a teacher whose outputs are {teacher_model.output_type or 'logits'})"
    )
    student, metrics = distill_policy(
        teacher_model, config, out_dir=out, overwrite=True, progress=progress, teacher_name=teacher
    )

    rows = []
    for name, model, mean, std, agreement in (
        ("teacher", teacher_model, metrics["teacher_mean_return"], metrics["teacher_std_return"], None),
        ("student", student, metrics["student_mean_return"], metrics["student_std_return"], metrics["agreement"]),
    ):
        numpy_policy = NumpyPolicy.from_model(model)
        rows.append(
            {
                "name": name,
                "hidden_units": ",".join(map(str, model.hidden_units)),
                "params": model.count_params(),
                "size_bytes": model_size_bytes(model),
                "mean_return": mean,
                "std_return": std,
                "agreement": agreement,
                "latency_keras_us": inference_latency_us(model, model.observation_dim)["median_us"],
                "latency_numpy_us": inference_latency_us(numpy_policy, model.observation_dim, repeats=2000)[
                    "median_us"
                ],
            }
        )
    table = summary_table(rows)
    curve = read_curve(out / "curve.csv")
    save(
        plot_distillation_curve(
            {"student": curve}, metrics["teacher_mean_return"], title=f"Distilling {teacher} into a 50-unit student"
        ),
        out / "distillation_curve.png",
    )
    save(
        plot_comparison_bars(
            [r["name"] for r in rows],
            [r["params"] for r in rows],
            [r["mean_return"] for r in rows],
            [r["std_return"] for r in rows],
            title="CartPole-v1: teacher vs distilled student",
        ),
        out / "teacher_vs_student.png",
    )
    text = (
        f"# kd_rl demo: {teacher} -> 50-unit student\n\n{table}\n\n"
        f"The student scores {_score(metrics['normalised_score'])} on the normalised scale (0: a random policy, "
        f"{metrics['random_mean_return']:.1f}; 1: the teacher) with "
        f"{metrics['teacher_params'] / metrics['student_params']:.1f}x fewer parameters, after "
        f"{metrics['labelled_states']:,} teacher-labelled states and {metrics['train_seconds']:.1f} s of training.\n"
        "Latencies are medians of batch-1 calls on this machine.\n"
    )
    write_text(out / "summary.md", text)
    print()
    print(text)
    print(
        f"wrote {out}/student.keras, metrics.json, curve.csv, distillation_curve.png, teacher_vs_student.png, "
        "summary.md"
    )
    return {**metrics, "table": table}
