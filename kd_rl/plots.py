"""Figures for runs, notebooks and docs (matplotlib, Agg backend).

Every figure has a title, labelled axes with units and a legend, and is
sized to read at 100% zoom. Each function returns the ``Figure``; the
``save`` helper writes PNGs atomically.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

import matplotlib

# Headless by default (CLI, CI), but never override a backend already chosen,
# such as a notebook's inline backend (Jupyter sets MPLBACKEND).
if not os.environ.get("MPLBACKEND") and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kd_rl._io import atomic_path
from kd_rl.config import DistillConfig
from kd_rl.errors import KdRlError

__all__ = [
    "read_curve",
    "plot_training_curve",
    "plot_distillation_curve",
    "plot_comparison_bars",
    "plot_compression_curve",
    "plot_loss_comparison",
    "plot_runs",
    "seed_mean_curve",
    "save",
]

_FIGSIZE = (7.0, 4.2)


def read_curve(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Columns of a run's ``curve.csv`` as float arrays."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {key: np.array([float(r[key]) if r[key] not in ("", "None") else np.nan for r in rows]) for key in rows[0]}


def save(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def _band(ax, curve: dict, color: str) -> None:
    """Shade a curve's spread over seeds, ``mean_return_low`` to ``mean_return_high``, where it has one."""
    if "mean_return_low" in curve:
        ax.fill_between(curve["env_steps"], curve["mean_return_low"], curve["mean_return_high"], color=color, alpha=0.2)


def plot_training_curve(curves: dict[str, dict], title: str = "Teacher training", solved: float | None = None):
    """Return vs env steps of one or more teacher runs (``{label: curve}``).

    A curve with ``mean_return_low`` and ``mean_return_high`` (`seed_mean_curve`)
    is drawn as its mean with the spread shaded.
    """
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    for i, (label, curve) in enumerate(curves.items()):
        ax.plot(curve["env_steps"], curve["mean_return"], marker="o", markersize=3, color=f"C{i}", label=label)
        _band(ax, curve, f"C{i}")
    if solved is not None:
        ax.axhline(solved, color="grey", linestyle=":", label=f"solved ({solved:g})")
    ax.set(title=title, xlabel="environment steps", ylabel="mean episode return (evaluation)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_distillation_curve(curves: dict[str, dict], teacher_return: float | None = None, title: str = "Distillation"):
    """Student return (and agreement, right axis) vs teacher-labelled env steps.

    A curve with ``mean_return_low`` and ``mean_return_high`` (`seed_mean_curve`)
    is drawn as its mean with the spread shaded.
    """
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    ax2 = ax.twinx()
    for i, (label, curve) in enumerate(curves.items()):
        color = f"C{i}"
        _band(ax, curve, color)
        ax.plot(
            curve["env_steps"],
            curve["mean_return"],
            marker="o",
            markersize=3,
            color=color,
            label=f"{label}: student return",
        )
        if "agreement" in curve:
            ax2.plot(
                curve["env_steps"],
                curve["agreement"],
                linestyle="--",
                color=color,
                alpha=0.6,
                label=f"{label}: agreement",
            )
    if teacher_return is not None:
        ax.axhline(teacher_return, color="black", linestyle=":", label=f"teacher return ({teacher_return:.1f})")
    ax.set(title=title, xlabel="teacher-labelled environment steps", ylabel="mean episode return (evaluation)")
    ax2.set_ylabel("student-teacher action agreement (fraction)")
    ax2.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right", fontsize="small")
    return fig


def plot_comparison_bars(
    names: Sequence[str],
    params: Sequence[int],
    returns: Sequence[float],
    errors: Sequence[float] | None = None,
    title: str = "Teacher vs students",
):
    """Side-by-side bars: parameter counts (log scale) and mean returns."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 4.0))
    colors = [f"C{i}" for i in range(len(names))]
    x = np.arange(len(names))
    bars = ax1.bar(x, params, color=colors, label=list(names))
    log = max(params) / max(min(params), 1) > 20  # a log axis only where sizes span decades
    if log:
        ax1.set_yscale("log")
        ax1.set_ylim(bottom=1)
    ax1.bar_label(bars, labels=[f"{p:,}" for p in params], fontsize="small")
    ax1.set(
        title="Size",
        xlabel="policy",
        ylabel="parameters" + (" (log scale)" if log else ""),
        xticks=x,
        xticklabels=names,
    )
    ax2.bar(x, returns, yerr=errors, capsize=4, color=colors, label=list(names))
    ax2.set(title="Performance", xlabel="policy", ylabel="mean episode return", xticks=x, xticklabels=names)
    for ax in (ax1, ax2):
        ax.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize="small", loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_compression_curve(
    results: dict[str, list[tuple[int, float]]],
    teacher: dict[str, tuple[int, float]] | None = None,
    title: str = "Compression: return vs student size",
):
    """Return vs student parameters (log x), one line per environment, spread over seeds.

    Args:
        results: ``{label: [(params, return), ...]}`` with one pair per seed and size.
        teacher: ``{label: (params, return)}`` drawn as stars.
    """
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    for i, (label, pairs) in enumerate(results.items()):
        pairs = np.asarray(pairs, dtype=float)
        sizes = np.unique(pairs[:, 0])
        means = np.array([pairs[pairs[:, 0] == s, 1].mean() for s in sizes])
        lows = np.array([pairs[pairs[:, 0] == s, 1].min() for s in sizes])
        highs = np.array([pairs[pairs[:, 0] == s, 1].max() for s in sizes])
        ax.plot(sizes, means, marker="o", color=f"C{i}", label=f"{label}: student (mean over seeds)")
        ax.fill_between(sizes, lows, highs, color=f"C{i}", alpha=0.2, label=f"{label}: min-max over seeds")
        if teacher and label in teacher:
            ax.scatter(*teacher[label], marker="*", s=200, color=f"C{i}", edgecolor="black", label=f"{label}: teacher")
    ax.set_xscale("log")
    ax.set(title=title, xlabel="student parameters (log scale)", ylabel="mean episode return")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def plot_loss_comparison(
    results: dict[str, Sequence[float]],
    teacher_return: float | None = None,
    title: str = "Distillation loss and temperature",
):
    """Mean return (with spread over seeds) of students trained with each loss/temperature setting."""
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    labels = list(results)
    values = [np.asarray(results[k], dtype=float) for k in labels]
    x = np.arange(len(labels))
    ax.bar(
        x,
        [v.mean() for v in values],
        yerr=[v.std() for v in values],
        capsize=4,
        color=[f"C{i}" for i in x],
        label="student mean return ± std over seeds",
    )
    if teacher_return is not None:
        ax.axhline(teacher_return, color="black", linestyle=":", label=f"teacher ({teacher_return:.1f})")
    ax.set(title=title, xlabel="loss (temperature)", ylabel="mean episode return", xticks=x, xticklabels=labels)
    top = max([teacher_return or 0.0] + [float(v.mean() + v.std()) for v in values])
    ax.set_ylim(0, 1.25 * top)  # room for the legend above the bars
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper right", ncol=2)
    return fig


#: metrics.json keys that differ between runs of one setting (timings, where and how it ran, results).
_NOT_SETTINGS = {
    "seed", "command", "eval_seed", "periodic_eval_seed", "checkpoint_every", "eval_cache", "eval_cache_status",
    "ray_address", "strategy", "actors", "replicas", "profile", "versions",
}  # fmt: skip


def _setting_of(metrics: dict, kind: str) -> str:
    """What a run's metrics say it ran, without its seed: runs with equal settings are seeds of one experiment."""
    if kind == "teacher":
        keys = ["env_id", "algo", "hyperparameters_key", "hyperparameters", "hidden_units", "env_kwargs"]
    else:
        keys = sorted({f.name for f in fields(DistillConfig)} - _NOT_SETTINGS) + [
            "teacher",
            "teachers",
            "teacher_sha256",
        ]
    chosen = {}
    for key in keys:
        value = metrics.get(key)
        chosen[key] = {k: v for k, v in value.items() if k != "seed"} if isinstance(value, dict) else value
    return json.dumps(chosen, sort_keys=True, default=str)


def _same_steps(curves: Sequence[dict]) -> bool:
    """Whether the curves were evaluated at the same ``env_steps``."""
    steps = curves[0]["env_steps"]
    return all(len(c["env_steps"]) == len(steps) and np.array_equal(c["env_steps"], steps) for c in curves)


def seed_mean_curve(curves: Sequence[dict]) -> dict:
    """Several seeds' curves (the same ``env_steps``) as one: the mean of every column, and the return's
    spread as ``mean_return_low``/``mean_return_high`` (min and max over the seeds)."""
    steps = curves[0]["env_steps"]
    if not _same_steps(curves):
        raise KdRlError("the seeds' curves have different env_steps; plot them as separate runs")
    columns = set.intersection(*(set(c) for c in curves))
    with warnings.catch_warnings():  # a column empty at some point in every seed stays NaN there
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {k: np.nanmean([c[k] for c in curves], axis=0) for k in columns}
    returns = np.array([c["mean_return"] for c in curves])
    out["env_steps"] = steps
    out["mean_return_low"], out["mean_return_high"] = returns.min(axis=0), returns.max(axis=0)
    return out


def _label(names: list[str]) -> str:
    prefix = os.path.commonprefix(names).rstrip("-_ .")
    return prefix or " + ".join(names)


def plot_runs(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Draw the chart that fits the run folders and save it to ``out`` (PNG).

    Teacher runs (with ``teacher.keras``) give training curves; distillation
    runs (with ``student.keras``) give distillation curves with the teacher's
    return as a reference line. Runs whose settings differ only in their seed
    (and in how or where they ran) are drawn as one curve: the mean over the
    seeds, the min-max spread shaded, labelled with the runs' common name and
    the number of seeds.

    Raises:
        ValueError: If a folder is missing, lacks ``curve.csv``, or the runs mix kinds.
    """
    if Path(out).suffix.lower() != ".png":
        raise KdRlError(f"--out must be a .png file, got {str(out)!r}")
    kinds, curves, metrics = set(), {}, {}
    for run in map(Path, run_dirs):
        if not (run / "curve.csv").is_file() or not (run / "metrics.json").is_file():
            raise KdRlError(f"run folder {str(run)!r} has no curve.csv and metrics.json")
        kinds.add("student" if (run / "student.keras").is_file() else "teacher")
        curves[run.name] = read_curve(run / "curve.csv")
        metrics[run.name] = json.loads((run / "metrics.json").read_text())
    if len(kinds) != 1:
        raise KdRlError("plot either teacher runs or distillation runs, not both")
    (kind,) = kinds
    groups: dict[str, list[str]] = {}
    for name, m in metrics.items():
        groups.setdefault(_setting_of(m, kind), []).append(name)
    grouped = {}
    for names in groups.values():
        if len(names) > 1 and _same_steps([curves[n] for n in names]):
            label = f"{_label(names)} (mean of {len(names)} seeds, min-max shaded)"
            if label in grouped:  # another setting's runs share the name's prefix: name every run
                label = f"{' + '.join(names)} (mean of {len(names)} seeds, min-max shaded)"
            grouped[label] = seed_mean_curve([curves[n] for n in names])
        else:
            grouped.update({n: curves[n] for n in names})
    curves = grouped
    env = ", ".join(sorted({m.get("env_id", "?") for m in metrics.values()}))
    if kinds == {"teacher"}:
        fig = plot_training_curve(curves, title=f"Teacher training on {env}")
    else:
        teacher_returns = [m.get("teacher_mean_return") for m in metrics.values() if m.get("teacher_mean_return")]
        fig = plot_distillation_curve(
            curves,
            teacher_return=float(np.mean(teacher_returns)) if teacher_returns else None,
            title=f"Distillation on {env}",
        )
    return save(fig, out)
