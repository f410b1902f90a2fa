"""Shared helpers of the benchmark scripts: machine description and result files."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def machine() -> dict:
    """What the numbers were measured on."""
    import numpy as np
    import tensorflow as tf

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": bool(tf.config.list_physical_devices("GPU")),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def timed_distill(teacher, **config):
    """``distill_policy`` with ``DistillConfig(eval_every=0, **config)``: ``(student, metrics)``.

    ``metrics["total_seconds"]`` is the wall time of the whole call, final evaluations included.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kd_rl.distill import DistillConfig, distill_policy

    start = time.perf_counter()
    student, metrics = distill_policy(teacher, DistillConfig(eval_every=0, **config), progress=False)
    metrics["total_seconds"] = time.perf_counter() - start
    return student, metrics


def tflite_interpreter_fn(policy):
    """Time the TFLite interpreter alone: ``fn(x float32 [1, obs_dim])`` without ``TFLitePolicy``'s wrapper."""
    interpreter, inp, out = policy.interpreter, policy._input["index"], policy._output["index"]

    def fn(x):
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return fn


def curve_points(path, *columns: str) -> list[tuple]:
    """Rows of a run's ``curve.csv`` as ``(env_steps as int, *columns as floats)``."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kd_rl.plots import read_curve

    curve = read_curve(path)
    rows = zip(curve["env_steps"], *(curve[c] for c in columns))
    return [(int(steps), *(float(v) for v in values)) for steps, *values in rows]


def write_results(name: str, data: dict, table: str) -> None:
    """Write ``results/NAME.json`` and ``results/NAME.md`` (with the machine and command)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kd_rl._io import write_json, write_text

    script = Path(sys.argv[0]).resolve()
    repo = Path(__file__).resolve().parents[1]
    if script.is_relative_to(repo):
        script = script.relative_to(repo)  # the command as run from the repository root
    data = {"machine": machine(), "command": " ".join(["python", str(script), *sys.argv[1:]]), **data}
    write_json(RESULTS / f"{name}.json", data)
    m = data["machine"]
    header = (
        f"Measured with `{data['command']}` on {m['cpu']} ({m['cores']} cores, "
        f"{'GPU' if m['gpu'] else 'no GPU'}), TensorFlow {m['tensorflow']}, {m['date']}.\n\n"
    )
    write_text(RESULTS / f"{name}.md", header + table + "\n")
    print(header + table)
