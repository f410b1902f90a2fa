"""Draw docs/img/architecture.png: how data flows through kd_rl (python scripts/architecture_figure.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "img" / "architecture.png"

# name: (x, y, width, height, colour, text)
BOXES = {
    "cli": (4.4, 8.2, 3.4, 1.2, "#e8eaf6", "kd-rl (cli.py)\nflags -> a config"),
    "config": (8.6, 8.2, 3.4, 1.2, "#e8eaf6", "DistillConfig (config.py)\n1..N tasks, checked"),
    "teacher": (13.0, 8.2, 3.4, 1.2, "#fff3e0", "teacher.keras\n(zoo, or train-teacher)"),
    "envs": (0.2, 5.6, 3.4, 1.6, "#e8f5e9", "EnvGroup (envs.py)\nGymnasium, checked:\nfinite, in its space"),
    "collect": (
        4.4,
        5.6,
        3.4,
        1.6,
        "#e8f5e9",
        "Collector / Distributed-\nCollector: collect(n) ->\n(states, teacher outputs)",
    ),
    "loop": (8.6, 5.6, 3.4, 1.6, "#e3f2fd", "train_loop, 1..N tasks\n(distill_policy /\ndistill_multitask)"),
    "step": (13.0, 5.6, 3.4, 1.6, "#e3f2fd", "make_distill_step\n1..N tasks, strategy=...\nloss_weight: T·max(T,1)"),
    "buffer": (4.4, 3.0, 3.4, 1.2, "#e3f2fd", "ReplayBuffer (data.py)"),
    "evaluate": (8.6, 3.0, 3.4, 1.2, "#f3e5f5", "evaluate.py: seeded\nepisodes, normalised score"),
    "folder": (13.0, 3.0, 3.4, 1.2, "#fce4ec", "run folder (_io.py): lock,\ncheckpoint, swap-in"),
    "outputs": (
        13.0,
        0.4,
        3.4,
        1.6,
        "#fce4ec",
        "student.keras, metrics.json,\ncurve.csv, tensorboard/,\ncheckpoint.npz",
    ),
}
ARROWS = [
    ("cli", "config", ""),
    ("config", "loop", ""),
    ("teacher", "loop", ""),
    ("loop", "collect", "n steps"),
    ("collect", "envs", "act"),
    ("collect", "buffer", "label"),
    ("buffer", "loop", "sample"),
    ("loop", "step", "batches"),
    ("loop", "folder", "every(n)"),
    ("folder", "outputs", ""),
    ("loop", "evaluate", "curve, final"),
]


def _centre(name: str) -> tuple[float, float]:
    x, y, w, h, *_ = BOXES[name]
    return x + w / 2, y + h / 2


def _edge(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """The point where the line from the box's centre to ``towards`` leaves the box."""
    x, y, w, h, *_ = BOXES[name]
    cx, cy = _centre(name)
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def main() -> Path:
    fig, ax = plt.subplots(figsize=(12.0, 7.2))
    ax.set_xlim(0, 16.6)
    ax.set_ylim(0, 9.6)
    ax.axis("off")
    for x, y, w, h, colour, text in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=colour, ec="#37474f", lw=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)
    for start, end, label in ARROWS:
        a, b = _edge(start, _centre(end)), _edge(end, _centre(start))
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color="#37474f", lw=1.2))
        if label:
            middle = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + 0.05)
            ax.text(*middle, label, ha="center", va="bottom", fontsize=8, color="#1a237e")
    ax.set_title("kd_rl: from a config to a run folder", fontsize=12)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    return OUT


if __name__ == "__main__":
    print(f"wrote {main()}")
