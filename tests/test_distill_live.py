"""The live-environment distillation loop: results, determinism, crash safety."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kd_rl.distill import DistillConfig, distill_policy
from kd_rl.plots import read_curve


def test_student_driven_distillation_matches_a_strong_teacher(cartpole_teacher, tmp_path):
    config = DistillConfig(steps=4000, eval_every=2000, curve_episodes=3, eval_episodes=10, seed=0)
    student, metrics = distill_policy(cartpole_teacher, config, out_dir=tmp_path / "run", progress=False)
    assert metrics["teacher_mean_return"] == 500.0
    assert metrics["student_mean_return"] >= 0.99 * 500.0
    # The hand-made teacher does not say what its outputs are: T = 1 (logits), recorded.
    assert metrics["temperature"] == 1.0 and metrics["teacher_outputs"] is None
    assert 9 < metrics["random_mean_return"] < 40
    r = metrics["random_mean_return"]
    expected = (metrics["student_mean_return"] - r) / (metrics["teacher_mean_return"] - r)
    assert metrics["normalised_score"] == pytest.approx(expected) and "return_ratio" not in metrics
    assert metrics["checkpoint_every"] == 0  # a short run does not checkpoint unless asked
    assert metrics["agreement"] > 0.85  # this teacher balances on its decision boundary
    assert metrics["labelled_states"] == metrics["env_steps"] == 4000
    assert metrics["student_params"] == 352 and metrics["teacher_params"] == 702
    curve = read_curve(tmp_path / "run" / "curve.csv")
    np.testing.assert_array_equal(curve["env_steps"], [2000, 4000])
    assert set(curve) == {"env_steps", "mean_return", "std_return", "agreement", "kl", "loss", "train_seconds"}
    assert 0 < curve["train_seconds"][0] < curve["train_seconds"][1] <= metrics["train_seconds"]
    assert np.all(curve["kl"] >= 0)
    assert (tmp_path / "run" / "tensorboard").is_dir()
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["student_mean_return"] == metrics["student_mean_return"]


@pytest.mark.parametrize("collect", ["teacher", "mixed"])
def test_other_collection_modes_run(cartpole_teacher, collect):
    config = DistillConfig(steps=1000, eval_every=0, eval_episodes=3, collect=collect, loss="nll")
    _, metrics = distill_policy(cartpole_teacher, config, progress=False)
    assert metrics["collect"] == collect and metrics["env_steps"] == 1000


def test_same_seed_gives_bitwise_identical_student_and_metrics(cartpole_teacher):
    runs = []
    for _ in range(2):
        config = DistillConfig(steps=1500, eval_every=500, curve_episodes=2, eval_episodes=3, seed=7)
        student, metrics = distill_policy(cartpole_teacher, config, progress=False)
        runs.append((student.get_weights(), metrics))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    timing = {"train_seconds", "wall_seconds", "profile", "eval_cache_status"}  # the second run's cache hits
    assert {k: v for k, v in runs[0][1].items() if k not in timing} == {
        k: v for k, v in runs[1][1].items() if k not in timing
    }


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(batch_size=0), "batch_size"),
        (dict(buffer_size=-5), "buffer_size"),
        (dict(hidden_units=0), "hidden_units"),
        (dict(temperature=0.0), "temperature"),
        (dict(loss="l2"), "loss"),
        (dict(collect="random"), "collect"),
        (dict(learning_rate=0), "learning_rate"),
        (dict(epsilon=1.5), "epsilon"),
        (dict(activation="tanhh"), "activation must be a Keras activation name, got 'tanhh'"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillConfig(**kwargs)


@pytest.mark.parametrize("inherit", [False, True])
def test_a_new_student_takes_its_activation_and_optionally_the_teachers_normaliser(inherit):
    from kd_rl.models import TeacherModel

    mean, std = [0.1, -0.2, 0.0, 0.3], [1.0, 2.0, 0.5, 4.0]
    teacher = TeacherModel(
        2, hidden_units=8, observation_dim=4, observation_mean=mean, observation_std=std, observation_clip=5.0
    )
    config = DistillConfig(steps=200, eval_every=0, eval_episodes=1, activation="tanh", inherit_normalizer=inherit)
    student, metrics = distill_policy(teacher, config, progress=False)
    assert student.activation == "tanh" and metrics["activation"] == "tanh"
    assert metrics["inherit_normalizer"] is inherit
    if inherit:
        np.testing.assert_allclose(student.observation_mean, mean)
        np.testing.assert_allclose(student.observation_std, std)
        assert student.observation_clip == 5.0
        # The normaliser is fixed: it adds no parameters.
        assert metrics["student_params"] == 4 * 50 + 50 + 50 * 2 + 2
    else:
        assert student.observation_mean is None and student.observation_std is None
        assert student.observation_clip is None


def test_nothing_is_written_when_the_teacher_does_not_fit(tmp_path):
    from kd_rl.models import TeacherModel

    with pytest.raises(ValueError, match="observation features"):
        distill_policy(TeacherModel(2, observation_dim=8), DistillConfig(), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _checkpoint_progress(path):
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["progress"]))


def test_resume_after_sigkill_completes_with_the_right_step_count(tmp_path, cartpole_teacher_path):
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "kd_rl.cli",
        "distill",
        "--teacher",
        str(cartpole_teacher_path),
        "--env",
        "CartPole-v1",
        "--out",
        str(out),
        "--steps",
        "12000",
        "--checkpoint-every",
        "2000",
        "--eval-episodes",
        "3",
        "--no-progress",
        "--seed",
        "1",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    # The killed run asks for far more steps than any machine takes before the
    # first checkpoint is seen, so the kill never comes too late, however fast
    # the machine; the resumed run then finishes a 12,000-step budget.
    steps_at = argv.index("--steps") + 1
    long_argv = argv[:steps_at] + ["1000000"] + argv[steps_at + 1 :]
    proc = subprocess.Popen(long_argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = out / "checkpoint.npz"
    while proc.poll() is None and not checkpoint.exists():
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before its first checkpoint: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    killed_at = _checkpoint_progress(checkpoint)["env_steps"]
    assert killed_at % 2000 == 0 and 2000 <= killed_at < 12000
    # Without --resume the half-done run is protected.
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr

    done = subprocess.run(argv[:-2] + ["--resume", "--seed", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["env_steps"] == 12000
    assert metrics["labelled_states"] == 12000
    # The resumed student learned: the hand-made teacher scores 500 on every episode.
    assert metrics["student_mean_return"] >= 450 and metrics["agreement"] > 0.85
    curve = read_curve(out / "curve.csv")
    assert curve["env_steps"][-1] == 12000
    assert np.all(np.diff(curve["env_steps"]) > 0)
    # The training seconds count on from the checkpoint's, the evaluations of both processes left out.
    assert np.all(np.diff(curve["train_seconds"]) > 0)
    assert curve["train_seconds"][-1] <= metrics["train_seconds"]
    assert _checkpoint_progress(checkpoint)["train_seconds"] <= _checkpoint_progress(checkpoint)["wall_seconds"]


def test_resume_refuses_a_different_configuration_and_a_folder_without_checkpoint(cartpole_teacher, tmp_path):
    out = tmp_path / "run"
    config = DistillConfig(steps=1000, checkpoint_every=500, eval_every=0, eval_episodes=2, collect_per_round=250)
    distill_policy(cartpole_teacher, config, out_dir=out, progress=False)
    assert _checkpoint_progress(out / "checkpoint.npz")["env_steps"] == 500  # none at the end: the run is done
    with pytest.raises(ValueError, match="has finished"):
        distill_policy(cartpole_teacher, config, out_dir=out, resume=True, progress=False)
    (out / "metrics.json").unlink()  # as if the run had been killed after its checkpoint
    changed = DistillConfig(**{**config.to_dict(), "hidden_units": 16, "learning_rate": 0.01})
    with pytest.raises(ValueError, match=r"different settings: hidden_units=\[50\] \(now \[16\]\), learning_rate"):
        distill_policy(cartpole_teacher, changed, out_dir=out, resume=True, progress=False)
    with pytest.raises(ValueError, match="nothing to resume"):
        distill_policy(cartpole_teacher, config, out_dir=tmp_path / "empty", resume=True, progress=False)
    assert not (tmp_path / "empty").exists()


def test_a_checkpoint_of_the_old_kl_weight_is_resumed_only_where_the_weight_is_the_same(
    cartpole_teacher, tmp_path, monkeypatch
):
    """kd_rl 0.2 weighed a single-task KL by T²: at T < 1 its checkpoints are refused, at T >= 1 resumed."""
    import kd_rl.distill as distill
    from kd_rl.errors import ResumeRefused
    from kd_rl.models import load_policy

    config = DistillConfig(steps=1000, checkpoint_every=500, eval_every=0, eval_episodes=2, collect_per_round=250)
    for name, teacher in (("dqn", load_policy("CartPole-v1-dqn")), ("logits", cartpole_teacher)):
        out = tmp_path / name
        monkeypatch.setattr(distill, "LOSS_WEIGHTING", "T^2 (kd_rl 0.2)")  # as an older kd_rl wrote it
        distill_policy(teacher, config, out_dir=out, progress=False)
        monkeypatch.undo()
        (out / "metrics.json").unlink()  # as if killed after its checkpoint
        if name == "dqn":  # T = 0.01: weighed 1e-4 then, 1e-2 now
            kept = (out / "checkpoint.npz").read_bytes()
            with pytest.raises(ResumeRefused, match="an older kd_rl wrote it, weighing the KL by T²"):
                distill_policy(teacher, config, out_dir=out, resume=True, progress=False)
            assert (out / "checkpoint.npz").read_bytes() == kept
        else:  # T = 1: the same weight either way
            _, metrics = distill_policy(teacher, config, out_dir=out, resume=True, progress=False)
            assert metrics["env_steps"] == metrics["labelled_states"] == 1000


def test_make_distill_step_checks_its_weight():
    import keras

    from kd_rl.distill import make_distill_step
    from kd_rl.models import StudentModel, TeacherModel

    teacher, student = TeacherModel(2, observation_dim=4), StudentModel(2, observation_dim=4)
    for bad in (True, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="weight must be"):
            make_distill_step(teacher, student, keras.optimizers.SGD(0.1), weight=bad)
    with pytest.raises(TypeError):  # kd_rl 0.2's positional scale_by_temperature_squared is not taken as a weight
        make_distill_step(teacher, student, keras.optimizers.SGD(0.1), "kl", 1.0, False)
    assert make_distill_step(teacher, student, keras.optimizers.SGD(0.1), temperature=4.0).weights == (16.0,)
    assert make_distill_step(teacher, student, keras.optimizers.SGD(0.1), temperature=0.5).weights == (0.5,)


def test_long_runs_checkpoint_every_tenth_by_default():
    assert DistillConfig(steps=100_000).checkpoint_interval == 10_000
    assert DistillConfig(steps=49_999).checkpoint_interval == 0
    assert DistillConfig(steps=100_000, checkpoint_every=0).checkpoint_interval == 0
    assert DistillConfig(steps=100_000, checkpoint_every=7).checkpoint_interval == 7


def test_a_q_value_teacher_is_distilled_at_t_0_01_by_default():
    from kd_rl.models import load_policy

    teacher = load_policy("CartPole-v1-dqn")
    config = DistillConfig(steps=500, eval_every=0, eval_episodes=2, curve_episodes=2)
    _, metrics = distill_policy(teacher, config, progress=False)
    assert metrics["temperature"] == 0.01 and metrics["teacher_outputs"] == "q_values"
    assert metrics["kl"] >= 0


def test_a_checkpoint_is_one_file_and_a_crash_while_writing_keeps_the_previous_one(cartpole_teacher, tmp_path):
    # In 0.1 a checkpoint was three files written in turn (TF checkpoint, buffer.npz,
    # progress.json): a kill between them left weights of one step beside progress of another.
    import kd_rl.distill as distill

    out = tmp_path / "run"
    config = DistillConfig(steps=1500, checkpoint_every=500, eval_every=0, eval_episodes=2, collect_per_round=250)
    real_savez, calls = np.savez, []

    def savez_then_crash(file, **arrays):
        calls.append(sorted(arrays))
        if len(calls) == 2:  # the second checkpoint dies half-written
            file.write(b"half a checkpoint")
            raise KeyboardInterrupt
        return real_savez(file, **arrays)

    monkeypatched = pytest.MonkeyPatch()
    monkeypatched.setattr(distill.np, "savez", savez_then_crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            distill_policy(cartpole_teacher, config, out_dir=out, progress=False)
    finally:
        monkeypatched.undo()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "tensorboard"]  # no temp file left
    progress = _checkpoint_progress(out / "checkpoint.npz")
    assert progress["env_steps"] == 500 and progress["config"]["steps"] == 1500
    keys = calls[0]
    assert {"progress", "buffer_observations", "buffer_logits", "student_0", "optimizer_0"} <= set(keys)
    _, metrics = distill_policy(cartpole_teacher, config, out_dir=out, resume=True, progress=False)
    assert metrics["env_steps"] == 1500
