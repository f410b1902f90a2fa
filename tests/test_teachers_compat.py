"""kd_rl without TF-Agents, and kd_rl.teachers in a process whose tf.keras is already Keras 3.

Each case runs in a fresh Python, since TensorFlow resolves ``tf.keras`` once
per process and an import cannot be undone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from kd_rl.teachers import _compat

CORE_MODULES = ["models", "losses", "distill", "data", "envs", "evaluate", "export", "policies", "zoo", "cli"]


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("blocked", [["tf_agents"], ["tf_agents", "tf_keras", "gym"]])
def test_core_imports_and_cli_says_what_to_install_without_tf_agents(tmp_path, blocked):
    out = tmp_path / "run"
    done = _python(
        f"""
        import importlib, io, sys, contextlib
        for name in {blocked!r}:
            sys.modules[name] = None  # what an uninstalled package looks like to `import`
        import kd_rl
        for name in {CORE_MODULES!r}:
            importlib.import_module("kd_rl." + name)
        import tensorflow as tf
        # (TensorFlow itself imports tf_keras when it is installed and
        # TF_USE_LEGACY_KERAS=1; the case that blocks it shows the core does not need it.)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tf_agents", "gym") and sys.modules[m])
        assert not loaded, f"the core imported {{loaded}}"
        try:
            import kd_rl.teachers
        except ImportError as err:
            print("IMPORT_ERROR:", err)
        from kd_rl.cli import main
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = main(["train-teacher", "--env", "CartPole-v1", "--algo", "dqn", "--out", {str(out)!r}])
        print("EXIT:", code)
        print("STDERR:", repr(stderr.getvalue()))
        """
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    assert _compat.INSTALL_COMMAND in lines["IMPORT_ERROR"] and "make install" in lines["IMPORT_ERROR"]
    assert lines["EXIT"] == "2"
    stderr = eval(lines["STDERR"])  # the repr printed above
    assert stderr.count("\n") == 1 and stderr.startswith("kd-rl: error:"), stderr
    assert _compat.INSTALL_COMMAND in stderr
    assert not out.exists()


def test_train_teacher_after_keras3_tf_keras_says_what_to_do(tmp_path):
    out = tmp_path / "run"
    done = _python(
        f"""
        import tensorflow as tf
        tf.keras.layers.Dense  # resolves tf.keras to Keras 3 for this process
        import kd_rl
        try:
            kd_rl.train_teacher("CartPole-v1", "dqn", {str(out)!r}, progress=False)
        except ImportError as err:
            print(type(err).__name__, err, sep="|")
        """,
        env={"TF_USE_LEGACY_KERAS": None},
    )
    assert done.returncode == 0, done.stderr
    name, message = done.stdout.strip().split("|")
    assert name == "LegacyKerasError" and "\n" not in message
    assert "import kd_rl before tensorflow/keras in this process (it sets TF_USE_LEGACY_KERAS=1)" in message
    assert "set TF_USE_LEGACY_KERAS=1 before starting Python" in message and "kd-rl CLI" in message
    assert not out.exists()


def test_cli_with_tf_use_legacy_keras_0_says_what_to_do_in_one_line(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kd_rl.cli",
            "train-teacher",
            "--env",
            "CartPole-v1",
            "--algo",
            "dqn",
            "--out",
            str(out),
        ],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "TF_USE_LEGACY_KERAS='0'" in done.stderr, done.stderr
    assert "unset it or set it to 1" in done.stderr and not out.exists()


def test_tf_keras_is_legacy_keras_in_this_process():
    import tensorflow as tf
    import tf_keras

    _compat.check_legacy_keras()  # no error here: conftest imports kd_rl first
    assert tf.keras.layers.Dense is tf_keras.layers.Dense
