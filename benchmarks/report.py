"""Write docs/benchmarks.md and its figures from benchmarks/results/.

Run after the benchmark scripts; every number on the page comes from their
JSON and Markdown results, each with the command that produced it.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))

INTRO = """# Benchmarks

Every number on this page was measured by a script in `benchmarks/` on the machine kd_rl
is built for: **2 CPU cores, no GPU**, shared with other work. Each section names the
command that reproduces it; each script writes `benchmarks/results/NAME.json` (all runs,
the machine, the command) and `NAME.md` (the table below). Timings are medians of many
repetitions measured in one run, so ratios between rows are fair; absolute numbers move
with the machine and its load. `python benchmarks/report.py` rebuilds this page from the
results.
"""

SECTIONS = [
    (
        "distill_cartpole",
        "Distilling the shipped CartPole-v1 teacher",
        "The 100-unit DQN teacher from the zoo into a 50-unit student with the default "
        "settings (student-driven data, KL at T = 0.01, 10,000 teacher-labelled states), three "
        "seeds; returns over the same 100 seeded episodes for teacher and student. Target: "
        ">= 99% of the teacher's return with at most 20,000 labelled states in under 60 s.",
    ),
    (
        "distill_compression",
        "Compression beyond the published headline",
        "Rusu et al. (2016) kept a DQN's performance with students about 15x smaller. Here the "
        "large CartPole-v1 teacher (67,586 parameters) and the LunarLander-v3 teacher (69,124) "
        "are distilled into much smaller students, three seeds each. Targets: on CartPole-v1 a "
        "student with at most 1% of the parameters keeps >= 99% of the return; on LunarLander-v3 "
        "a student with at most 1/15 keeps >= 95%.",
    ),
    (
        "distill_collect",
        "Who acts while collecting: teacher or student?",
        "Teacher-driven data (the teacher acts) against student-driven data (DAgger: the student "
        "acts, the teacher labels), five seeds each, with a small budget (3,000 labelled states) "
        "where the difference can show; returns over 100 episodes, agreement on the states the "
        "student visits.",
    ),
    (
        "teachers",
        "Training the teachers: steps and seconds to solve CartPole-v1",
        "Environment steps and wall seconds until the periodic evaluation (20 greedy episodes) "
        "first reaches a mean return of 475, three seeds per algorithm. DQN uses the "
        "`CartPole-v1-large` hyperparameters (256x256), PPO the `CartPole-v1` ones. Target: every "
        "seed solves, DQN within 50,000 steps and PPO within 100,000, each in under 5 minutes.",
    ),
    (
        "latency",
        "Batch-1 action latency",
        "The time to choose one action, as a deployed agent pays at every step: teacher and "
        "50-unit student as an eager Keras call, a `tf.function`, TFLite float32 (the interpreter "
        "alone, and through kd_rl's `TFLitePolicy` wrapper), TFLite int8 and `NumpyPolicy`. "
        "Target: the student's fastest exported path <= 5 µs median and >= 100x faster than "
        "the eager Keras call.",
    ),
    (
        "throughput",
        "Distillation throughput",
        "Samples per second of `make_distill_step` with stored teacher logits (as in the live "
        "loop) at batch 64, 256 and 1024, with and without XLA (`jit_compile=True`). Target "
        "(not met): >= 1,000,000 samples/s at batch 1024.",
    ),
    (
        "export_check",
        "How faithful are the exports?",
        "A distilled student (CartPole-v1: 50 units; LunarLander-v3: 256 units) exported to TFLite "
        "float32, TFLite int8 and NumPy; each export is compared with the Keras student on 10,000 "
        "states the student visits (argmax agreement) and on the same 100 seeded episodes. Targets: "
        ">= 99.5% agreement for the float exports, >= 98% for int8, returns within 1%. The int8 "
        "export misses its agreement target. A likely cause, not yet verified: the input is quantised "
        "with one scale for all observation features, coarse for small-range features such as "
        "CartPole's pole angle; returns still stay within 1.2%.",
    ),
]

COMMANDS = {
    "distill_cartpole": "python benchmarks/distill_targets.py cartpole",
    "distill_compression": "python benchmarks/distill_targets.py compression",
    "distill_collect": "python benchmarks/distill_targets.py collect",
    "teachers": "python benchmarks/teachers.py",
    "latency": "python benchmarks/latency.py",
    "throughput": "python benchmarks/throughput.py",
    "export_check": "python benchmarks/export_check.py",
}


def figures() -> dict[str, str]:
    from kd_rl import plots

    made = {}
    comp = RESULTS / "distill_compression.json"
    if comp.exists():
        data = json.loads(comp.read_text())
        results, teachers = {}, {}
        for runs in data.values():
            if not isinstance(runs, list):  # machine, command, targets
                continue
            env = runs[0]["env_id"]
            results.setdefault(env, []).extend((m["student_params"], m["student_mean_return"]) for m in runs)
            teachers[env] = (runs[0]["teacher_params"], runs[0]["teacher_mean_return"])
        for env in results:
            fig = plots.plot_compression_curve(
                {env: results[env]},
                teacher={env: teachers[env]},
                title=f"{env}: student return vs size (distilled, 3 seeds)",
            )
            name = f"img/compression_{env}.png"
            plots.save(fig, DOCS / name)
            made.setdefault("distill_compression", []).append(name)
    teach = RESULTS / "teachers.json"
    if teach.exists():
        runs = json.loads(teach.read_text())["runs"]
        curves = {
            f"{r['algo']} seed {r['seed']}": {
                "env_steps": [c[0] for c in r["curve"]],
                "mean_return": [c[1] for c in r["curve"]],
            }
            for r in runs
        }
        fig = plots.plot_training_curve(
            curves, title="Teacher training on CartPole-v1 (20-episode evaluations)", solved=475
        )
        plots.save(fig, DOCS / "img/teachers.png")
        made["teachers"] = ["img/teachers.png"]
    return made


def main() -> None:
    from kd_rl._io import write_text

    made = figures()
    parts = [INTRO]
    for name, title, text in SECTIONS:
        parts.append(f"## {title}\n\n{text}\n\n```text\n{COMMANDS[name]}\n```\n")
        result = RESULTS / f"{name}.md"
        parts.append(result.read_text() if result.exists() else "Not measured yet: run the command above.\n")
        for image in made.get(name, []):
            parts.append(f"\n![{title}]({image})\n")
    write_text(DOCS / "benchmarks.md", "\n".join(parts))
    print("wrote", DOCS / "benchmarks.md")


if __name__ == "__main__":
    main()
