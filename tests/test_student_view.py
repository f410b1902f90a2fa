"""Students that see less than their teacher: a subset of the observation, and sensor noise (issue #35)."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium
import keras
import numpy as np
import pytest
from conftest import Countdown, one_line_error

from kd_rl._validate import normalise_observation_indices, parse_index_ranges
from kd_rl.data import Collector
from kd_rl.distill import DistillConfig, distill_policy
from kd_rl.errors import KdRlError
from kd_rl.evaluate import run_episodes
from kd_rl.export import export_model
from kd_rl.models import StudentModel, load_policy, sensor_noise_std
from kd_rl.policies import NumpyPolicy, ObservationWindows, OutputSnapshot, load_any_policy, sensor_readings


def test_index_ranges_parse_and_refuse_what_does_not_fit():
    assert parse_index_ranges("0:3,7, 5") == (0, 1, 2, 7, 5)
    assert normalise_observation_indices("1:3", observation_dim=4) == (1, 2)
    for text, match in (("2:1", "stop > start"), ("a", "'a'"), ("", "''"), ("0,,1", "''")):
        with pytest.raises(KdRlError, match=match):
            parse_index_ranges(text)
    with pytest.raises(KdRlError, match=r"\[4, 5\] are outside the observation's 4 features"):
        normalise_observation_indices("0,4,5", observation_dim=4)
    with pytest.raises(KdRlError, match=r"repeated: \[1\]"):
        normalise_observation_indices([1, 0, 1])
    with pytest.raises(KdRlError, match="must be >= 0"):
        normalise_observation_indices([-1])
    with pytest.raises(KdRlError, match="vector observation"):
        StudentModel(2, observation_shape=(10, 10, 4), observation_indices=[0])
    with pytest.raises(KdRlError, match="observation_noise must be >= 0"):
        StudentModel(2, observation_dim=4, observation_noise=-0.1)


def _subset_model(continuous: bool = False, **kwargs):
    actions = dict(action_low=[-1.0, -2.0], action_high=[1.0, 2.0]) if continuous else dict(num_actions=3)
    return StudentModel(hidden_units=[16], observation_dim=6, observation_indices="0:2,4", **actions, **kwargs)


def test_a_subset_student_takes_the_whole_observation_and_sees_only_its_features(tmp_path, rng):
    model = _subset_model(observation_mean=np.arange(6), observation_std=np.arange(1, 7))
    x = rng.normal(size=(5, 6)).astype(np.float32)
    # The same weights on the chosen features, normalised by their own statistics.
    small = StudentModel(hidden_units=[16], num_actions=3, observation_dim=3, observation_mean=[0, 1, 4],
                         observation_std=[1, 2, 5])  # fmt: skip
    small.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(small(x[:, [0, 1, 4]])), atol=1e-6)
    changed = x.copy()
    changed[:, [2, 3, 5]] += 100.0  # features it does not see change nothing
    np.testing.assert_allclose(np.asarray(model(changed)), np.asarray(model(x)), atol=1e-6)
    assert model.count_params() == small.count_params()
    np.testing.assert_allclose(OutputSnapshot(model)(x), np.asarray(model(x)), atol=1e-6)
    model.save(tmp_path / "s.keras")
    loaded = keras.saving.load_model(tmp_path / "s.keras")
    assert loaded.observation_indices == (0, 1, 4)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("continuous", [False, True])
def test_subset_students_export_to_every_format_with_the_whole_observation(tmp_path, rng, continuous):
    model = _subset_model(continuous, observation_mean=np.arange(6), observation_std=np.arange(1, 7))
    x = rng.normal(size=(5, 6)).astype(np.float32)
    expected = model.act(x) if continuous else np.asarray(model(x))
    for fmt, name in (("numpy", "p.npz"), ("tflite", "p.tflite"), ("onnx", "p.onnx"), ("c", "c")):
        policy = load_any_policy(export_model(model, fmt, tmp_path / name))
        assert policy.observation_dim == 6, fmt
        np.testing.assert_allclose(np.asarray(policy(x)), expected, atol=1e-5, err_msg=fmt)
    # Without a normaliser too: the NumPy form keeps the observation's length.
    plain = _subset_model(continuous)
    policy = NumpyPolicy.load(export_model(plain, "numpy", tmp_path / "plain.npz"))
    assert policy.observation_dim == 6
    np.testing.assert_allclose(policy.act(x), plain.act(x), atol=1e-5)


def test_sensor_noise_is_in_normalised_units_and_travels_with_every_file(tmp_path):
    model = StudentModel(2, observation_dim=3, observation_std=[1.0, 2.0, 10.0], observation_noise=0.1)
    np.testing.assert_allclose(sensor_noise_std(model), [0.1, 0.2, 1.0], rtol=1e-6)
    assert sensor_noise_std(StudentModel(2, observation_dim=3)) is None
    np.testing.assert_allclose(sensor_noise_std(StudentModel(2, observation_dim=3, observation_noise=0.5)), [0.5] * 3)
    for fmt, name in (("numpy", "p.npz"), ("tflite", "p.tflite"), ("onnx", "p.onnx")):
        policy = load_any_policy(export_model(model, fmt, tmp_path / name))
        np.testing.assert_allclose(sensor_noise_std(policy), [0.1, 0.2, 1.0], rtol=1e-6, err_msg=fmt)
    assert sensor_noise_std(load_any_policy(export_model(StudentModel(2, observation_dim=3), "tflite",
                                                         tmp_path / "clean.tflite"))) is None  # fmt: skip
    # What the policy sees: the observation plus std * N(0, 1), drawn from the generator.
    readings = sensor_readings(np.array([0.1, 0.2, 1.0]), np.random.default_rng(0))(np.zeros((20_000, 3)))
    np.testing.assert_allclose(readings.std(axis=0), [0.1, 0.2, 1.0], rtol=0.03)


def test_noisy_evaluation_is_seeded_and_can_be_turned_off(cartpole_teacher):
    noisy = StudentModel(2, hidden_units=100, observation_dim=4, observation_noise=0.5)
    noisy.set_weights(cartpole_teacher.get_weights())
    first = run_episodes(noisy, "CartPole-v1", episodes=4, seed=3)
    again = run_episodes(noisy, "CartPole-v1", episodes=4, seed=3)
    clean = run_episodes(noisy, "CartPole-v1", episodes=4, seed=3, sensor_noise=False)
    teacher = run_episodes(cartpole_teacher, "CartPole-v1", episodes=4, seed=3)
    assert first.returns == again.returns
    assert clean.returns == teacher.returns  # the same weights without noise play as the teacher
    assert first.returns != clean.returns  # noise of 0.5 on angle and velocity topples the pole sooner


def test_a_student_without_velocities_fails_where_one_with_them_succeeds(cartpole_teacher, tmp_path):
    """CartPole's teacher pushes on 0.1 x + 0.5 x' + θ + θ': positions alone cannot tell its action."""
    common = dict(env_id="CartPole-v1", steps=6000, eval_episodes=10, curve_episodes=2, eval_every=0)
    full, m_full = distill_policy(cartpole_teacher, DistillConfig(**common), progress=False)
    blind, m_blind = distill_policy(
        cartpole_teacher, DistillConfig(student_obs="0,2", **common), out_dir=tmp_path / "blind", progress=False
    )
    assert blind.observation_indices == (0, 2) and m_blind["student_obs"] == [0, 2]
    assert blind.count_params() < full.count_params()
    assert m_full["normalised_score"] > 0.9 > 0.5 > m_blind["normalised_score"]
    assert m_full["agreement"] > m_blind["agreement"]
    # The run folder's student loads in a fresh process and takes CartPole's own 4 features.
    path = str(tmp_path / "blind" / "student.keras")
    code = (
        f"import kd_rl, keras, numpy as np; m = keras.saving.load_model({path!r}); "
        "print(m.observation_indices, np.asarray(m(np.zeros((1, 4), 'float32'))).shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "(0, 2) (1, 2)"


def test_a_noisy_student_learns_on_noisy_batches_and_records_its_noise(cartpole_teacher, tmp_path):
    config = DistillConfig(env_id="CartPole-v1", steps=3000, eval_episodes=5, curve_episodes=2, eval_every=0,
                           student_obs_noise=0.2)  # fmt: skip
    student, metrics = distill_policy(cartpole_teacher, config, out_dir=tmp_path / "run", progress=False)
    assert student.observation_noise == 0.2 and metrics["student_obs_noise"] == 0.2
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["student_obs_noise"] == 0.2
    loaded = keras.saving.load_model(tmp_path / "run" / "student.keras")
    np.testing.assert_allclose(sensor_noise_std(loaded), [0.2] * 4)


def test_views_that_do_not_fit_are_refused_before_anything_is_written(cartpole_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KdRlError, match="outside the observation's 4 features"):
        distill_policy(cartpole_teacher, DistillConfig(steps=100, student_obs="0:6"), out_dir=out)
    given = StudentModel(2, observation_dim=4, observation_indices=[0, 1])
    with pytest.raises(KdRlError, match="the given student has"):
        distill_policy(cartpole_teacher, DistillConfig(steps=100, student_obs="2,3"), out_dir=out, student=given)
    assert not out.exists()
    with pytest.raises(KdRlError, match="single-task"):
        DistillConfig(env_id=("CartPole-v1", "Acrobot-v1"), student_obs="0")
    pytest.importorskip("minatar")
    frames = StudentModel(3, hidden_units=[8], observation_shape=(10, 10, 4), conv_layers=[[4, 3, 1]])
    for view in (dict(student_obs="0"), dict(student_obs_noise=0.1)):
        with pytest.raises(KdRlError, match="for vector observations; MinAtar/Breakout-v1 gives images"):
            distill_policy(frames, DistillConfig(env_id="MinAtar/Breakout-v1", steps=100, **view), out_dir=out)
    path = tmp_path / "teacher.keras"
    cartpole_teacher.save(path)
    argv = ["distill", "--teacher", str(path), "--env", "CartPole-v1", "--steps", "100", "--out", str(out)]
    one_line_error(capsys, [*argv, "--student-obs", "0:9"], "outside the observation's 4 features")
    one_line_error(capsys, [*argv, "--student-obs", "x"], "start:stop ranges")
    one_line_error(capsys, [*argv, "--student-obs-noise", "-1"], "--student-obs-noise")
    assert not out.exists()


# --- students with a history of readings -------------------------------------------------------------

gymnasium.register("KdRlViewCountdown-v0", entry_point=Countdown)


def test_observation_windows_hold_the_last_readings_oldest_first_and_zeros_before_the_first():
    windows = ObservationWindows(2, 3, 2)
    windows.start([0, 1], np.array([[1, 1], [5, 5]]))
    windows.push([0], np.array([[2, 2]]))
    np.testing.assert_array_equal(windows.view([0, 1]), [[0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 5, 5]])
    windows.push([0, 1], np.array([[3, 3], [6, 6]]))
    windows.push([0], np.array([[4, 4]]))
    windows.start([1], np.array([[9, 9]]))
    np.testing.assert_array_equal(windows.view([0, 1]), [[2, 2, 3, 3, 4, 4], [0, 0, 0, 0, 9, 9]])


def test_a_history_student_sees_its_window_of_normalised_chosen_readings(tmp_path, rng):
    model = StudentModel(2, hidden_units=8, observation_dim=4, history=3, observation_indices=[0, 2],
                         observation_mean=[1, 2, 3, 4], observation_std=[1, 2, 3, 4])  # fmt: skip
    assert model.observation_shape == (3, 4) and model.input_indices == (0, 2, 4, 6, 8, 10)
    flat = StudentModel(2, hidden_units=8, observation_dim=6)
    flat.set_weights(model.get_weights())
    windows = rng.normal(size=(5, 3, 4)).astype(np.float32)
    seen = ((windows - [1, 2, 3, 4]) / [1, 2, 3, 4])[:, :, [0, 2]].reshape(5, 6)
    np.testing.assert_allclose(np.asarray(model(windows)), np.asarray(flat(seen)), atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(windows.reshape(5, 12))), np.asarray(flat(seen)), atol=1e-5)
    np.testing.assert_allclose(OutputSnapshot(model)(windows.reshape(5, 12)), np.asarray(flat(seen)), atol=1e-5)
    model.save(tmp_path / "h.keras")
    loaded = keras.saving.load_model(tmp_path / "h.keras")
    assert loaded.history == 3 and loaded.observation_shape == (3, 4) and loaded.observation_std.size == 12
    np.testing.assert_allclose(np.asarray(loaded(windows)), np.asarray(model(windows)), atol=1e-6)
    for fmt, name in (("numpy", "p.npz"), ("tflite", "p.tflite"), ("onnx", "p.onnx")):
        policy = load_any_policy(export_model(model, fmt, tmp_path / name))
        assert policy.history == 3, fmt
        np.testing.assert_allclose(np.asarray(policy(windows.reshape(5, 12))), np.asarray(flat(seen)), atol=1e-5)
    for fmt, name in (("c", "c"), ("tflm", "tflm"), ("tflite-int8", "q.tflite")):
        with pytest.raises(KdRlError, match="takes one reading; a policy that sees the last 3"):
            export_model(model, fmt, tmp_path / name, env_id="CartPole-v1")


def test_collection_gives_a_history_student_its_windows_and_restarts_them_with_each_episode():
    student = StudentModel(2, hidden_units=4, observation_dim=2, history=3)
    teacher = StudentModel(2, hidden_units=4, observation_dim=2)
    collector = Collector("KdRlViewCountdown-v0", teacher, student, num_envs=1,
                          env_kwargs={"terminate_at": 4})  # fmt: skip
    windows, _ = collector.collect(6)
    # Countdown's observation is [t, 0]; episodes of 4 steps: t = 0, 1, 2, 3, then 0, 1 again.
    times = windows.reshape(6, 3, 2)[:, :, 0]
    np.testing.assert_array_equal(times, [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [0, 0, 0], [0, 0, 1]])


def test_a_student_with_a_window_of_positions_recovers_what_one_reading_lacks(tmp_path):
    teacher = load_policy("CartPole-v1-dqn")
    common = dict(env_id="CartPole-v1", steps=10_000, eval_episodes=10, curve_episodes=2, eval_every=0,
                  student_obs="0,2")  # fmt: skip
    _, blind = distill_policy(teacher, DistillConfig(**common), progress=False)
    student, window = distill_policy(teacher, DistillConfig(student_history=2, **common),
                                     out_dir=tmp_path / "run", progress=False)  # fmt: skip
    assert student.history == 2 and window["student_history"] == 2
    # Seeds 0-3 scored 1.00, 0.67, 0.96 and 0.75 with two readings, about 0.05 with one.
    assert blind["normalised_score"] < 0.2 and window["normalised_score"] > 0.6
    path = str(tmp_path / "run" / "student.keras")
    assert run_episodes(load_any_policy(path), "CartPole-v1", episodes=3).mean_return > 450
    tflite = export_model(keras.saving.load_model(path), "tflite", tmp_path / "s.tflite")
    assert run_episodes(load_any_policy(tflite), "CartPole-v1", episodes=3).mean_return > 450


def test_history_is_refused_where_it_does_not_fit(cartpole_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    given = StudentModel(2, observation_dim=4, history=2)
    with pytest.raises(KdRlError, match="student_history=3 but the given student has 2"):
        distill_policy(cartpole_teacher, DistillConfig(steps=100, student_history=3), out_dir=out, student=given)
    with pytest.raises(KdRlError, match="needs the size of one vector reading"):
        StudentModel(2, observation_shape=(10, 10, 4), history=2)
    path = tmp_path / "teacher.keras"
    cartpole_teacher.save(path)
    argv = ["distill", "--teacher", str(path), "--env", "CartPole-v1", "--steps", "100", "--out", str(out)]
    one_line_error(capsys, [*argv, "--student-history", "0"], "--student-history")
    assert not out.exists()


def test_a_history_student_records_a_video_with_its_window(tmp_path):
    pytest.importorskip("imageio")
    from kd_rl.record import record

    student = StudentModel(2, hidden_units=4, observation_dim=4, history=3, observation_noise=0.1)
    result = record(student, "CartPole-v1", tmp_path / "s.gif", episodes=1, max_steps=20)
    assert result["frames"] >= 2 and (tmp_path / "s.gif").stat().st_size > 0
