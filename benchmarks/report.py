"""Write docs/benchmarks.md and its figures from benchmarks/results/.

Run after the benchmarks; every number on the page comes from their JSON and
Markdown results, each with the command that produced it. The page's text is
``page.md``: the page itself, with a line ``<!-- results: NAME -->`` in each
section where experiment NAME's results table and figures go. With
``KD_RL_BENCH_OUT`` set (see ``_common.py``) it reads the results there and
writes the page and its figures there too.

    python benchmarks/report.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from _common import docs_dir, experiments, results_dir, seed_band

PAGE = Path(__file__).resolve().with_name("page.md")
#: A line of page.md where an experiment's results table and figures go.
MARKER = re.compile(r"^<!-- results: (\w+) -->\n", re.MULTILINE)


def figures() -> dict[str, list[str]]:
    """Draw the figures of the experiments that have results: experiment -> figure paths under `docs_dir`."""
    from kd_rl import plots

    results, docs = results_dir(), docs_dir()
    made = {}
    sweep = results / "compression.json"
    if sweep.exists():
        data = json.loads(sweep.read_text())["results"]
        pairs = {
            env: [(m["student_params"], m["student_mean_return"]) for s in r["sizes"].values() for m in s["runs"]]
            for env, r in data.items()
        }
        for env, r in data.items():
            seeds = len(next(iter(r["sizes"].values()))["runs"])
            fig = plots.plot_compression_curve(
                {env: pairs[env]},
                teacher={env: (r["teacher_params"], r["teacher_mean_return"])},
                title=f"{env}: the compression sweep ({seeds} seeds per size)",
            )
            name = f"img/sweep_{env}.png"
            plots.save(fig, docs / name)
            made.setdefault("compression", []).append(name)
    temperature = results / "temperature.json"
    if temperature.exists():
        from temperature import FIGURE
        from temperature import figure as temperature_figure

        plots.save(temperature_figure(json.loads(temperature.read_text())), docs / FIGURE)
        made["temperature"] = [FIGURE]
    eff = results / "sample_efficiency.json"
    if eff.exists():
        data = json.loads(eff.read_text())
        methods = sorted({r["method"] for r in data["runs"]})
        curves = {}
        for method in methods:
            runs = [r["curve"] for r in data["runs"] if r["method"] == method]
            curves[f"{method} (mean of {len(runs)} seeds, min-max shaded)"] = seed_band(runs)
        fig = plots.plot_training_curve(
            curves, title="50-unit network on CartPole-v1: distilled vs DQN from scratch", solved=data["threshold"]
        )
        fig.axes[0].set_xscale("log")
        fig.axes[0].set_xlabel("environment steps (log scale)")
        plots.save(fig, docs / "img/sample_efficiency.png")
        made["sample_efficiency"] = ["img/sample_efficiency.png"]
    kick = results / "kickstart.json"
    if kick.exists():
        from kickstart import FIGURES
        from kickstart import figure as kickstart_figure

        data = json.loads(kick.read_text())
        cases = experiments()["kickstart"]["params"]["kickstart_cases"]
        for which, name in FIGURES.items():
            plots.save(kickstart_figure(data, which, cases), docs / name)
        made["kickstart"] = list(FIGURES.values())
    teach = results / "teachers.json"
    if teach.exists():
        import matplotlib.pyplot as plt

        data = json.loads(teach.read_text())
        runs = [r for r in data["runs"] if "framework" in r]
        pairs = sorted({(r["env"], r["algo"]) for r in runs})
        if pairs:
            cols = min(len(pairs), 4)
            rows = -(-len(pairs) // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
            for ax in axes.flat[len(pairs) :]:
                ax.set_visible(False)
            for ax, (env, algo) in zip(axes.flat, pairs):
                for r in runs:
                    if (r["env"], r["algo"]) != (env, algo):
                        continue
                    color, style = ("C0", "-") if r["framework"] == "kd_rl" else ("C1", "--")
                    label = f"{r['framework']}" if r["seed"] == min(x["seed"] for x in runs) else None
                    steps = [c[0] for c in r["curve"]]
                    ax.plot(
                        steps, [c[1] for c in r["curve"]], style, color=color, marker="o", markersize=2, label=label
                    )
                ax.axhline(data["cases"][env]["threshold"], color="grey", linestyle=":")
                ax.set(title=f"{env} {algo}", xlabel="env steps")
                ax.grid(alpha=0.3)
            for row in axes:
                row[0].set_ylabel("greedy evaluation return")
            axes[0][0].legend()
            fig.suptitle("Teachers: kd_rl (solid) and Stable-Baselines3 (dashed), each seed until the threshold")
            fig.tight_layout()
            plots.save(fig, docs / "img/teachers.png")
            made["teachers"] = ["img/teachers.png"]
    return made


def main() -> None:
    from kd_rl._io import write_text

    made = figures()
    page = PAGE.read_text()

    def results(marker: re.Match) -> str:
        """The results table and figures of the section that ``marker`` ends."""
        name = marker[1]
        title = re.findall(r"^## (.*)$", page[: marker.start()], re.MULTILINE)[-1]
        result = results_dir() / f"{name}.md"
        text = result.read_text() if result.exists() else "Not measured yet: run the command above.\n"
        return text + "".join(f"\n\n![{title}]({image})\n" for image in made.get(name, []))

    write_text(docs_dir() / "benchmarks.md", MARKER.sub(results, page))
    print("wrote", docs_dir() / "benchmarks.md")


if __name__ == "__main__":
    main()
