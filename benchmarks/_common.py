"""Shared helpers of the benchmarks: the experiments, machine description, headline statistics and result files.

Every experiment of ``experiments.yml`` writes ``benchmarks/results/NAME.json`` and
``NAME.md`` through `write_results`. To try one without touching the committed
results, set ``KD_RL_BENCH_OUT`` to another folder: results (and the figures the
experiments and ``report.py`` draw, under ``img/``) go there instead, and
``report.py`` reads its results from there and writes its ``benchmarks.md`` there::

    KD_RL_BENCH_OUT=/tmp/bench python benchmarks/run.py latency --repeats 50

Headline statistics follow rliable (Agarwal et al., 2021): the interquartile
mean over seeds (`iqm`) with a percentile-bootstrap confidence interval
(`bootstrap_ci`), beside the worst seed (`summarise_runs`), since a mean of
three seeds hides how often a run fails.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import kd_rl  # noqa: E402, F401  (first: sets TF_USE_LEGACY_KERAS before anything touches tf.keras)

RESULTS = ROOT / "benchmarks" / "results"
EXPERIMENTS = ROOT / "benchmarks" / "experiments.yml"
DOCS = ROOT / "docs"
OUT_ENV = "KD_RL_BENCH_OUT"


def results_dir() -> Path:
    """Where results are read and written: ``$KD_RL_BENCH_OUT`` if set, else ``benchmarks/results``."""
    out = os.environ.get(OUT_ENV)
    return Path(out) if out else RESULTS


def docs_dir() -> Path:
    """Where the docs page and its figures go: ``$KD_RL_BENCH_OUT`` if set, else ``docs``."""
    out = os.environ.get(OUT_ENV)
    return Path(out) if out else DOCS


def experiments() -> dict[str, dict]:
    """The rows of ``experiments.yml``: results name -> ``{"run": "script.function", "params": {...}}``."""
    return yaml.safe_load(EXPERIMENTS.read_text())


def check_choices(name: str, values: Sequence, allowed: Sequence) -> None:
    """Raise ValueError naming parameter ``name`` if one of ``values`` is not among ``allowed``."""
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"{name}: {', '.join(map(str, unknown))} not among {', '.join(map(str, allowed))}")


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def machine() -> dict:
    """What the numbers were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    import keras
    import tensorflow as tf

    from kd_rl._io import cpu_name

    cpu = cpu_name()
    try:
        litert = version("ai-edge-litert")
    except PackageNotFoundError:
        litert = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "litert": litert,
        "numpy": np.__version__,
        "kd_rl": kd_rl.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --------------------------------------------------------------------------
# Headline statistics over seeds
# --------------------------------------------------------------------------


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% of the sorted values.

    ``int(0.25 * n)`` values are cut from each end, as ``scipy.stats.trim_mean(values,
    0.25)`` (rliable's IQM) does: for 10 seeds the mean of the middle 6; for 3 seeds, the mean.
    """
    x = np.sort(np.asarray(values, np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm needs at least one value, got none")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable[[np.ndarray], float] = iqm,
    n: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``stat`` over seeds: ``(low, high)``.

    ``n`` resamples of the values, with replacement and of the same size, each
    reduced by ``stat``; the interval is their ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles.
    """
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    samples = x[np.random.default_rng(seed).integers(0, x.size, size=(n, x.size))]
    stats = np.array([stat(s) for s in samples])
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def summarise_runs(runs: Sequence[dict], key: str, higher_is_better: bool = True) -> dict:
    """Headline numbers of ``run[key]`` over per-seed runs (each with a ``seed``).

    Returns:
        ``{"n", "iqm", "ci_low", "ci_high", "median", "mean", "worst", "worst_seed"}``:
        the IQM with its 95% bootstrap interval, and the worst seed (lowest, or
        highest where lower is better) with its value.
    """
    pairs = [(r["seed"], float(r[key])) for r in runs if r.get(key) is not None]
    if not pairs:
        raise ValueError(f"no run has a value for {key!r}")
    seeds, values = zip(*pairs)
    worst = int(np.argmin(values) if higher_is_better else np.argmax(values))
    low, high = bootstrap_ci(values)
    return {
        "n": len(values),
        "iqm": iqm(values),
        "ci_low": low,
        "ci_high": high,
        "median": float(np.median(values)),
        "mean": float(np.mean(values)),
        "worst": values[worst],
        "worst_seed": seeds[worst],
    }


def summary_row(label: str, s: dict, fmt: str = "{:.3f}") -> str:
    """One Markdown table row: label | n | IQM | 95% CI | worst (seed) | median."""
    f = fmt.format
    return (
        f"| {label} | {s['n']} | {f(s['iqm'])} | [{f(s['ci_low'])}, {f(s['ci_high'])}] | "
        f"{f(s['worst'])} (seed {s['worst_seed']}) | {f(s['median'])} |"
    )


SUMMARY_HEADER = (
    "| quantity | seeds | IQM | 95% CI of the IQM (bootstrap) | worst seed | median |\n|---|---|---|---|---|---|"
)


# --------------------------------------------------------------------------
# Running and timing
# --------------------------------------------------------------------------


@contextlib.contextmanager
def environment(**values: str):
    """Set environment variables for the ``with`` block, then put back what was there (or nothing)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def seed_band(runs: Sequence[Sequence]) -> dict:
    """Seeds' ``[[env_steps, return], ...]`` curves as one: at each step evaluated by any seed, the mean and the
    min-max of the seeds evaluated there (a run that stopped early, at its target, counts until it stopped).

    Returns ``{"env_steps", "mean_return", "mean_return_low", "mean_return_high"}`` arrays, what
    `kd_rl.plots.plot_training_curve` draws as a mean with its spread shaded.
    """
    import warnings

    steps = sorted({point[0] for run in runs for point in run})
    where = {step: i for i, step in enumerate(steps)}
    values = np.full((len(runs), len(steps)), np.nan)
    for j, run in enumerate(runs):
        for step, value in run:
            values[j, where[step]] = value
    with warnings.catch_warnings():  # a step no seed reached stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "env_steps": np.array(steps, dtype=float),
            "mean_return": np.nanmean(values, axis=0),
            "mean_return_low": np.nanmin(values, axis=0),
            "mean_return_high": np.nanmax(values, axis=0),
        }


def timed_distill(teacher, **config):
    """``distill_policy`` with ``DistillConfig(eval_every=0, **config)``: ``(student, metrics)``.

    ``metrics["total_seconds"]`` is the wall time of the whole call, final evaluations included.
    """
    from kd_rl.distill import DistillConfig, distill_policy

    start = time.perf_counter()
    student, metrics = distill_policy(teacher, DistillConfig(eval_every=0, **config), progress=False)
    metrics["total_seconds"] = time.perf_counter() - start
    return student, metrics


def stored_distill(store: str | os.PathLike | None, teacher, teacher_name: str, **config):
    """`timed_distill`, keeping each finished run under ``store`` so that a rerun picks up where one stopped.

    A run is the teacher (its name and a digest of its weights) with ``config``; it
    is kept in a folder named by a digest of these, as ``student.keras`` and then ``metrics.json`` (written last,
    atomically: a folder without it is a run that did not finish, and is run
    again). A stored run comes back as ``(student, metrics)`` with the CPU it ran
    on in ``metrics["cpu"]``. With ``store`` None every run is run.
    """
    import hashlib
    import json

    from kd_rl._io import cpu_name, save_model, write_json
    from kd_rl.models import load_policy, weights_sha256

    if store is None:
        student, metrics = timed_distill(teacher, **config)
        return student, {**metrics, "cpu": cpu_name()}
    key = {"teacher": teacher_name, "teacher_weights": weights_sha256(teacher)[:16], **config}
    key = json.loads(json.dumps(key, default=str))  # as metrics.json keeps it: tuples as lists
    folder = Path(store).expanduser() / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    if (folder / "metrics.json").exists():
        stored = json.loads((folder / "metrics.json").read_text())
        if stored.get("key") == key:
            print(f"stored run: {folder}", flush=True)
            return load_policy(folder / "student.keras"), stored["metrics"]
    student, metrics = timed_distill(teacher, **config)
    metrics = {**metrics, "cpu": cpu_name()}
    folder.mkdir(parents=True, exist_ok=True)
    save_model(student, folder / "student.keras")
    write_json(folder / "metrics.json", {"key": key, "metrics": metrics})
    return student, metrics


def litert_step_us(path, repeats: int) -> dict:
    """Median and 90th percentile of one batch-1 LiteRT step of the ``.tflite`` at ``path``: every input set
    to zeros (the observation, and a recurrent student's state), one invoke, every output read."""
    from kd_rl.policies import TFLitePolicy

    interpreter = TFLitePolicy(path).interpreter
    feeds = [(d["index"], np.zeros(d["shape"], d["dtype"])) for d in interpreter.get_input_details()]
    reads = [d["index"] for d in interpreter.get_output_details()]
    times = []
    for i in range(repeats + 200):
        start = time.perf_counter()
        for index, value in feeds:
            interpreter.set_tensor(index, value)
        interpreter.invoke()
        for index in reads:
            interpreter.get_tensor(index)
        if i >= 200:  # the first calls warm the caches
            times.append((time.perf_counter() - start) * 1e6)
    return {"median_us": float(np.median(times)), "p90_us": float(np.percentile(times, 90)), "calls": repeats}


def tflite_interpreter_fn(policy):
    """Time the LiteRT interpreter alone: ``fn(x float32 [1, obs_dim])`` without ``TFLitePolicy``'s wrapper."""
    interpreter, inp, out = policy.interpreter, policy._input["index"], policy._output["index"]

    def fn(x):
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return fn


def curve_points(path, *columns: str) -> list[tuple]:
    """Rows of a run's ``curve.csv`` as ``(env_steps as int, *columns as floats)``."""
    from kd_rl.plots import read_curve

    curve = read_curve(path)
    rows = zip(curve["env_steps"], *(curve[c] for c in columns))
    return [(int(steps), *(float(v) for v in values)) for steps, *values in rows]


def train_to_threshold(
    entry: str,
    algo: str,
    seed: int,
    budget: int,
    eval_every: int,
    threshold: float,
    episodes: int,
    overrides: dict | None = None,
) -> dict:
    """kd_rl's ``train_teacher`` on entry ``entry``, stopped at the first evaluation reaching ``threshold``.

    Every ``eval_every`` env steps the greedy policy plays ``episodes`` episodes;
    ``overrides`` change the entry's other hyperparameters. Returns the env steps and
    seconds at which the threshold was reached (None if not within ``budget``),
    the curve as ``(env_steps, mean_return, wall_seconds)`` rows, and the run's
    metrics (``metrics``).
    """
    from kd_rl.teachers import train_teacher

    with tempfile.TemporaryDirectory() as tmp:
        m = train_teacher(
            entry,
            algo,
            Path(tmp) / "run",
            steps=budget,
            seed=seed,
            overrides={**(overrides or {}), "periodic_eval_episodes": episodes},
            eval_every=eval_every,
            eval_episodes=episodes,
            progress=False,
            stop_return=threshold,
        )
        curve = curve_points(Path(tmp) / "run" / "curve.csv", "mean_return", "wall_seconds")
    solved = next(((s, w) for s, r, w in curve if r >= threshold), None)
    return {
        "solved_at_env_steps": solved[0] if solved else None,
        "solved_after_seconds": solved[1] if solved else None,
        "curve": curve,
        "metrics": m,
    }


def command_line() -> str:
    """This benchmark's command, as run from the repository root (``python benchmarks/run.py NAME ARGS``)."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(ROOT):
        script = script.relative_to(ROOT)
    return " ".join(["python", str(script), *sys.argv[1:]])


def write_results(name: str, data: dict, table: str) -> None:
    """Write ``NAME.json`` and ``NAME.md`` (with the machine and command) to `results_dir`.

    The machine and command are this run's (`machine`, `command_line`), or those
    ``data`` holds under ``machine`` and ``command``: results of an earlier run
    whose table is only being rewritten.
    """
    from kd_rl._io import write_json, write_text

    data = {"machine": data.get("machine") or machine(), "command": data.get("command") or command_line(), **data}
    out = results_dir()
    write_json(out / f"{name}.json", data)
    m = data["machine"]
    header = (
        f"Measured with `{data['command']}` on {m['cpu']} ({m['cores']} cores, "
        f"{'GPU' if m['gpu'] else 'no GPU'}), TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
        f"LiteRT {m['litert']}, {m['date']}.\n\n"
    )
    write_text(out / f"{name}.md", header + table + "\n")
    print(header + table)
