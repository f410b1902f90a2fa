"""Recurrent students: a GRU or LSTM state carried through episodes, learnt on sequences (issue #35)."""

from __future__ import annotations

import subprocess
import sys

import gymnasium
import keras
import numpy as np
import pytest
from conftest import Countdown, one_line_error

from kd_rl.data import Collector, SequenceBuffer
from kd_rl.distill import DistillConfig, distill_policy, make_distill_step
from kd_rl.errors import KdRlError
from kd_rl.evaluate import run_episodes
from kd_rl.export import export_model, supported_formats
from kd_rl.models import RecurrentStudent, StudentModel, load_policy
from kd_rl.policies import NumpyPolicy, PolicyMemory, load_any_policy, recurrent_cell_step

gymnasium.register("KdRlRecurrentCountdown-v0", entry_point=Countdown)


def _student(cell="gru", continuous=False, **kwargs):
    actions = dict(action_low=[-1.0, -2.0], action_high=[1.0, 2.0]) if continuous else dict(num_actions=3)
    model = RecurrentStudent(recurrent_units=6, cell=cell, hidden_units=[8], observation_dim=4,
                             observation_indices="0,2", observation_mean=[0.5, 0, -1, 0],
                             observation_std=[2, 1, 3, 1], **actions, **kwargs)  # fmt: skip
    rng = np.random.default_rng(0)  # weights far from their initial ones, so that the state matters
    model.set_weights([w + rng.normal(scale=0.4, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_unroll_is_step_by_step_with_the_state_zeroed_where_an_episode_starts(cell, rng):
    model = _student(cell)
    assert model.state_size == (6 if cell == "gru" else 12)
    x = rng.normal(size=(3, 7, 4)).astype(np.float32)
    starts = np.zeros((3, 7), bool)
    starts[1, 3] = starts[2, 0] = True
    outputs, final = model.unroll(x, starts)
    state, stepped = model.initial_state(3), []
    for t in range(7):
        state = state * (1.0 - starts[:, t : t + 1])
        out, state = model.step(x[:, t], state)
        stepped.append(out)
    np.testing.assert_allclose(np.stack(stepped, 1), outputs, atol=1e-6)
    np.testing.assert_allclose(state, final, atol=1e-6)
    # After the start in sequence 1, its outputs are those of a fresh sequence from there.
    np.testing.assert_allclose(model.unroll(x[1:2, 3:])[0], outputs[1:2, 3:], atol=1e-6)
    assert not np.allclose(outputs[0, 1:], np.asarray(model(x[0, 1:])))  # memory changes the later steps
    np.testing.assert_allclose(np.asarray(model(x[:, 0])), outputs[:, 0], atol=1e-6)  # call: an episode's first step
    np.testing.assert_allclose(np.asarray(model(x)), model.unroll(x)[0], atol=1e-6)  # call on sequences: unroll
    h = np.zeros((3, model.state_size), np.float32)
    cell_weights = (cell, *model.cell.get_weights())
    seen = ((x[:, 0] - [0.5, 0, -1, 0]) / [2, 1, 3, 1])[:, [0, 2]]
    np.testing.assert_allclose(recurrent_cell_step(cell_weights, seen, h)[1], model._cell(seen, h)[1], atol=1e-6)


def test_a_recurrent_student_saves_and_loads_in_a_fresh_process(tmp_path, rng):
    model = _student("lstm")
    path = tmp_path / "r.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    assert type(loaded) is RecurrentStudent and loaded.cell_type == "lstm" and loaded.observation_indices == (0, 2)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    code = (
        f"import kd_rl, keras, numpy as np; m = keras.saving.load_model({str(path)!r}); "
        "o, s = m.step(np.zeros((1, 4), 'float32'), m.initial_state(1)); print(o.shape[-1], s.shape[-1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "3 12"


def test_bad_recurrent_students_are_refused():
    with pytest.raises(KdRlError, match="history=2 is for memoryless students"):
        RecurrentStudent(2, observation_dim=4, history=2)
    with pytest.raises(KdRlError, match="cell must be one of gru, lstm"):
        RecurrentStudent(2, observation_dim=4, cell="rnn")
    with pytest.raises(KdRlError, match="conv_layers are for image ones"):
        RecurrentStudent(2, observation_shape=(10, 10, 4), conv_layers=[[4, 3, 1]])
    with pytest.raises(KdRlError, match="recurrent_units must be an int >= 1"):
        RecurrentStudent(2, observation_dim=4, recurrent_units=0)
    with pytest.raises(KdRlError, match="use step"):
        RecurrentStudent(2, observation_dim=4).features(np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("continuous", [False, True])
def test_tflite_and_numpy_exports_carry_the_state_as_the_keras_student_does_over_whole_episodes(
    cell, continuous, tmp_path
):
    model = _student(cell, continuous)
    assert supported_formats(model) == ("tflite", "numpy")
    env_id = "Pendulum-v1" if continuous else "CartPole-v1"
    if continuous:  # Pendulum: 3 features, one action in [-2, 2]
        model = RecurrentStudent(recurrent_units=6, cell=cell, hidden_units=[8], observation_dim=3,
                                 action_low=[-2.0], action_high=[2.0])  # fmt: skip
        model.set_weights([w + 0.3 for w in model.get_weights()])
    else:
        model = RecurrentStudent(2, recurrent_units=6, cell=cell, hidden_units=[8], observation_dim=4,
                                 observation_indices="0,2")  # fmt: skip
        rng = np.random.default_rng(1)
        model.set_weights([w + rng.normal(scale=0.5, size=w.shape).astype(np.float32) for w in model.get_weights()])
    reference = run_episodes(model, env_id, episodes=3, seed=5, max_steps=200)
    for fmt, name in (("tflite", "r.tflite"), ("numpy", "r.npz")):
        policy = load_any_policy(export_model(model, fmt, tmp_path / name))
        assert policy.state_size == model.state_size, fmt
        played = run_episodes(policy, env_id, episodes=3, seed=5, max_steps=200)
        np.testing.assert_allclose(played.returns, reference.returns, rtol=1e-4, err_msg=fmt)
        assert played.lengths == reference.lengths, fmt
        # Step by step over an episode: the same outputs and states, to float rounding.
        env = gymnasium.make(env_id)
        obs, _ = env.reset(seed=5)
        keras_state = exported_state = np.zeros((1, model.state_size), np.float32)
        for _ in range(100):
            x = np.asarray(obs, np.float32)[None]
            out, keras_state = model.step(x, keras_state)
            exported, exported_state = policy.step(x, exported_state)
            expected = model.actions_from_outputs(np.asarray(out)) if continuous else np.asarray(out)
            np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=2e-5, err_msg=fmt)
            np.testing.assert_allclose(exported_state, keras_state, rtol=1e-5, atol=2e-5, err_msg=fmt)
            obs, _, terminated, truncated, _ = env.step(np.asarray(model.actions_from_outputs(np.asarray(out)))[0])
            if terminated or truncated:
                break
    for fmt, name in (("onnx", "r.onnx"), ("c", "c"), ("tflite-int8", "q.tflite")):
        with pytest.raises(KdRlError, match="recurrent student.s state; it exports as one of: tflite, numpy"):
            export_model(model, fmt, tmp_path / name, env_id=env_id)


def test_numpy_export_round_trips_through_its_file(tmp_path, rng):
    model = _student("gru")
    policy = NumpyPolicy.load(export_model(model, "numpy", tmp_path / "r.npz"))
    assert policy.count_params() == model.count_params()
    x, state = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=(4, 6)).astype(np.float32)
    out, new = model.step(x, state)
    ours, our_new = policy.step(x, state)
    np.testing.assert_allclose(ours, out, atol=1e-5)
    np.testing.assert_allclose(our_new, new, atol=1e-5)
    np.testing.assert_allclose(policy(x), np.asarray(model(x)), atol=1e-5)


def test_policy_memory_carries_the_state_and_forgets_it_at_a_start(rng):
    model = _student("gru")
    memory = PolicyMemory(model, 2, 4)
    x = rng.normal(size=(3, 2, 4)).astype(np.float32)
    first = memory([0, 1], x[0])
    second = memory([0], x[1, :1])
    memory.start([1])
    restarted = memory([1], x[1, 1:])
    np.testing.assert_allclose(first, np.asarray(model(x[0])), atol=1e-5)
    np.testing.assert_allclose(second, np.asarray(model.unroll(x[:2, :1].transpose(1, 0, 2))[0][0, 1:]), atol=1e-5)
    np.testing.assert_allclose(restarted, np.asarray(model(x[1, 1:])), atol=1e-5)


def test_collection_says_which_environment_each_state_came_from_and_where_episodes_start():
    student = RecurrentStudent(2, recurrent_units=3, hidden_units=[4], observation_dim=2)
    teacher = StudentModel(2, hidden_units=4, observation_dim=2)
    collector = Collector("KdRlRecurrentCountdown-v0", teacher, student, num_envs=2,
                          env_kwargs={"terminate_at": 3})  # fmt: skip
    obs, _, envs, starts = collector.collect_steps(9)  # the environments take turns: 0, 1, 0, 1, ...
    np.testing.assert_array_equal(envs, [0, 1, 0, 1, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(obs[envs == 0, 0], [0, 1, 2, 0, 1])  # Countdown's observation is [t, 0]
    np.testing.assert_array_equal(starts[envs == 0], [True, False, False, True, False])
    np.testing.assert_array_equal(starts[envs == 1], [True, False, False, True])


def test_the_sequence_buffer_keeps_each_stream_in_order_and_samples_consecutive_windows(rng):
    buffer = SequenceBuffer(capacity=12, num_envs=2, obs_dim=1, num_actions=1, length=3)
    t = np.arange(10, dtype=np.float32)
    envs = np.tile([0, 1], 5)
    buffer.add(t[:, None] + 100 * envs[:, None], -t[:, None], envs, t % 4 == 0)
    assert len(buffer) == 10 and buffer.added == 10
    buffer.add(np.array([[10.0], [12.0], [14.0]]), np.zeros((3, 1)), [0, 0, 0], [False, True, False])
    assert len(buffer) == 11  # stream 0 keeps its newest 6 of 8, stream 1 its 5
    sequences, labels = buffer.sample(200, rng)
    assert sequences.shape == (200, 3, 2) and labels.shape == (200, 3, 1)
    for seq in sequences:
        values = seq[:, 0]
        if values[0] >= 100:  # stream 1: 101, 103, ..., 109
            assert np.all(np.diff(values) == 2) and values[0] >= 101
        else:  # stream 0 keeps 4, 6, 8, 10, 12, 14
            assert np.all(np.diff(values) == 2) and values[0] >= 4
    starts = {float(v): f for seq in sequences for v, f in seq}
    assert starts[8.0] == 1.0 and starts[12.0] == 1.0 and starts[4.0] == 1.0 and starts[6.0] == 0.0
    copy = SequenceBuffer(capacity=12, num_envs=2, obs_dim=1, num_actions=1, length=3)
    copy.load_state(buffer.state())
    np.testing.assert_array_equal(
        copy.sample(50, np.random.default_rng(1))[0], buffer.sample(50, np.random.default_rng(1))[0]
    )
    with pytest.raises(KdRlError, match="fewer than a sequence of 8"):
        SequenceBuffer(capacity=12, num_envs=2, obs_dim=1, num_actions=1, length=8)


def test_the_recurrent_step_learns_only_after_the_burn_in_or_an_episode_start():
    teacher = StudentModel(2, hidden_units=4, observation_dim=2)
    student = RecurrentStudent(2, recurrent_units=3, hidden_units=[4], observation_dim=2)
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype(np.float32)
    flags = np.zeros((2, 5, 1), np.float32)
    flags[1, 2] = 1.0
    labels = np.random.default_rng(1).normal(size=(2, 5, 2)).astype(np.float32)
    step = make_distill_step(teacher, student, keras.optimizers.SGD(0.0), "mse", burn_in=4)
    loss = float(step(np.concatenate([x, flags], -1), labels))
    outputs = np.asarray(student.unroll(x, flags[..., 0] > 0)[0])
    trained = [(0, 4), (1, 2), (1, 3), (1, 4)]  # after the burn-in of 4, and from the start at (1, 2)
    expected = np.mean([np.mean((labels[i, t] - outputs[i, t]) ** 2) for i, t in trained])
    assert loss == pytest.approx(expected, rel=1e-5)
    with pytest.raises(KdRlError, match="sequences"):
        step(x[:, 0], labels[:, 0])
    with pytest.raises(KdRlError, match="no step after the burn-in"):
        step(np.concatenate([x, flags], -1)[:, :4], labels[:, :4])


def test_a_recurrent_student_recovers_what_positions_alone_lack_and_resumes(tmp_path):
    teacher = load_policy("CartPole-v1-dqn")
    common = dict(env_id="CartPole-v1", steps=10_000, eval_episodes=10, curve_episodes=2, eval_every=0,
                  student_obs="0,2", hidden_units=[32], checkpoint_every=5000)  # fmt: skip
    student, metrics = distill_policy(teacher, DistillConfig(student_recurrent=32, **common),
                                      out_dir=tmp_path / "run", progress=False)  # fmt: skip
    assert isinstance(student, RecurrentStudent) and metrics["student_recurrent"] == 32
    # Seeds 0 and 1 scored 1.00 and 1.00 (a memoryless student on positions alone: about 0.05).
    assert metrics["normalised_score"] > 0.6
    path = str(tmp_path / "run" / "student.keras")
    loaded = load_any_policy(path)
    assert run_episodes(loaded, "CartPole-v1", episodes=3).mean_return > 400
    tflite = export_model(keras.saving.load_model(path), "tflite", tmp_path / "s.tflite")
    assert run_episodes(load_any_policy(tflite), "CartPole-v1", episodes=3).mean_return > 400
    # Stopped half-way (its checkpoint), the run resumes with its sequence buffer.
    config = DistillConfig(student_recurrent=8, **{**common, "steps": 2000, "checkpoint_every": 1000})
    distill_policy(teacher, config, out_dir=tmp_path / "short", progress=False)
    (tmp_path / "short" / "metrics.json").unlink()  # as if it had stopped after its checkpoint at 1,000 steps
    longer = DistillConfig(student_recurrent=8, **{**common, "steps": 3000, "checkpoint_every": 1000})
    _, resumed = distill_policy(teacher, longer, out_dir=tmp_path / "short", resume=True, progress=False)
    assert resumed["env_steps"] == 3000 and resumed["labelled_states"] == 3000  # 1,000 restored, 2,000 new


def test_recurrent_students_are_refused_where_they_do_not_fit(cartpole_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(KdRlError, match="give a history or a recurrent student, not both"):
        DistillConfig(student_recurrent=8, student_history=2)
    with pytest.raises(KdRlError, match="burn_in=8 must be below sequence_length=8"):
        DistillConfig(student_recurrent=8, sequence_length=8)
    with pytest.raises(KdRlError, match="single-task"):
        DistillConfig(env_id=("CartPole-v1", "Acrobot-v1"), student_recurrent=8)
    with pytest.raises(KdRlError, match="give student_recurrent"):
        DistillConfig(student_cell="lstm")
    given = RecurrentStudent(2, observation_dim=4, recurrent_units=4)
    with pytest.raises(KdRlError, match="student_recurrent=8 but the given student has 4"):
        distill_policy(cartpole_teacher, DistillConfig(steps=400, student_recurrent=8), out_dir=out, student=given)
    with pytest.raises(KdRlError, match="leave --strategy out"):
        distill_policy(cartpole_teacher, DistillConfig(steps=400, strategy="mirrored"), out_dir=out, student=given)
    with pytest.raises(KdRlError, match="leave --actors out"):
        distill_policy(cartpole_teacher, DistillConfig(steps=100, student_recurrent=8, actors=1), out_dir=out)
    with pytest.warns(UserWarning, match="teacher-driven data only"):
        distill_policy(cartpole_teacher, DistillConfig(steps=400, student_recurrent=4, collect="teacher",
                                                       eval_episodes=1, curve_episodes=1), progress=False)  # fmt: skip
    assert not out.exists()
    path = tmp_path / "teacher.keras"
    cartpole_teacher.save(path)
    argv = ["distill", "--teacher", str(path), "--env", "CartPole-v1", "--steps", "100", "--out", str(out)]
    one_line_error(capsys, [*argv, "--student-recurrent", "8", "--student-history", "3"], "not both")
    one_line_error(capsys, [*argv, "--student-recurrent", "-1"], "--student-recurrent")
    one_line_error(capsys, [*argv, "--student-recurrent", "8", "--student-cell", "rnn"], "--student-cell")
    one_line_error(capsys, [*argv, "--student-recurrent", "8", "--burn-in", "40"], "burn_in=40")
    one_line_error(capsys, [*argv, "--student-recurrent", "8"], "fewer than a sequence of --sequence-length 32")
    assert not out.exists()
    pytest.importorskip("minatar")
    frames = StudentModel(3, hidden_units=[8], observation_shape=(10, 10, 4), conv_layers=[[4, 3, 1]])
    with pytest.raises(KdRlError, match="--student-recurrent are for vector observations"):
        distill_policy(frames, DistillConfig(env_id="MinAtar/Breakout-v1", steps=100, student_recurrent=8), out_dir=out)


def test_a_recurrent_run_packages_without_onnx_and_records_a_video(tmp_path, monkeypatch):
    pytest.importorskip("imageio")
    pytest.importorskip("huggingface_hub")
    from kd_rl.package import package_run
    from kd_rl.record import record

    teacher = load_policy("CartPole-v1-dqn")
    config = DistillConfig(env_id="CartPole-v1", steps=2000, eval_episodes=5, curve_episodes=2, eval_every=0,
                           student_obs="0,2", student_recurrent=8)  # fmt: skip
    student, _ = distill_policy(teacher, config, out_dir=tmp_path / "run", progress=False)
    result = package_run(tmp_path / "run", tmp_path / "card")
    assert "student.tflite" in result["files"] and "student.onnx" not in result["files"]
    card = (tmp_path / "card" / "README.md").read_text()
    assert "student.onnx" not in card and "`next_state`" in card
    snippet = card.split("```python\n", 1)[1].split("```", 1)[0]  # the card's "Use it" code carries the state
    assert "model.step(observations, state)" in snippet
    scope = {}
    with monkeypatch.context() as m:
        m.chdir(tmp_path / "card")
        exec(snippet, scope)
    assert scope["actions"].shape == (1,) and scope["state"].shape == (1, 8)
    # The video's episode is the one run_episodes plays with the same seed: the state is carried alike.
    played = record(student, "CartPole-v1", tmp_path / "s.gif", episodes=1, seed=3, max_steps=200)
    assert played["returns"] == run_episodes(student, "CartPole-v1", episodes=1, seed=3, max_steps=200).returns
