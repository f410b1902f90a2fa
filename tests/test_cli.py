import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import TEACHER_METRIC_KEYS, one_line_error, with_options

from kd_rl.cli import main


def test_distill_writes_a_complete_run(tmp_path, cartpole_teacher_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "distill",
            "--teacher",
            str(cartpole_teacher_path),
            "--env",
            "CartPole-v1",
            "--out",
            str(out),
            "--hidden",
            "16",
            "--steps",
            "1000",
            "--eval-episodes",
            "5",
            "--no-progress",
            "--seed",
            "1",
        ]
    )
    assert code == 0
    assert {"student.keras", "metrics.json", "curve.csv"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    for key in (
        "teacher_mean_return",
        "student_mean_return",
        "teacher_params",
        "student_params",
        "agreement",
        "env_steps",
        "wall_seconds",
        "eval_episodes",
        "loss",
        "temperature",
        "collect",
        "hidden_units",
        "seed",
        "learning_rate",
        "batch_size",
        "buffer_size",
    ):
        assert key in metrics, key
    assert metrics["env_steps"] == 1000 and metrics["hidden_units"] == [16] and metrics["eval_episodes"] == 5
    assert (metrics["loss"], metrics["collect"], metrics["seed"]) == ("kl", "student", 1)
    assert metrics["temperature"] == 1.0  # the hand-made teacher does not say it outputs Q-values
    assert (metrics["learning_rate"], metrics["batch_size"], metrics["buffer_size"]) == (1e-3, 128, 50_000)
    assert metrics["teacher_mean_return"] == 500.0 and 0 < metrics["wall_seconds"] < 600
    assert metrics["student_params"] == 4 * 16 + 16 + 16 * 2 + 2
    student = keras.saving.load_model(out / "student.keras", safe_mode=True)
    assert student.hidden_units == (16,)
    assert "student" in capsys.readouterr().out


def test_evaluate_json(cartpole_teacher_path, capsys):
    assert main(["evaluate", str(cartpole_teacher_path), "--env", "CartPole-v1", "--episodes", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"env_id", "episodes", "mean_return", "std_return", "params"}
    assert result["mean_return"] == 500.0 and result["episodes"] == 3 and result["params"] == 702


def test_evaluate_exported_files(tmp_path, cartpole_teacher_path, capsys):
    for fmt, name in (("numpy", "t.npz"), ("tflite", "t.tflite")):
        assert main(["export", str(cartpole_teacher_path), "--format", fmt, "--out", str(tmp_path / name)]) == 0
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path / name), "--env", "CartPole-v1", "--episodes", "2", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["mean_return"] == 500.0


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--temperature", "0"], "temperature"),
        (["--temperature", "-2"], "temperature"),
        (["--steps", "0"], "--steps"),
        (["--loss", "hinge"], "--loss"),
        (["--hidden", "0"], "--hidden"),
        (["--activation", "sigmoidal"], "activation must be a Keras activation name, got 'sigmoidal'"),
        (["--env", "NoSuchEnv-v0"], "unknown environment id"),
        (["--env", "LunarLander-v3"], "teacher expects 4 observation features but LunarLander-v3 gives 8"),
        (["--env", "Pendulum-v1"], "teacher is a discrete-action policy but Pendulum-v1 has a continuous"),
    ],
)
def test_distill_bad_input_is_one_line_and_writes_nothing(tmp_path, cartpole_teacher_path, capsys, extra, match):
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--out", str(out)]
    argv = with_options(argv, extra)
    one_line_error(capsys, argv, match)
    assert not out.exists()


def test_distill_refuses_missing_corrupt_and_wrong_kind_of_teacher(tmp_path, cartpole_teacher_path, capsys):
    out = tmp_path / "run"
    base = ["--env", "CartPole-v1", "--out", str(out)]
    one_line_error(capsys, ["distill", "--teacher", str(tmp_path / "missing.keras"), *base], "neither an existing")
    one_line_error(capsys, ["distill", "--teacher", "NoSuchZoo-v0-dqn", *base], "zoo")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(cartpole_teacher_path.read_bytes()[:300])
    one_line_error(capsys, ["distill", "--teacher", str(broken), *base], "truncated or corrupted")
    main(["export", str(cartpole_teacher_path), "--format", "tflite", "--out", str(tmp_path / "t.tflite")])
    capsys.readouterr()
    one_line_error(capsys, ["distill", "--teacher", str(tmp_path / "t.tflite"), *base], "not a Keras model")
    assert not out.exists()


def test_out_folder_with_another_run_is_refused(tmp_path, cartpole_teacher_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--out", str(out)]
    one_line_error(capsys, argv, "--overwrite")
    assert (out / "metrics.json").read_text() == "{}"


def test_real_process_exit_status_and_stderr(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "kd_rl.cli", "evaluate", "NoSuchModel", "--env", "CartPole-v1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "kd-rl: error: model 'NoSuchModel' is neither an existing file nor a zoo name (zoo: "
        + proc.stderr.split("(zoo: ", 1)[1].strip()
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "kd_rl.cli", "distill"], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "required" in proc.stderr


def test_plot_command(tmp_path, cartpole_teacher_path, capsys):
    runs = []
    for collect in ("teacher", "student"):
        out = tmp_path / collect
        main(
            [
                "distill",
                "--teacher",
                str(cartpole_teacher_path),
                "--env",
                "CartPole-v1",
                "--out",
                str(out),
                "--steps",
                "800",
                "--eval-episodes",
                "2",
                "--collect",
                collect,
                "--no-progress",
            ]
        )
        runs.append(str(out))
    assert main(["plot", *runs, "--out", str(tmp_path / "fig.png")]) == 0
    from PIL import Image

    image = np.asarray(Image.open(tmp_path / "fig.png").convert("L"))
    assert image.shape[0] > 300 and image.shape[1] > 500 and image.std() > 10


def _register_image_env():
    import gymnasium as gym

    class ImageEnv(gym.Env):
        observation_space = gym.spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8)
        action_space = gym.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            return np.zeros((8, 8, 3), np.uint8), {}

        def step(self, action):
            return np.zeros((8, 8, 3), np.uint8), 0.0, True, False, {}

    if "KdRlTestImage-v0" not in gym.registry:
        gym.register(id="KdRlTestImage-v0", entry_point=ImageEnv)


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--env", "NoSuchEnv-v0", "--algo", "dqn"], "unknown environment id"),
        (["--env", "Pendulum-v1", "--algo", "dqn"], "Discrete action space"),
        (["--env", "FrozenLake-v1", "--algo", "ppo"], "needs a Box observation space"),
        (["--env", "CartPole-v1", "--algo", "dqn", "--steps", "0"], "--steps"),
        (["--env", "CartPole-v1", "--algo", "a2c"], "--algo"),
        (["--env", "CartPole-v1", "--env-kwargs", "[1]"], "--env-kwargs: expected a JSON object"),
        (["--env", "CartPole-v1", "--env-kwargs", '{"nope": 1}'], "rejects the arguments"),
        (["--env", "CartPole-v1", "--stop-return", "nan"], "--stop-return: expected a finite number"),
        (["--env", "CartPole-v1", "--stop-return", "high"], "--stop-return"),
    ],
)
def test_train_teacher_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, match):
    _register_image_env()
    out = tmp_path / "teacher"
    one_line_error(capsys, ["train-teacher", *argv, "--out", str(out)], match)
    assert not out.exists()


def test_train_teacher_writes_a_loadable_teacher(tmp_path, capsys):
    out = tmp_path / "teacher"
    argv = [
        "train-teacher",
        "--env",
        "CartPole-v1",
        "--algo",
        "dqn",
        "--steps",
        "400",
        "--hidden",
        "16",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert TEACHER_METRIC_KEYS <= set(metrics)
    assert metrics["env_steps"] == 400 and metrics["params"] == 4 * 16 + 16 + 16 * 2 + 2
    assert (out / "curve.csv").read_text().startswith("env_steps,mean_return")
    assert "teacher.keras" in capsys.readouterr().out
    # The same folder again is refused, then replaced with --overwrite.
    one_line_error(capsys, argv, "--overwrite")
    assert main(argv + ["--overwrite"]) == 0


def test_unwritable_out_is_one_line(tmp_path, cartpole_teacher_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ["distill", "--teacher", str(cartpole_teacher_path), "--env", "CartPole-v1", "--out", str(blocker / "run")]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "error, code, start",
    [
        (lambda: __import__("kd_rl.errors").errors.KdRlError("steps must be an int >= 1, got 0"), 2, "kd-rl: error:"),
        (lambda: __import__("kd_rl.errors").errors.MissingDependency("needs Ray: pip ..."), 2, "kd-rl: error:"),
        (lambda: FileNotFoundError(2, "No such file or directory", "x.keras"), 2, "kd-rl: error:"),
        # A ValueError kd_rl did not raise (TensorFlow's, deep inside) is not the user's fault.
        (lambda: ValueError("Shapes (400,) and (300,) are incompatible"), 1, "kd-rl: internal error: ValueError"),
        (lambda: RuntimeError("boom"), 1, "kd-rl: internal error: RuntimeError"),
    ],
)
def test_only_kd_rl_errors_and_os_errors_are_bad_input(monkeypatch, capsys, error, code, start):
    from kd_rl import cli

    def failing(args):
        raise error()

    monkeypatch.setattr(cli, "_cmd_zoo", failing)
    assert main(["zoo"]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(start), err
    assert ("--debug" in err) == (code == 1)


def test_resume_refusals_have_their_own_class(tmp_path, cartpole_teacher):
    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.errors import ResumeRefused

    with pytest.raises(ResumeRefused, match="nothing to resume"):
        distill_policy(cartpole_teacher, DistillConfig(steps=500), out_dir=tmp_path / "run", resume=True)
