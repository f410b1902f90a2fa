"""A throwaway Stable-Baselines3 venv, and runs of `_sb3_peer.py` in it (issue #16).

SB3 needs PyTorch, which kd_rl's TensorFlow venv should not carry, so the peer
runs in a venv of its own, made once by `sb3_python` and reused after that::

    from _sb3_venv import run_sb3
    r = run_sb3("CartPole-v1", "ppo", seed=0, budget=100_000, eval_every=5_000,
                eval_episodes=20, threshold=475.0)
    r["solved_at_env_steps"], r["solved_after_seconds"]

The venv lives at ``~/.cache/kd_rl/sb3-venv`` (``$KD_RL_SB3_VENV`` moves it) and
is built from the Python that runs this module. It gets ``stable-baselines3>=2.3,<3``,
``gymnasium[box2d]`` at the version kd_rl's venv has, PyYAML (the peer reads RL-Zoo's
settings from ``rl_zoo.yml``), and a CPU-only PyTorch where one can be had:

1. ``$KD_RL_SB3_TORCH_INDEX``, if set: an index of CPU wheels (PyTorch's own CPU
   index, on a machine that reaches it) to take ``torch`` from;
2. else a torch wheel among pip's configured ``find-links`` (some machines keep a
   ``+cpu`` build on disk): tried with ``--no-index``, so it fails at once where
   there is none;
3. else plain ``torch`` from PyPI, whose Linux wheels bring the CUDA libraries
   (several GB) that a CPU run never loads.

A marker file in the venv records what was installed; while it matches what is
asked for, `sb3_python` returns at once.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

VENV_ENV = "KD_RL_SB3_VENV"
TORCH_INDEX_ENV = "KD_RL_SB3_TORCH_INDEX"
SB3_SPEC = "stable-baselines3>=2.3,<3"
YAML_SPEC = "pyyaml>=5.1"
PEER = Path(__file__).resolve().with_name("_sb3_peer.py")
_MARKER = "kd_rl-sb3.json"
_REPORTED = ("stable-baselines3", "torch", "gymnasium", "box2d", "numpy", "pyyaml")


def venv_dir() -> Path:
    """Where the SB3 venv lives: ``$KD_RL_SB3_VENV`` if set, else ``~/.cache/kd_rl/sb3-venv``."""
    path = os.environ.get(VENV_ENV)
    return Path(path).expanduser() if path else Path.home() / ".cache" / "kd_rl" / "sb3-venv"


def _log(message: str, label: str = "SB3") -> None:
    print(f"[{label.lower()}-venv] {message}", file=sys.stderr, flush=True)


def _wanted() -> dict:
    """What the venv must hold; a marker that differs from this means install again."""
    return {
        "python": sys.version.split()[0],
        "requirements": [SB3_SPEC, f"gymnasium[box2d]=={version('gymnasium')}", YAML_SPEC, "torch"],
        "torch_index": os.environ.get(TORCH_INDEX_ENV) or None,
    }


def _pip(python: Path, *args: str, check: bool = True, label: str = "SB3") -> bool:
    """Run pip in the venv, its output on our stderr (the install's progress); True if it succeeded."""
    _log("pip " + " ".join(args), label)
    env = {**_clean_env(), "PIP_PROGRESS_BAR": "off", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([str(python), "-m", "pip", *args], stdout=sys.stderr, stderr=sys.stderr, env=env)
    if check and done.returncode != 0:
        raise RuntimeError(f"{label} venv: `pip {' '.join(args)}` failed with exit code {done.returncode}")
    return done.returncode == 0


def _clean_env() -> dict:
    """Our environment without what points Python at kd_rl's venv or sources."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(name, None)
    return env


def torch_venv(root: Path, wanted: dict, reported: Sequence[str], marker: str, label: str = "SB3") -> Path:
    """Make a venv at ``root`` with a CPU PyTorch and ``wanted["requirements"]``, unless its marker matches.

    torch comes first, as the module doc says (``wanted["torch_index"]``, else a
    ``find-links`` wheel, else the package index); then the requirements, torch
    among them. The marker file ``root / marker`` records ``wanted`` and the
    installed versions of the ``reported`` distributions (its ``installed`` entry).

    Args:
        root: The venv's folder.
        wanted: What the venv must hold: ``requirements`` (pip specifiers) and
            ``torch_index`` (an index URL or None), with anything else that should
            trigger a new install when it changes (e.g. ``python``).
        reported: Distributions whose versions the marker records.
        marker: The marker file's name inside ``root``.
        label: The venv's name in progress lines and errors.

    Returns:
        The venv's interpreter, ``root / "bin" / "python"``.

    Raises:
        RuntimeError: if making the venv or a pip install fails (pip's output is on stderr).
    """
    python = root / "bin" / "python"
    marker_file = root / marker
    if python.exists() and marker_file.exists():
        try:
            if {k: v for k, v in json.loads(marker_file.read_text()).items() if k in wanted} == wanted:
                return python
        except (OSError, ValueError):
            pass
    started = time.perf_counter()
    if not python.exists():
        _log(f"creating {root} with {sys.executable}", label)
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        # The kd_rl venv's interpreter makes a venv on the same base Python, not inside kd_rl's.
        if subprocess.run([sys.executable, "-m", "venv", str(root)], env=_clean_env()).returncode != 0:
            raise RuntimeError(f"{label} venv: `{sys.executable} -m venv {root}` failed")
    marker_file.unlink(missing_ok=True)
    if wanted["torch_index"]:
        _pip(python, "install", "--index-url", wanted["torch_index"], "torch", label=label)
    elif _pip(python, "install", "--no-index", "--no-deps", "torch>=2.3", check=False, label=label):
        _log("torch came from a local wheel (find-links); its dependencies come next", label)
    else:
        _log("no local torch wheel: taking torch from the package index (its CUDA libraries too)", label)
    # torch is named again so that pip keeps the one just installed and adds its dependencies.
    _pip(python, "install", *wanted["requirements"], label=label)
    versions = json.loads(
        subprocess.run(
            [
                str(python),
                "-c",
                "import json, sys; from importlib.metadata import version; "
                "print(json.dumps({n: version(n) for n in sys.argv[1:]}))",
                *reported,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=_clean_env(),
        ).stdout
    )
    tmp = marker_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({**wanted, "installed": versions}, indent=1) + "\n")
    tmp.replace(marker_file)
    _log(
        f"ready in {time.perf_counter() - started:.0f} s: " + ", ".join(f"{k} {v}" for k, v in versions.items()), label
    )
    return python


def sb3_python() -> Path:
    """Make the SB3 venv if it is missing or out of date, and return its ``python``.

    Returns:
        The venv's interpreter, e.g. ``~/.cache/kd_rl/sb3-venv/bin/python``.

    Raises:
        RuntimeError: if making the venv or a pip install fails (pip's output is on stderr).
    """
    return torch_venv(venv_dir(), _wanted(), _REPORTED, _MARKER)


def run_peer(cmd: list[str], what: str) -> dict:
    """Run a peer script (``cmd``), its stderr passing through to ours, and return the JSON it prints last.

    Raises:
        RuntimeError: if it fails or prints no JSON line; the message names ``what``
            ran and holds the last lines of its stderr.
    """
    tail: collections.deque[str] = collections.deque(maxlen=20)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env()) as proc:
        # stdout holds one JSON line, so it cannot fill its pipe while stderr is read here.
        for line in proc.stderr:
            tail.append(line.rstrip("\n"))
            print(line, end="", file=sys.stderr, flush=True)
        stdout = proc.stdout.read()
    last = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not last:
        raise RuntimeError(
            f"{what} failed with exit code {proc.returncode}; last lines of its stderr:\n" + "\n".join(tail)
        )
    return json.loads(last[-1])


def run_sb3(
    env: str,
    algo: str,
    seed: int,
    budget: int,
    eval_every: int,
    eval_episodes: int,
    threshold: float,
    threads: int = 1,
) -> dict:
    """Train SB3's ``algo`` on ``env`` with RL-Zoo's hyperparameters in the SB3 venv.

    Runs `_sb3_peer.py` (its progress lines pass through to our stderr) and returns
    the JSON it prints: ``solved_at_env_steps``, ``solved_after_seconds``,
    ``steps_per_second``, ``curve`` (``[env_steps, mean_return, wall_seconds]`` rows),
    ``hyperparameters`` and the versions used.

    Raises:
        RuntimeError: if the run fails or prints no result; the message holds the
            last lines of its stderr.
    """
    cmd = [str(sb3_python()), str(PEER), "--env", env, "--algo", algo, "--seed", str(seed)]
    cmd += ["--budget", str(budget), "--eval-every", str(eval_every), "--eval-episodes", str(eval_episodes)]
    cmd += ["--threshold", str(threshold), "--threads", str(threads)]
    return run_peer(cmd, f"SB3 peer ({env}, {algo}, seed {seed})")
