"""Draw the concepts page's figures (python scripts/concepts_figures.py).

- ``docs/img/distillation-loop.png``: the live distillation loop, collect -> label -> buffer -> update,
  with who acts and when the curve is evaluated;
- ``docs/img/softmax-temperature.png``: what a temperature does to a softmax, for an actor's logits
  and for a DQN's Q-values (the numbers are computed here, with NumPy).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"

# name: (x, y, width, height, colour, text)
LOOP_BOXES = {
    "envs": (0.2, 4.2, 4.0, 1.5, "#e8f5e9", "environments\n(num_envs = 8,\nstepped together)"),
    "teacher": (5.6, 4.2, 4.0, 1.5, "#fff3e0", "the teacher labels every state:\nlogits, Q-values or a Gaussian"),
    "buffer": (11.0, 4.2, 4.0, 1.5, "#e3f2fd", "replay buffer\n(state, teacher outputs)"),
    "update": (11.0, 0.6, 4.0, 1.5, "#e3f2fd", "100 updates per round:\nloss(teacher, student)\nat temperature T"),
    "student": (5.6, 0.6, 4.0, 1.5, "#f3e5f5", "the student\n(only its weights change)"),
    "curve": (0.2, 0.6, 4.0, 1.5, "#fce4ec", "every eval_every states:\n10 fresh seeded episodes\n-> a curve point"),
}
# (start point, end point, label, label position, curvature): the anchors are on the boxes' edges.
LOOP_ARROWS = [
    ((4.2, 4.95), (5.6, 4.95), "states", (4.9, 5.1), 0.0),
    ((9.6, 4.95), (11.0, 4.95), "500 states\na round", (10.3, 5.1), 0.0),
    ((13.0, 4.2), (13.0, 2.1), "batches\nof 128", (13.15, 3.15), 0.0),
    ((11.0, 1.35), (9.6, 1.35), "new\nweights", (10.3, 1.5), 0.0),
    ((6.4, 2.1), (3.4, 4.2), "the student acts\n(collect = student: DAgger;\nor teacher, or mixed)", (2.3, 2.5), 0.0),
    ((5.6, 1.35), (4.2, 1.35), "", None, 0.0),
]


def _box(ax, name):
    x, y, w, h, colour, text = LOOP_BOXES[name]
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.08", facecolor=colour, edgecolor="#455a64"))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)


def distillation_loop(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 4.8))
    for name in LOOP_BOXES:
        _box(ax, name)
    for start, end, label, where, bend in LOOP_ARROWS:
        ax.add_patch(
            FancyArrowPatch(
                start, end, arrowstyle="-|>", mutation_scale=14, color="#37474f", connectionstyle=f"arc3,rad={bend}"
            )
        )
        if label:
            ha = "left" if start[0] == end[0] else "center"
            ax.text(*where, label, ha=ha, va="bottom", fontsize=8, color="#37474f")
    ax.text(
        7.6, 6.2, "one round of distill_policy's loop, repeated until `steps` states are labelled; then the teacher,\n"
        "the student and a random policy play the same 100 seeded episodes (the final evaluation)",
        ha="center", fontsize=8.5, style="italic",
    )  # fmt: skip
    ax.set(xlim=(0, 15.3), ylim=(0.3, 6.9))
    ax.axis("off")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def softmax(x, t):
    z = np.asarray(x, np.float64) / t
    z -= z.max()
    e = np.exp(z)
    return e / e.sum()


def _softmax_bars(ax, values, temperatures, symbol: str, actions: list[str], title: str, ylabel: str) -> None:
    """Grouped bars of softmax(values / t) for each temperature t, one group per action, each bar labelled."""
    width = 0.8 / len(temperatures)
    for i, t in enumerate(temperatures):
        offset = (i - (len(temperatures) - 1) / 2) * width
        bars = ax.bar(np.arange(len(values)) + offset, softmax(values, t), width, label=f"{symbol} = {t:g}")
        ax.bar_label(bars, fmt="%.2f", fontsize=6.5)
    ax.set(title=title, xticks=range(len(values)), xticklabels=actions, ylabel=ylabel, ylim=(0, 1.05))
    ax.legend(fontsize=8)


def softmax_temperature(path: Path) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    _softmax_bars(
        left, np.array([2.0, 1.0, 0.1]), [0.5, 1.0, 2.0, 5.0], "T", ["action 0", "action 1", "action 2"],
        "an actor's logits (2.0, 1.0, 0.1): T > 1 softens", "softmax(logits / T)",
    )  # fmt: skip
    _softmax_bars(
        right, np.array([61.3, 61.8]), [0.01, 0.1, 1.0, 10.0], "τ", ["left", "right"],
        "a DQN's Q-values (61.3, 61.8): small τ sharpens", "softmax(Q / τ)",
    )  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    IMG.mkdir(parents=True, exist_ok=True)
    distillation_loop(IMG / "distillation-loop.png")
    softmax_temperature(IMG / "softmax-temperature.png")
    print(f"wrote {IMG / 'distillation-loop.png'} and {IMG / 'softmax-temperature.png'}")
