"""Image observations end to end (issue #34): MinAtar environments, CNN teachers and students, their exports."""

from __future__ import annotations

import json

import gymnasium
import keras
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import kd_rl.games
from kd_rl.config import DistillConfig
from kd_rl.data import ReplayBuffer
from kd_rl.distill import distill_policy
from kd_rl.envs import EnvGroup, env_spec, make_gymnasium_env
from kd_rl.errors import KdRlError
from kd_rl.export import export_model
from kd_rl.models import StudentModel, TeacherModel
from kd_rl.policies import NumpyPolicy, load_any_policy

BREAKOUT = "MinAtar/Breakout-v1"
GAMES = {"Asterix": (4, 5), "Breakout": (4, 3), "Freeway": (7, 3), "Seaquest": (10, 6), "SpaceInvaders": (6, 4)}


def _frames(n: int, channels: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 10, 10, channels)) > 0.8


def _cnn_teacher(channels: int = 4, actions: int = 3) -> TeacherModel:
    return TeacherModel(
        num_actions=actions, observation_shape=(10, 10, channels), conv_layers=[[16, 3, 1]], hidden_units=32,
        output_type="q_values",
    )  # fmt: skip


@pytest.mark.parametrize("game", sorted(GAMES))
def test_minatar_games_register_pass_the_env_checker_and_repeat_with_a_seed(game):
    env_id = f"MinAtar/{game}-v1"
    env = make_gymnasium_env(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    channels, actions = GAMES[game]
    spec = env_spec(env_id)
    assert (spec.obs_shape, spec.obs_dtype, spec.num_actions, spec.is_image) == (
        (10, 10, channels),
        "uint8",
        actions,
        True,
    )
    assert env.spec.max_episode_steps == kd_rl.games.MINATAR_MAX_STEPS

    def play(seed):
        obs, _ = env.reset(seed=seed)
        frames = [obs]
        for t in range(200):
            obs, _, terminated, truncated, _ = env.step(t % actions)
            frames.append(obs)
            if terminated or truncated:
                break
        return np.stack(frames)

    first, again, other = play(3), play(3), play(4)
    assert first.dtype == bool and np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)
    env.close()
    assert make_gymnasium_env(f"MinAtar/{game}-v0").action_space.n == 6


def test_env_group_keeps_frames_as_bytes():
    with EnvGroup(BREAKOUT, 2) as envs:
        obs = envs.reset(seeds=[0, 1])
        assert obs.dtype == np.uint8 and obs.shape == (2, 400) and set(np.unique(obs)) <= {0, 1}
        obs, *_ = envs.step([0, 1])
        assert obs.dtype == np.uint8


def test_minatar_frames_render_as_colours():
    env = make_gymnasium_env(BREAKOUT, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (10, 10, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame.any(axis=-1), obs.any(axis=-1))  # coloured exactly where a channel is set


def test_missing_game_packages_are_named(monkeypatch):
    monkeypatch.setattr(kd_rl.games, "_minatar", lambda: None)
    with pytest.raises(KdRlError, match=r"kd_rl\[minatar\]"):
        make_gymnasium_env(BREAKOUT)
    monkeypatch.setitem(__import__("sys").modules, "ale_py", None)  # import ale_py now fails
    with pytest.raises(KdRlError, match=r"kd_rl\[atari\]"):
        make_gymnasium_env("ALE/Pong-v5")


def test_a_cnn_policy_takes_frames_in_their_shape_or_flat_and_saves(tmp_path):
    teacher = _cnn_teacher()
    frames = _frames(5)
    out = np.asarray(teacher(frames))
    np.testing.assert_allclose(np.asarray(teacher(frames.reshape(5, -1).astype(np.uint8))), out, atol=1e-6)
    assert teacher.observation_dim == 400 and teacher.count_params() == 16 * 4 * 9 + 16 + 1024 * 32 + 32 + 33 * 3
    teacher.save(tmp_path / "t.keras")
    again = keras.saving.load_model(tmp_path / "t.keras")
    np.testing.assert_allclose(np.asarray(again(frames)), out, atol=1e-6)
    assert again.conv_layers == ((16, 3, 1),) and again.observation_shape == (10, 10, 4)
    mlp = StudentModel(num_actions=3, observation_shape=(10, 10, 4), hidden_units=8)  # an MLP on the flat frame
    assert np.asarray(mlp(frames)).shape == (5, 3)
    assert "conv_layers" not in StudentModel(num_actions=2, observation_dim=4).get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(conv_layers=[[16, 3, 1]], observation_dim=400), "observation_shape"),
        (dict(conv_layers=[[16, 11, 1]], observation_shape=(10, 10, 4)), "to nothing"),
        (dict(conv_layers=[[16, 3]], observation_shape=(10, 10, 4)), "triples"),
        (dict(conv_layers="16:3:1", observation_shape=(10, 10, 4)), "triples"),
        (dict(observation_shape=(10, 0, 4)), "positive ints"),
        (dict(observation_shape=(10, 10, 4), observation_dim=8), "does not match"),
    ],
)
def test_bad_convolution_arguments_name_themselves(kwargs, match):
    with pytest.raises(KdRlError, match=match):
        StudentModel(num_actions=3, **kwargs)


def test_a_channel_mismatch_is_named():
    with pytest.raises(ValueError, match="7 channels where the model has 4"):
        _cnn_teacher()(_frames(2, channels=7))


def test_numpy_convolutions_match_keras(tmp_path):
    model = StudentModel(
        num_actions=4, observation_shape=(10, 10, 6), conv_layers=[[8, 3, 1], [4, 2, 2]], hidden_units=16
    )
    frames = _frames(7, channels=6)
    policy = NumpyPolicy.from_model(model)
    np.testing.assert_allclose(policy(frames), np.asarray(model(frames)), atol=1e-5)
    policy.save(tmp_path / "p.npz")
    np.testing.assert_allclose(NumpyPolicy.load(tmp_path / "p.npz")(frames.reshape(7, -1)), policy(frames), atol=1e-6)
    assert policy.count_params() == model.count_params()


def test_image_buffers_store_bytes():
    buffer = ReplayBuffer(100, 400, 3, obs_dtype="uint8")
    frames = _frames(10).reshape(10, -1)
    buffer.add(frames, np.zeros((10, 3)))
    assert buffer.observations.dtype == np.uint8 and buffer.observations.nbytes == 100 * 400
    obs, _ = buffer.sample(4, np.random.default_rng(0))
    assert obs.dtype == np.uint8


@pytest.mark.parametrize("fmt, suffix", [("tflite", ".tflite"), ("onnx", ".onnx"), ("numpy", ".npz")])
def test_cnn_exports_take_frames_and_match_keras(tmp_path, fmt, suffix):
    model = _cnn_teacher()
    path = tmp_path / f"p{suffix}"
    export_model(model, fmt, path)
    policy = load_any_policy(path)
    if fmt == "tflite":  # what a runtime is handed: one frame in its own shape
        assert tuple(policy.interpreter.get_input_details()[0]["shape"]) == (1, 10, 10, 4)
    frames = _frames(3, seed=1)
    expected = np.asarray(model(frames))
    np.testing.assert_allclose(policy(frames), expected, atol=1e-5)
    np.testing.assert_allclose(policy(frames.reshape(3, -1)), expected, atol=1e-5)


def test_cnn_int8_export_agrees_and_c_is_refused(tmp_path):
    model = _cnn_teacher()
    export_model(model, "tflite-int8", tmp_path / "p8.tflite", env_id=BREAKOUT)
    policy = load_any_policy(tmp_path / "p8.tflite")
    frames = _frames(50, seed=2)
    agreement = np.mean(np.argmax(policy(frames), -1) == np.argmax(np.asarray(model(frames)), -1))
    assert agreement >= 0.8
    with pytest.raises(KdRlError, match="format c is for MLPs"):
        export_model(model, "c", tmp_path / "c")


def test_distil_an_image_teacher_into_cnn_and_mlp_students(tmp_path):
    teacher = _cnn_teacher()
    config = DistillConfig(env_id=BREAKOUT, steps=1000, hidden_units=16, conv_layers=[[4, 3, 1]], eval_episodes=2,
                           curve_episodes=1, eval_every=1000, batch_size=32)  # fmt: skip
    student, metrics = distill_policy(teacher, config, out_dir=tmp_path / "cnn")
    assert student.conv_layers == ((4, 3, 1),) and student.observation_shape == (10, 10, 4)
    assert metrics["student_params"] < metrics["teacher_params"]
    loaded = keras.saving.load_model(tmp_path / "cnn" / "student.keras")
    frames = _frames(4)
    np.testing.assert_allclose(np.asarray(loaded(frames)), np.asarray(student(frames)), atol=1e-6)
    recorded = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert recorded["conv_layers"] == [[4, 3, 1]]
    mlp, _ = distill_policy(teacher, DistillConfig(**{**config.to_dict(), "conv_layers": []}), out_dir=tmp_path / "mlp")
    assert mlp.conv_layers == () and mlp.observation_shape == (10, 10, 4)
    default, _ = distill_policy(teacher, DistillConfig(**{**config.to_dict(), "conv_layers": None}))
    assert default.conv_layers == teacher.conv_layers  # the teacher's convolutions when none are given


def test_image_and_vector_mismatches_are_refused_before_anything_is_written(tmp_path):
    cnn = _cnn_teacher()
    vector = TeacherModel(num_actions=2, observation_dim=4)
    cases = [
        (cnn, "CartPole-v1", "convolutional"),
        (vector, BREAKOUT, "400"),
        (_cnn_teacher(channels=4), "MinAtar/Freeway-v1", "7 channels, not 4"),
    ]
    for i, (teacher, env_id, match) in enumerate(cases):
        out = tmp_path / f"run{i}"
        with pytest.raises(KdRlError, match=match):
            distill_policy(teacher, DistillConfig(env_id=env_id, steps=100), out_dir=out)
        assert not out.exists()
    with pytest.raises(KdRlError, match="not images"):
        distill_policy(vector, DistillConfig(env_id="CartPole-v1", steps=100, conv_layers=[[4, 3, 1]]))


def test_cli_bad_image_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from kd_rl.cli import main

    _cnn_teacher().save(tmp_path / "t.keras")
    out = tmp_path / "run"
    argv = ["distill", "--teacher", str(tmp_path / "t.keras"), "--out", str(out), "--steps", "100"]
    assert main([*argv, "--env", "CartPole-v1"]) == 2
    assert main([*argv, "--env", "MinAtar/Freeway-v1"]) == 2
    assert main([*argv, "--env", BREAKOUT, "--conv", "16:3"]) == 2
    monkeypatch.setitem(__import__("sys").modules, "ale_py", None)
    assert main([*argv, "--env", "ALE/Pong-v5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("kd-rl") for line in err), err
    assert "kd_rl[atari]" in err[-1] and "Traceback" not in "".join(err)
    assert not out.exists()


def test_a_convolutional_dqn_teacher_trains_exports_and_acts_as_it_trained(tmp_path):
    from kd_rl.teachers import train_teacher

    overrides = dict(learning_starts=200, train_freq=64, gradient_steps=4, buffer_size=2000, n_envs=2,
                     periodic_eval_episodes=1, eval_every=1000, conv_layers=[[4, 3, 1]], hidden_units=[16])  # fmt: skip
    metrics = train_teacher(BREAKOUT, "dqn", tmp_path, steps=1200, eval_episodes=2, overrides=overrides, progress=False)
    teacher = keras.saving.load_model(tmp_path / "teacher.keras")
    assert teacher.conv_layers == ((4, 3, 1),) and teacher.observation_shape == (10, 10, 4)
    assert teacher.output_type == "q_values" and metrics["params"] == teacher.count_params()
    frames = _frames(6)
    np.testing.assert_allclose(NumpyPolicy.from_model(teacher)(frames), np.asarray(teacher(frames)), atol=1e-5)


def test_one_student_for_games_with_different_channels(tmp_path):
    from kd_rl.multitask import MultiTaskStudent, distill_multitask

    teachers = [_cnn_teacher(4, 3), _cnn_teacher(7, 3)]
    config = DistillConfig(env_id=(BREAKOUT, "MinAtar/Freeway-v1"), steps=600, hidden_units=16, conv_layers=[[4, 3, 1]],
                           eval_episodes=1, curve_episodes=1, eval_every=600, batch_size=32)  # fmt: skip
    student, metrics = distill_multitask(teachers, config, out_dir=tmp_path / "multi", progress=False)
    breakout, freeway = student.for_task(BREAKOUT), student.for_task("MinAtar/Freeway-v1")
    assert breakout.hidden_layers == freeway.hidden_layers  # the Dense trunk is shared
    assert breakout.convolutions[0] is not freeway.convolutions[0]  # each game's own first convolution
    assert freeway(_frames(2, channels=7)).shape == (2, 3) and len(metrics["tasks"]) == 2
    loaded = keras.saving.load_model(tmp_path / "multi" / "student.keras")
    np.testing.assert_allclose(
        np.asarray(loaded(_frames(3, channels=7), task=1)), np.asarray(freeway(_frames(3, channels=7))), atol=1e-6
    )
    tasks = [{"env_id": BREAKOUT, "obs_dim": 400, "obs_shape": [10, 10, 4], "num_actions": 3},
             {"env_id": "CartPole-v1", "obs_dim": 4, "num_actions": 2}]  # fmt: skip
    with pytest.raises(KdRlError, match="not both"):
        MultiTaskStudent(tasks, conv_layers=[[4, 3, 1]])
    with pytest.raises(KdRlError, match="need conv_layers"):
        MultiTaskStudent(tasks[:1])


SMALL_ATARI = {"preprocessing": {"screen_size": 42, "frame_stack": 2, "noop_max": 5}}


def test_atari_frames_are_preprocessed_as_recorded():
    env = make_gymnasium_env("ALE/Breakout-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
    assert env.get_wrapper_attr("kd_rl_preprocessing") == kd_rl.games.ATARI_PREPROCESSING
    spec = env_spec("ALE/Breakout-v5", **SMALL_ATARI)
    assert spec.obs_shape == (42, 42, 2) and spec.is_image and spec.preprocessing["screen_size"] == 42
    assert make_gymnasium_env("ALE/Breakout-v5", preprocessing="none").reset(seed=0)[0].shape == (210, 160, 3)
    with pytest.raises(KdRlError, match="unknown preprocessing"):
        make_gymnasium_env("ALE/Breakout-v5", preprocessing={"frame_skipping": 2})
    with pytest.raises(KdRlError, match="frame_stack must be a positive int"):
        make_gymnasium_env("ALE/Breakout-v5", preprocessing={"frame_stack": 0})


def test_atari_end_to_end_on_a_cpu(tmp_path, capsys):
    """Train a DQN teacher for a few thousand steps, distil it, evaluate and export: the path runs."""
    from kd_rl.cli import main
    from kd_rl.teachers import train_teacher

    overrides = dict(learning_starts=500, train_freq=64, gradient_steps=4, buffer_size=3000, n_envs=2,
                     periodic_eval_episodes=1, eval_every=2000, conv_layers=[[8, 4, 2]], hidden_units=[32],
                     exploration_fraction=0.5)  # fmt: skip
    # Episodes cut at 100 steps: a policy that never presses FIRE would otherwise play 27,000.
    train_teacher("ALE/Breakout-v5", "dqn", tmp_path / "teacher", steps=2000, eval_episodes=1, overrides=overrides,
                  env_kwargs={**SMALL_ATARI, "max_episode_steps": 100}, progress=False)  # fmt: skip
    teacher = keras.saving.load_model(tmp_path / "teacher" / "teacher.keras")
    assert teacher.observation_shape == (42, 42, 2) and teacher.preprocessing["screen_size"] == 42
    # No preprocessing in --env-kwargs: the teacher's recorded preprocessing makes the environment.
    short = ["--env-kwargs", '{"max_episode_steps": 100}']
    argv = ["distill", "--teacher", str(tmp_path / "teacher" / "teacher.keras"), "--env", "ALE/Breakout-v5",
            "--steps", "500", "--conv", "4:4:2", "--hidden", "16", "--eval-episodes", "1", "--curve-episodes", "1",
            "--out", str(tmp_path / "student"), *short]  # fmt: skip
    assert main(argv) == 0
    student = keras.saving.load_model(tmp_path / "student" / "student.keras")
    assert student.preprocessing == teacher.preprocessing and student.observation_shape == (42, 42, 2)
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert metrics["env_kwargs"] == {"max_episode_steps": 100, "preprocessing": teacher.preprocessing}
    path = str(tmp_path / "student" / "student.keras")
    assert main(["evaluate", path, "--env", "ALE/Breakout-v5", "--episodes", "1", "--json", *short]) == 0
    # Each exported file records the preprocessing too: evaluating it makes the same environment.
    for fmt, name in (("tflite", "s.tflite"), ("numpy", "s.npz"), ("onnx", "s.onnx")):
        assert main(["export", path, "--format", fmt, "--out", str(tmp_path / name)]) == 0
        exported = load_any_policy(tmp_path / name)
        assert exported.observation_shape == (42, 42, 2) and exported.preprocessing == teacher.preprocessing
    assert main(["evaluate", str(tmp_path / "s.tflite"), "--env", "ALE/Breakout-v5", "--episodes", "1", *short]) == 0
    capsys.readouterr()
    # Other preprocessing than the model's is refused, naming both.
    other = ["--env-kwargs", '{"max_episode_steps": 100, "preprocessing": {"screen_size": 84}}']
    assert main(["evaluate", path, "--env", "ALE/Breakout-v5", "--episodes", "1", *other]) == 2
    assert "preprocessed with" in capsys.readouterr().err


def test_a_convolutional_ppo_teacher_trains_and_exports_its_actor(tmp_path):
    from kd_rl.teachers import train_teacher

    overrides = dict(n_envs=2, n_steps=64, n_epochs=1, batch_size=64, periodic_eval_episodes=1, eval_every=128,
                     conv_layers=[[4, 3, 1]], hidden_units=[16], value_hidden_units=[16])  # fmt: skip
    metrics = train_teacher(BREAKOUT, "ppo", tmp_path, steps=256, eval_episodes=2, overrides=overrides, progress=False)
    teacher = keras.saving.load_model(tmp_path / "teacher.keras")
    assert teacher.conv_layers == ((4, 3, 1),) and teacher.output_type == "logits"
    assert teacher.observation_mean is None and metrics["params"] == teacher.count_params()
    frames = _frames(5)
    np.testing.assert_allclose(NumpyPolicy.from_model(teacher)(frames), np.asarray(teacher(frames)), atol=1e-5)


def test_atari_teachers_divide_frames_by_255():
    from tf_agents.specs import tensor_spec

    from kd_rl.teachers.agents import make_q_network
    from kd_rl.teachers.to_keras import export_dqn_teacher

    action_spec = tensor_spec.BoundedTensorSpec((), np.int64, 0, 3)
    params = {"hidden_units": [8], "activation": "relu", "init": "torch", "conv_layers": [[4, 8, 4]]}
    network = make_q_network(action_spec, params, observation_shape=(84, 84, 4), observation_scale=255.0)
    frames = np.random.default_rng(0).integers(0, 256, (3, 84, 84, 4)).astype(np.uint8)
    q = network(frames.reshape(3, -1).astype(np.float32))[0].numpy()
    teacher = export_dqn_teacher(network, 84 * 84 * 4, 4)
    assert teacher.observation_std.tolist() == [255.0]
    np.testing.assert_allclose(np.asarray(teacher(frames)), q, atol=1e-4)


def test_an_mlp_export_plays_an_environment_with_two_dimensional_observations(tmp_path):
    """A vector policy's TFLite file (input [1, 25]) on a 5 x 5 float Box: sizes compare, not shapes."""
    from kd_rl.evaluate import check_model_fits_env

    class Grid(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(5, 5), dtype=np.float32)
        action_space = gymnasium.spaces.Discrete(2)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            return np.zeros((5, 5), np.float32), {}

        def step(self, action):
            return np.zeros((5, 5), np.float32), 1.0, True, False, {}

    if "KdRlGrid-v0" not in gymnasium.registry:
        gymnasium.register("KdRlGrid-v0", entry_point=Grid)
    model = StudentModel(num_actions=2, observation_dim=25, hidden_units=4)
    policy = load_any_policy(export_model(model, "tflite", tmp_path / "p.tflite"))
    assert check_model_fits_env(policy, "KdRlGrid-v0") == (25, 2)
    np.testing.assert_allclose(policy(np.zeros(25)), np.asarray(model(np.zeros((1, 25)))), atol=1e-6)


def test_atari_time_limits_count_agent_steps_and_one_entry_scales_broadcast():
    env = make_gymnasium_env("ALE/Breakout-v5", max_episode_steps=10, **SMALL_ATARI)
    env.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        steps, done = steps + 1, terminated or truncated
    assert steps == 10
    model = StudentModel(num_actions=2, observation_shape=(4, 4, 2), observation_std=[255.0], hidden_units=3)
    policy = NumpyPolicy.from_model(model)
    assert policy.std.shape == (32,)
    frame = np.random.default_rng(0).integers(0, 256, (4, 4, 2)).astype(np.uint8)
    np.testing.assert_allclose(policy(frame), np.asarray(model(frame[None])), atol=1e-5)  # one unbatched frame


def test_minatar_videos_are_drawn_large_enough_to_see(tmp_path):
    from PIL import Image

    from kd_rl.record import record

    record(_cnn_teacher(), BREAKOUT, tmp_path / "v.gif", episodes=1, max_steps=5)
    with Image.open(tmp_path / "v.gif") as image:
        assert image.size[0] >= 160  # the 10 x 10 frame blown up 16 times, pixel by pixel


def test_a_minatar_cnn_acts_in_numpy_on_frames_in_their_own_shape_or_flat():
    from kd_rl.policies import OutputSnapshot, fast_policy_fn

    teacher = _cnn_teacher(channels=7)
    snapshot = fast_policy_fn(teacher)
    assert isinstance(snapshot, OutputSnapshot)
    frames = _frames(5, channels=7)
    expected = np.asarray(teacher(frames))
    np.testing.assert_allclose(snapshot(frames), expected, atol=1e-5)
    np.testing.assert_allclose(snapshot(frames.reshape(5, -1)), expected, atol=1e-5)
