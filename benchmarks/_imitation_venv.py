"""A throwaway imitation venv, and runs of `_dagger_peer.py` in it: DAgger's side of the distillation race.

imitation (the HumanCompatibleAI library) runs on PyTorch and Stable-Baselines3,
which kd_rl's TensorFlow venv should not carry, so its DAgger runs in a venv of its
own, made once by `imitation_python` and reused after that::

    from _imitation_venv import run_dagger
    r = run_dagger("teacher.npz", seed=0, budget=10_000, hidden=[50], eval_every=2_000,
                   eval_episodes=10, final_episodes=100, threshold=500.0)
    r["train_seconds"], r["seconds_to_threshold"], r["final"]["mean_return"]

The teacher is kd_rl's NumPy export of a discrete MLP teacher (``kd-rl export
CartPole-v1-dqn --format numpy --out teacher.npz``, or ``kd_rl.export.export_model(model,
"numpy", path)``), which the peer reads without kd_rl.

The venv lives at ``~/.cache/kd_rl/imitation-venv`` (``$KD_RL_IMITATION_VENV`` moves
it) and is built from the Python that runs this module. It gets ``imitation==1.0.1``,
which brings its own pins (``stable-baselines3~=2.2.1``, ``gymnasium~=0.29``), and a
CPU-only PyTorch taken as ``_sb3_venv.py`` takes it: from ``$KD_RL_SB3_TORCH_INDEX``
if set, else a torch wheel among pip's ``find-links``, else plain ``torch`` from PyPI.

A marker file in the venv records what was installed; while it matches what is
asked for, `imitation_python` returns at once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from _sb3_venv import TORCH_INDEX_ENV, run_peer, torch_venv

VENV_ENV = "KD_RL_IMITATION_VENV"
IMITATION_SPEC = "imitation==1.0.1"
PEER = Path(__file__).resolve().with_name("_dagger_peer.py")
_MARKER = "kd_rl-imitation.json"
_REPORTED = ("imitation", "stable-baselines3", "torch", "gymnasium", "numpy")


def venv_dir() -> Path:
    """Where the imitation venv lives: ``$KD_RL_IMITATION_VENV`` if set, else ``~/.cache/kd_rl/imitation-venv``."""
    path = os.environ.get(VENV_ENV)
    return Path(path).expanduser() if path else Path.home() / ".cache" / "kd_rl" / "imitation-venv"


def _wanted() -> dict:
    """What the venv must hold; a marker that differs from this means install again."""
    return {
        "python": sys.version.split()[0],
        "requirements": [IMITATION_SPEC, "torch"],
        "torch_index": os.environ.get(TORCH_INDEX_ENV) or None,
    }


def imitation_python() -> Path:
    """Make the imitation venv if it is missing or out of date, and return its ``python``.

    Returns:
        The venv's interpreter, e.g. ``~/.cache/kd_rl/imitation-venv/bin/python``.

    Raises:
        RuntimeError: if making the venv or a pip install fails (pip's output is on stderr).
    """
    return torch_venv(venv_dir(), _wanted(), _REPORTED, _MARKER, label="imitation")


def installed_versions() -> dict:
    """The versions the venv's marker records (``imitation``, ``stable-baselines3``, ``torch``, ...)."""
    return json.loads((imitation_python().parent.parent / _MARKER).read_text())["installed"]


def run_dagger(
    teacher_npz: str,
    seed: int,
    budget: int,
    hidden: list[int],
    eval_every: int,
    eval_episodes: int,
    final_episodes: int,
    threshold: float,
    threads: int = 1,
) -> dict:
    """Distil the teacher in ``teacher_npz`` with imitation's DAgger in the imitation venv.

    Runs `_dagger_peer.py` (its progress lines pass through to our stderr) and
    returns the JSON it prints: ``train_seconds``, ``curve`` (``labelled_states``,
    ``train_seconds_so_far``, ``mean_return`` rows), ``seconds_to_threshold``,
    ``final``, ``total_seconds``, ``labelled_states``, ``student_parameters``, the
    DAgger settings, and ``versions``, the venv's installed versions.

    Raises:
        RuntimeError: if the run fails or prints no result; the message holds the
            last lines of its stderr.
    """
    python = imitation_python()
    cmd = [str(python), str(PEER), "--teacher", str(Path(teacher_npz).resolve()), "--seed", str(seed)]
    cmd += ["--budget", str(budget), "--hidden", *(str(h) for h in hidden), "--eval-every", str(eval_every)]
    cmd += ["--eval-episodes", str(eval_episodes), "--final-episodes", str(final_episodes)]
    cmd += ["--threshold", str(threshold), "--threads", str(threads)]
    record = run_peer(cmd, f"DAgger peer ({Path(teacher_npz).name}, seed {seed})")
    record["versions"] = installed_versions()
    return record
