"""A real ``kd-rl train-teacher`` process killed with SIGKILL resumes to the right step count."""

import json
import os
import re
import signal
import subprocess
import sys
import time


def _checkpointed_steps(folder):
    """The step of the checkpoint a resume restores: the one TensorFlow's ``checkpoint`` file names.

    TensorFlow writes that file (atomically) after the checkpoint's own files, so a
    ``ckpt-N.index`` can exist before it counts: a kill in between resumes from the
    previous checkpoint, or from nothing.
    """
    state = folder / "checkpoint"
    if not state.exists():
        return 0
    m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', state.read_text(), re.MULTILINE)
    return int(m.group(1)) if m else 0


def test_train_teacher_resumes_after_sigkill(tmp_path):
    out = tmp_path / "teacher"
    argv = [
        sys.executable,
        "-m",
        "kd_rl.cli",
        "train-teacher",
        "--env",
        "CartPole-v1",
        "--algo",
        "dqn",
        "--steps",
        "8000",
        "--hidden",
        "16",
        "--checkpoint-every",
        "1000",
        "--seed",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # No deadline: a slow machine only takes longer (pytest's --timeout still bounds it), and
    # the first of eight checkpoints is caught long before a fast machine ends the run.
    while proc.poll() is None and _checkpointed_steps(out / "checkpoints") < 1000:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists() and not (out / "teacher.keras").exists()
    killed_at = _checkpointed_steps(out / "checkpoints")
    assert 1000 <= killed_at < 8000

    done = subprocess.run(argv + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    # TF-Agents' import noise (gym's notice, autograph's SyntaxWarnings) stays out of the CLI's stderr.
    assert "Gym has been unmaintained" not in done.stderr and "SyntaxWarning" not in done.stderr, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["env_steps"] == 8000 and metrics["outputs"] == "q_values"
    assert metrics["resumed_from_env_steps"] == killed_at
    assert metrics["params"] == 4 * 16 + 16 + 16 * 2 + 2
    # The recorded score is the exported teacher's, on the final evaluation's episodes.
    import kd_rl  # noqa: F401
    from kd_rl.evaluate import run_episodes
    from kd_rl.models import load_policy

    stats = run_episodes(load_policy(out / "teacher.keras"), "CartPole-v1", metrics["eval_episodes"], seed=2)
    assert metrics["returns"] == stats.returns and metrics["mean_return"] == stats.mean_return
    rows = (out / "curve.csv").read_text().splitlines()
    assert rows[0] == "env_steps,mean_return,wall_seconds"
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == sorted(set(steps)) and steps[-1] == 8000
