"""Tests for kd_rl.teachers: training, export, evaluation seeds, resume, validation."""

from __future__ import annotations

import csv
import json

import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import TEACHER_METRIC_KEYS
from tf_agents.networks import sequential
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from kd_rl.evaluate import CURVE_EVAL_SEED_OFFSET, episode_seeds, run_episodes
from kd_rl.models import TeacherModel
from kd_rl.teachers import (
    export_dqn_teacher,
    export_ppo_teacher,
    load_hyperparameters,
    make_dqn_agent,
    make_env,
    make_ppo_agent,
    make_q_network,
    run,
    train_teacher,
)
from kd_rl.teachers.collect import OffPolicyEnvs, OffPolicyProgress, make_training_env, training_rounds
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run, check_resumable
from kd_rl.teachers.to_keras import dense_layers

# Tiny settings so a run takes seconds; the numbers are not meant to learn.
TINY_DQN = dict(
    learning_starts=100,
    train_freq=4,
    gradient_steps=1,
    batch_size=32,
    buffer_size=1000,
    periodic_eval_episodes=2,
)
TINY_PPO = dict(n_envs=2, n_steps=32, n_epochs=2, periodic_eval_episodes=2)

METRIC_KEYS = TEACHER_METRIC_KEYS | {"hidden_units", "command", "hyperparameters"}


class _DictObservationEnv(gymnasium.Env):
    """Observations kd_rl cannot flatten into one feature vector (a Box of any shape it can)."""

    observation_space = gymnasium.spaces.Dict({"position": gymnasium.spaces.Discrete(3)})
    action_space = gymnasium.spaces.Discrete(2)


gymnasium.register("KdRlDictObservationTest-v0", entry_point=_DictObservationEnv)


class _WanderEnv(gymnasium.Env):
    """Observation ``[episode id, t]``; reward ``t + 2 * action`` (so each step's reward differs); ends at random.

    Each step terminates with probability 0.2; registration truncates at 8 steps, so both kinds of end occur.
    """

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = float(self.np_random.integers(1, 10**6)), 0
        return np.array([self.episode, 0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(self.t + 2 * int(action))
        terminated = bool(self.np_random.random() < 0.2)
        return np.array([self.episode, self.t], np.float32), reward, terminated, False, {}


gymnasium.register("KdRlWanderTest-v0", entry_point=_WanderEnv, max_episode_steps=8)


def _read_curve(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["env_steps", "mean_return", "wall_seconds"]
    walls = [float(w) for _, _, w in rows[1:]]
    assert walls == sorted(walls), "wall_seconds must grow along the curve"
    return [(int(s), float(r)) for s, r, _ in rows[1:]]


def _rollout_observations(n: int, seed: int = 0) -> np.ndarray:
    """At least ``n`` CartPole states from random-action episodes: float32 [>=n, 4]."""
    env = make_env("CartPole-v1", seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        step = env.reset()
        out.append(step.observation)
        while not step.is_last():
            step = env.step(np.int64(rng.integers(2)))
            out.append(step.observation)
    return np.stack(out)


def _time_steps(observations: np.ndarray) -> ts.TimeStep:
    n = observations.shape[0]
    return ts.TimeStep(
        step_type=tf.fill([n], tf.constant(ts.StepType.MID, tf.int32)),
        reward=tf.zeros([n]),
        discount=tf.ones([n]),
        observation=tf.constant(observations),
    )


def _specs():
    env = make_env("CartPole-v1")
    return tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())


@pytest.mark.parametrize(
    "algo, steps, overrides, expected_steps, expected_curve",
    [
        ("dqn", 300, dict(TINY_DQN, eval_every=100), 300, [100, 200, 300]),
        # PPO rounds 200 up to whole rollouts of 2 envs x 32 steps: 256.
        ("ppo", 200, dict(TINY_PPO, eval_every=128), 256, [128, 256]),
    ],
)
def test_train_teacher_writes_model_metrics_and_curve(tmp_path, algo, steps, overrides, expected_steps, expected_curve):
    out = tmp_path / algo
    metrics = train_teacher(
        "CartPole-v1",
        algo,
        out,
        steps=steps,
        seed=3,
        overrides=overrides,
        eval_episodes=3,
        progress=False,
        command="cmd",
    )
    assert METRIC_KEYS <= set(metrics)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["env_steps"] == expected_steps and metrics["eval_episodes"] == 3
    assert metrics["hidden_units"] == [100] and metrics["command"] == "cmd"
    assert metrics["outputs"] == {"dqn": "q_values", "ppo": "logits"}[algo]
    assert {"tensorflow", "keras", "tf_keras", "tf_agents"} <= set(metrics["versions"])
    assert metrics["versions"]["keras"].startswith("3.") and metrics["versions"]["tf_keras"].startswith("2.")
    assert [s for s, _ in _read_curve(out / "curve.csv")] == expected_curve
    assert (out / "tensorboard").is_dir()

    # A Keras 3 model, loadable without kd_rl.teachers' legacy Keras.
    teacher = keras.saving.load_model(out / "teacher.keras")
    assert isinstance(teacher, TeacherModel) and isinstance(teacher, keras.Model)
    assert metrics["params"] == teacher.count_params() == 4 * 100 + 100 + 100 * 2 + 2
    # The recorded score is the saved model's greedy score with the run's seed.
    again = run_episodes(teacher, "CartPole-v1", episodes=3, seed=3)
    assert metrics["returns"] == again.returns
    assert metrics["mean_return"] == pytest.approx(again.mean_return)
    assert metrics["std_return"] == pytest.approx(np.std(again.returns))


def test_export_dqn_logits_are_the_q_values_and_argmax_matches_greedy_policy():
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("CartPole-v1", "dqn", {"hidden_units": [32, 16]})
    q_network = make_q_network(action_spec, params)
    agent = make_dqn_agent(time_step_spec, action_spec, params, gradient_steps=1000, q_network=q_network)
    observations = _rollout_observations(1000)
    # Scale the states up so the random network's Q-values differ clearly.
    observations = observations * np.float32(3.0)

    teacher = export_dqn_teacher(q_network, obs_dim=4, num_actions=2, hidden_units=(32, 16))
    assert isinstance(teacher, keras.Model) and teacher.output_type == "q_values"
    q_values, _ = q_network(tf.constant(observations))
    np.testing.assert_allclose(np.asarray(teacher(observations)), q_values.numpy(), rtol=1e-6, atol=1e-6)

    greedy = agent.policy.action(_time_steps(observations)).action.numpy()
    np.testing.assert_array_equal(np.argmax(np.asarray(teacher(observations)), axis=-1), greedy)
    assert 0 < greedy.mean() < 1, "both actions should be greedy somewhere for the test to mean much"

    with pytest.raises(ValueError, match="hidden_units"):
        export_dqn_teacher(q_network, obs_dim=4, num_actions=2, hidden_units=100)
    with pytest.raises(ValueError, match="num_actions=3"):
        export_dqn_teacher(q_network, obs_dim=4, num_actions=3)
    with pytest.raises(ValueError, match="obs_dim=5"):
        export_dqn_teacher(q_network, obs_dim=5, num_actions=2)
    with pytest.raises(ValueError, match="expected a TF-Agents Sequential"):
        export_dqn_teacher(agent, obs_dim=4, num_actions=2)


def test_q_network_initialisations():
    _, action_spec = _specs()
    _, params = load_hyperparameters("default", "dqn", {"hidden_units": [64, 32]})
    assert params["init"] == "torch"
    net = make_q_network(action_spec, params, observation_dim=4)
    net.create_variables(tf.TensorSpec([4], tf.float32))
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in dense_layers(net)]
    for (kernel, bias), fan_in in zip(weights, [4, 64, 32], strict=True):
        limit = 1 / np.sqrt(fan_in)
        # Both within ±limit; the kernel (64 or more draws) also comes near it, which a
        # bias of 2 draws need not (0.8² = 64% of the time both stay below 0.8 limit).
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
        assert np.abs(bias).max() <= limit and np.abs(bias).any()
        # Uniform in ±limit: standard deviation limit / sqrt(3).
        assert np.std(kernel) == pytest.approx(limit / np.sqrt(3), rel=0.25)
    tf_agents_net = make_q_network(action_spec, dict(params, init="tf_agents"))
    tf_agents_net.create_variables(tf.TensorSpec([4], tf.float32))
    (k1, b1), _, (k3, b3) = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in dense_layers(tf_agents_net)]
    assert np.std(k1) == pytest.approx(np.sqrt(2 / 4), rel=0.3) and not b1.any()
    assert np.abs(k3).max() <= 0.03 and np.all(b3 == np.float32(-0.2))
    with pytest.raises(ValueError, match="needs the observation size"):
        make_q_network(action_spec, params)
    with pytest.raises(ValueError, match="init must be 'tf_agents' or 'torch', got 'he'"):
        make_q_network(action_spec, dict(params, init="he"), observation_dim=4)


def test_only_plain_mlps_export():
    dropout = sequential.Sequential([tf_keras.layers.Dense(8), tf_keras.layers.Dropout(0.1), tf_keras.layers.Dense(2)])
    dropout.create_variables(tf.TensorSpec([4], tf.float32))
    with pytest.raises(ValueError, match=r"cannot export layer .* \(Dropout\)"):
        dense_layers(dropout)
    linear = sequential.Sequential([tf_keras.layers.Dense(2)])
    linear.create_variables(tf.TensorSpec([4], tf.float32))
    with pytest.raises(ValueError, match="without hidden layers"):
        dense_layers(linear)
    mixed = sequential.Sequential(
        [tf_keras.layers.Dense(8, "relu"), tf_keras.layers.Dense(8, "tanh"), tf_keras.layers.Dense(2)]
    )
    mixed.create_variables(tf.TensorSpec([4], tf.float32))
    with pytest.raises(ValueError, match="share one activation"):
        export_dqn_teacher(mixed, obs_dim=4, num_actions=2)


def test_export_ppo_bakes_in_the_normaliser_and_argmax_matches_greedy_policy():
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("CartPole-v1", "ppo")
    agent = make_ppo_agent(time_step_spec, action_spec, params, gradient_steps=1000)
    observations = _rollout_observations(1000)
    # Statistics far from (0, 1): shifted, and so narrow that many real
    # states normalise past the clip of 5.
    skewed = observations * np.float32(0.05) + np.float32([0.1, -0.2, 0.01, 0.3])
    agent.update_observation_normalizer(tf.constant(skewed[None]))

    teacher = export_ppo_teacher(agent, obs_dim=4, num_actions=2)
    assert teacher.output_type == "logits"
    assert isinstance(teacher, keras.Model)
    count, avg, m2 = (v.numpy() for v in agent.collect_policy.observation_normalizer.variables[:3])
    mean_ref = skewed.mean(axis=0)
    std_ref = np.sqrt(skewed.var(axis=0) + 1e-3)
    np.testing.assert_allclose(count, len(skewed), rtol=1e-6)
    np.testing.assert_allclose(teacher.observation_mean, mean_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(teacher.observation_std, std_ref, rtol=1e-4)
    assert teacher.observation_clip == 5.0
    normalised = (observations - mean_ref) / std_ref
    assert np.mean(np.abs(normalised) > 5.0) > 0.05, "the clip should matter for the test to mean much"

    # Reference: TF-Agents' own normaliser, then the actor's logits.
    actor_logits = agent.collect_policy.distribution(_time_steps(observations)).action.logits.numpy()
    np.testing.assert_allclose(np.asarray(teacher(observations)), actor_logits, rtol=1e-5, atol=1e-5)
    by_hand = np.clip((observations - avg) / np.sqrt(m2 / count + 1e-3), -5.0, 5.0)
    np.testing.assert_allclose(np.asarray(teacher.normalise(observations)), by_hand, rtol=1e-5, atol=1e-5)

    greedy = agent.policy.action(_time_steps(observations)).action.numpy()
    np.testing.assert_array_equal(np.argmax(np.asarray(teacher(observations)), axis=-1), greedy)
    assert 0 < greedy.mean() < 1, "both actions should be greedy somewhere for the test to mean much"


@pytest.mark.parametrize(
    "algo, overrides, interrupt_at_eval, resumed_from, expected_curve",
    [
        # Evaluations at 100 and 200; the run dies in the second, before the
        # checkpoint at 200, so it resumes from 100.
        ("dqn", dict(TINY_DQN, eval_every=100), 2, 100, [100, 200, 300]),
        # Rollouts of 64 steps; eval and checkpoint every 128.
        ("ppo", dict(TINY_PPO, eval_every=128), 2, 128, [128, 256, 320]),
        # The same with SB3's reward scaling, whose statistics the checkpoint holds.
        (
            "ppo",
            dict(TINY_PPO, eval_every=128, normalize_rewards=False, normalize_returns=True),
            2,
            128,
            [128, 256, 320],
        ),
    ],
)
def test_resume_after_interruption_reaches_the_same_step_count(
    tmp_path, interrupt_teacher_run, algo, overrides, interrupt_at_eval, resumed_from, expected_curve
):
    steps = expected_curve[-1]
    kwargs = dict(steps=steps, seed=1, overrides=overrides, checkpoint_every=overrides["eval_every"], progress=False)
    interrupt_teacher_run(interrupt_at_eval, lambda: train_teacher("CartPole-v1", algo, tmp_path, **kwargs))
    assert not (tmp_path / "metrics.json").exists()

    metrics = train_teacher("CartPole-v1", algo, tmp_path, resume=True, eval_episodes=2, **kwargs)
    assert metrics["resumed_from_env_steps"] == resumed_from
    assert metrics["env_steps"] == steps
    assert [s for s, _ in _read_curve(tmp_path / "curve.csv")] == expected_curve
    assert (tmp_path / "checkpoints" / f"ckpt-{steps}.index").exists()


def _checkpoint_with_state(out_dir, state: dict) -> None:
    """A checkpoint in ``out_dir/checkpoints`` whose run state is ``state``, as `Run.save_checkpoint` names it."""
    checkpoint = tf.train.Checkpoint(run_state=tf.Variable(json.dumps(state)))
    tf.train.CheckpointManager(checkpoint, str(out_dir / "checkpoints"), max_to_keep=1).save(checkpoint_number=100)


def test_check_resumable_compares_nested_settings_and_notes_an_unchecked_checkpoint(tmp_path, capsys):
    settings = {"env_id": "CartPole-v1", "env_kwargs": {}, "seed": 0, "hyperparameters": {"gamma": 0.99}}
    check_resumable(tmp_path, settings)  # no checkpoint: nothing to compare

    _checkpoint_with_state(tmp_path, {"settings": settings})
    check_resumable(tmp_path, settings)
    check_resumable(tmp_path, dict(settings, hyperparameters={"gamma": 0.99, "eval_every": 5}))  # may change
    with pytest.raises(ValueError, match=r"settings: env_kwargs\.sutton_barto_reward=None \(now True\) \(pass"):
        check_resumable(tmp_path, dict(settings, env_kwargs={"sutton_barto_reward": True}))
    with pytest.raises(ValueError, match=r"settings: gamma=0\.99 \(now 0\.9\) \(pass"):
        check_resumable(tmp_path, dict(settings, hyperparameters={"gamma": 0.9}))
    assert capsys.readouterr().err == ""

    _checkpoint_with_state(tmp_path / "old", {"curve": []})  # an older kd_rl's: no settings
    check_resumable(tmp_path / "old", dict(settings, seed=5))
    assert "does not record its settings" in capsys.readouterr().err

    # A hyperparameter added after the checkpoint was written: it resumes with the value that did what the
    # old run did, and refuses another.
    newer = {"gamma": 0.99, "clip_reward": False, "conv_layers": []}
    check_resumable(tmp_path, dict(settings, hyperparameters=newer))
    with pytest.raises(ValueError, match=r"clip_reward=False \(now True\)"):
        check_resumable(tmp_path, dict(settings, hyperparameters={**newer, "clip_reward": True}))


def test_resume_refuses_a_checkpoint_written_with_other_settings(tmp_path, interrupt_teacher_run):
    overrides = dict(TINY_DQN, n_step=1)
    kwargs = dict(steps=300, eval_every=100, checkpoint_every=100, eval_episodes=2, progress=False)
    interrupt_teacher_run(
        2, lambda: train_teacher("CartPole-v1", "dqn", tmp_path, seed=1, overrides=overrides, **kwargs)
    )
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    # Mixing 3-step transitions into a buffer of one-step ones, or another seed: refused, naming each.
    match = r"cannot resume .* with different settings: n_step=1 \(now 3\), seed=1 \(now 2\)"
    with pytest.raises(ValueError, match=match):
        train_teacher(
            "CartPole-v1", "dqn", tmp_path, resume=True, seed=2, overrides=dict(overrides, n_step=3), **kwargs
        )
    assert sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before

    # The steps too: the schedules and the buffer's size follow them.
    with pytest.raises(ValueError, match=r"different settings: n_timesteps=300 \(now 400\) \(pass"):
        train_teacher(
            "CartPole-v1", "dqn", tmp_path, resume=True, seed=1, overrides=overrides, **dict(kwargs, steps=400)
        )

    # How often to evaluate may change.
    kwargs.update(eval_every=200)
    metrics = train_teacher("CartPole-v1", "dqn", tmp_path, resume=True, seed=1, overrides=overrides, **kwargs)
    assert metrics["resumed_from_env_steps"] == 100 and metrics["env_steps"] == 300
    assert metrics["hyperparameters"]["eval_every"] == 200
    assert [s for s, _ in _read_curve(tmp_path / "curve.csv")] == [100, 200, 300]


@pytest.mark.parametrize(
    "env_id, algo, kwargs, match",
    [
        ("Foo-v0", "dqn", {}, "unknown environment id 'Foo-v0'"),
        ("Pendulum-v1", "dqn", {}, "algo 'dqn' needs a Discrete action space, but env 'Pendulum-v1' has"),
        ("KdRlDictObservationTest-v0", "dqn", {}, r"observation space Dict\('position': Discrete\(3\)\)"),
        ("CartPole-v1", "a2c", {}, "algo must be one of \\['dqn', 'ppo', 'sac'\\], got 'a2c'"),
        ("CartPole-v1", "dqn", {"steps": 0}, "steps must be an int >= 1, got 0"),
        ("CartPole-v1", "ppo", {"steps": -5}, "steps must be an int >= 1, got -5"),
        ("CartPole-v1", "dqn", {"overrides": {"learning_rat": 1.0}}, r"unknown dqn hyperparameters \['learning_rat'\]"),
        ("CartPole-v1", "dqn", {"hidden_units": [0]}, "hidden_units"),
        ("CartPole-v1", "dqn", {"overrides": {"batch_size": 0}}, "batch_size must be an int >= 1, got 0"),
        ("CartPole-v1", "ppo", {"overrides": {"n_envs": 1.5}}, "n_envs must be an int"),
        ("CartPole-v1", "dqn", {"overrides": {"activation": "nope"}}, "activation must be a Keras activation"),
        ("CartPole-v1", "ppo", {"overrides": {"activation": "gelu"}}, "activation 'gelu' has no NumPy form"),
        ("CartPole-v1", "dqn", {"overrides": {"lr_schedule": "cosine"}}, "lr_schedule must be"),
        ("CartPole-v1", "dqn", {"overrides": {"loss": "l1"}}, "loss must be 'huber' or 'mse'"),
        ("CartPole-v1", "ppo", {"overrides": {"normalize_returns": True}}, "set at most one of them"),
        ("CartPole-v1", "dqn", {"overrides": {"init": "glorot"}}, "init must be 'tf_agents' or 'torch'"),
        ("CartPole-v1", "dqn", {"eval_episodes": 0}, "eval_episodes must be an int >= 1, got 0"),
        ("CartPole-v1", "dqn", {"env_kwargs": {"nope": 1}}, "environment 'CartPole-v1' rejects the arguments"),
        ("CartPole-v1", "dqn", {"env_kwargs": "{}"}, "env_kwargs must be a mapping"),
        ("CartPole-v1", "dqn", {"stop_return": float("nan")}, "stop_return must be a finite number, got nan"),
        ("CartPole-v1", "dqn", {"overrides": {"n_envs": 0}}, "n_envs must be an int >= 1, got 0"),
        ("CartPole-v1", "dqn", {"overrides": {"n_step": 0}}, "n_step must be an int >= 1, got 0"),
        ("Pendulum-v1", "sac", {"overrides": {"n_envs": 1.5}}, "n_envs must be an int"),
        ("CartPole-v1", "ppo", {"overrides": {"parallel_envs": "yes"}}, "parallel_envs must be true or false"),
    ],
)
def test_bad_input_raises_before_writing_anything(tmp_path, env_id, algo, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        train_teacher(env_id, algo, out, progress=False, **kwargs)
    assert not out.exists()


def test_training_rounds_fall_where_one_step_at_a_time_puts_them():
    assert training_rounds(0, 1, 4, 0) == [] and training_rounds(3, 4, 4, 0) == [4]
    assert training_rounds(0, 12, 4, 0) == [4, 8, 12] and training_rounds(0, 12, 4, 8) == [12]
    assert training_rounds(6, 6, 1, 0) == []  # a step that only reset environments
    one_by_one = [r for s in range(100) for r in training_rounds(s, s + 1, 3, 10)]
    assert [r for s in range(0, 100, 7) for r in training_rounds(s, min(s + 7, 100), 3, 10)] == one_by_one


def test_off_policy_envs_store_what_environments_reset_by_hand_give():
    envs = OffPolicyEnvs(make_training_env("CartPole-v1", {"n_envs": 3}, seed=5))
    refs = [make_env("CartPole-v1", seed=5 + i) for i in range(3)]
    now = [env.reset() for env in refs]
    buffer, rng = TransitionBuffer(2000, 4), np.random.default_rng(0)
    expected, returns, expected_returns, running, total = [], [], [], np.zeros(3), 0
    for _ in range(200):
        actions, acting = rng.integers(2, size=3), envs.acting.copy()
        taken, finished = envs.step(actions, buffer)
        assert taken == acting.sum() and (acting.all() or not acting.any() or 0 < taken < 3)
        total, returns = total + taken, returns + finished
        for i in np.flatnonzero(acting):  # the reference steps only where a real step happened
            step = refs[i].step(np.int64(actions[i]))
            expected.append((now[i].observation, actions[i], step.reward, step.discount, step.observation))
            running[i] += step.reward
            now[i] = step
            if step.is_last():
                expected_returns.append(running[i])
                running[i], now[i] = 0.0, refs[i].reset()
    assert len(expected_returns) >= 3 and returns == expected_returns
    assert buffer.size == total == len(expected) < 600  # resets are not transitions
    buffer.sync_to_variables()
    stored = [buffer.storage[k].numpy()[:total] for k in ("observation", "action", "reward", "discount")]
    for column, values in zip(stored, zip(*expected)):
        np.testing.assert_array_equal(column, np.asarray(values, column.dtype))
    np.testing.assert_array_equal(buffer.storage["next_observation"].numpy()[:total], [e[4] for e in expected])


class _Recorder:
    """A stand-in for TransitionBuffer that keeps what is stored, in order."""

    def __init__(self):
        self.rows = []

    def add(self, observation, action, reward, discount, next_observation):
        self.rows.append(
            (np.array(observation), int(action), float(reward), float(discount), np.array(next_observation))
        )


def _n_step_by_hand(steps: list, n: int, gamma: float) -> list:
    """One environment's n-step transitions from its one-step ones, written from the definition.

    ``steps``: ``(obs, action, reward, discount, next_obs, last)`` in order. A
    start ``t`` looks ahead ``k = n`` steps, or fewer where its episode ends
    first; a start whose window is not complete yet is not stored.
    """
    out = []
    for t in range(len(steps)):
        window = []
        for s in steps[t : t + n]:
            window.append(s)
            if s[5]:
                break
        if len(window) < n and not window[-1][5]:
            continue  # waits for steps not taken yet
        reward = sum(gamma**j * s[2] for j, s in enumerate(window))
        discount = gamma ** (len(window) - 1) * window[-1][3]
        out.append((steps[t][0], steps[t][1], reward, discount, window[-1][4]))
    return out


@pytest.mark.parametrize("n_step", [2, 3, 5])
def test_off_policy_envs_store_n_step_returns_as_written_by_hand(n_step):
    gamma = 0.9
    one_step = OffPolicyEnvs(make_training_env("KdRlWanderTest-v0", {"n_envs": 2}, seed=3))
    n_steps = OffPolicyEnvs(make_training_env("KdRlWanderTest-v0", {"n_envs": 2}, seed=3), n_step=n_step, gamma=gamma)
    rng, per_env, stored = np.random.default_rng(1), [[], []], _Recorder()
    for _ in range(300):
        actions, acting, before = rng.integers(2, size=2), one_step.acting.copy(), one_step.observations.copy()
        one_step.step(actions, _Recorder())
        after = one_step.time_step
        n_steps.step(actions, stored)
        for i in np.flatnonzero(acting):
            last = bool(after.step_type[i] == ts.StepType.LAST)
            per_env[i].append((before[i], actions[i], after.reward[i], after.discount[i], after.observation[i], last))
    ended = [[s[3] for s in steps if s[5]] for steps in per_env]
    assert all(0.0 in d and 1.0 in d for d in ended)  # both kinds of episode end occur in both environments
    expected = [t for steps in per_env for t in _n_step_by_hand(steps, n_step, gamma)]
    assert len(stored.rows) == len(expected) > 300

    # The observation [episode id, t] names each transition's start: every one stored once, as written by hand.
    def by_start(rows):
        return {(float(r[0][0]), float(r[0][1])): r for r in rows}

    got, want = by_start(stored.rows), by_start(expected)
    assert got.keys() == want.keys() and len(got) == len(stored.rows)
    for start, e in want.items():
        g = got[start]
        assert g[1] == e[1]
        np.testing.assert_allclose([g[2], g[3]], [e[2], e[3]], rtol=1e-6, err_msg=str(start))
        np.testing.assert_array_equal(g[4], e[4])
    # Within an episode, transitions are stored in the order of their first step.
    for episode in {start[0] for start in got}:
        times = [float(r[0][1]) for r in stored.rows if float(r[0][0]) == episode]
        assert times == sorted(times)
    # Truncated windows bootstrap (discount gamma^(k-1) > 0), terminated ones do not (0).
    discounts = {round(r[3], 6) for r in stored.rows}
    assert 0.0 in discounts and round(gamma ** (n_step - 1), 6) in discounts


def test_n_step_envs_need_the_discount_factor():
    with pytest.raises(ValueError, match="n_step=3 needs the discount factor gamma"):
        OffPolicyEnvs(make_training_env("CartPole-v1", {"n_envs": 1}, seed=0), n_step=3)


def test_dqn_skips_rounds_due_before_an_n_step_transition_is_stored(tmp_path):
    # learning_starts 0 and a round every step: the first rounds fall due while the 5-step windows are still open.
    overrides = dict(TINY_DQN, n_step=5, learning_starts=0, train_freq=1, n_envs=2, eval_every=100)
    metrics = train_teacher(
        "CartPole-v1", "dqn", tmp_path, steps=100, seed=0, overrides=overrides, progress=False, eval_episodes=1
    )
    assert 100 <= metrics["env_steps"] <= 101 and metrics["hyperparameters"]["n_step"] == 5  # n_envs 2


@pytest.mark.parametrize("n_step", [1, 3])
def test_dqn_stores_the_n_step_transitions_it_is_asked_for(tmp_path, monkeypatch, n_step):
    stored = []
    real_add = TransitionBuffer.add
    monkeypatch.setattr(
        TransitionBuffer, "add", lambda self, *row: (stored.append((row[2], row[3])), real_add(self, *row))
    )
    overrides = dict(TINY_DQN, n_step=n_step, gamma=0.9, eval_every=200)
    train_teacher(
        "CartPole-v1", "dqn", tmp_path, steps=200, seed=0, overrides=overrides, progress=False, eval_episodes=1
    )
    # CartPole pays 1 a step and ends in a termination here (200 steps < its 500-step limit): a full window
    # stores sum(0.9^j, j < n) with discount 0.9^(n-1); one that meets the episode's end stores what is left, and 0.
    full = (sum(0.9**j for j in range(n_step)), 0.9 ** (n_step - 1))
    ends = {(sum(0.9**j for j in range(k)), 0.0) for k in range(1, n_step + 1)}
    rows = {(round(r, 5), round(d, 5)) for r, d in stored}
    assert rows <= {tuple(round(x, 5) for x in row) for row in {full} | ends}
    assert tuple(round(x, 5) for x in full) in rows and (1.0, 0.0) in rows
    assert 200 - (n_step - 1) <= len(stored) <= 200  # the last steps of an unfinished episode wait


def test_off_policy_progress_logs_evaluates_and_checkpoints_when_due():
    calls = []

    class FakeRun:
        steps, eval_every, checkpoint_every, due = 5000, 2000, 3000, staticmethod(Run.due)

        class bar:
            update = staticmethod(lambda n: calls.append(("bar", n)))

        def log_training(self, env_steps, returns, **scalars):
            calls.append(("log", env_steps, list(returns), scalars))

        def evaluate(self, env_steps, policy):
            calls.append(("eval", env_steps, policy))

        def save_checkpoint(self, env_steps):
            calls.append(("save", env_steps))

    class FakeBuffer:
        def sync_to_variables(self):
            calls.append(("sync",))

    progress = OffPolicyProgress(FakeRun(), FakeBuffer(), 500, lambda losses: {"loss": sum(losses)} if losses else {})
    made = []
    for before in range(500, 5000, 700):  # batches of 700 steps from a run resumed at 500
        after = min(before + 700, 5000)
        progress.finished.append(float(after))
        progress.losses.append(1.0)
        progress.after(before, after, lambda after=after: made.append(after) or "policy", epsilon=0.5)
    assert [c for c in calls if c[0] == "log"] == [
        ("log", 1900, [1200.0, 1900.0], {"epsilon": 0.5, "loss": 2.0}),
        ("log", 3300, [2600.0, 3300.0], {"epsilon": 0.5, "loss": 2.0}),
        ("log", 4700, [4000.0, 4700.0], {"epsilon": 0.5, "loss": 2.0}),
        ("log", 5000, [5000.0], {"epsilon": 0.5, "loss": 1.0}),  # the last step always logs
    ]
    assert sum(c[1] for c in calls if c[0] == "bar") == 4500
    assert [c[1] for c in calls if c[0] == "eval"] == made == [2600, 4000, 5000]  # policy built only when due
    assert [c for c in calls if c[0] in ("sync", "save")] == [("sync",), ("save", 3300), ("sync",), ("save", 5000)]


@pytest.mark.parametrize("algo, overrides", [("dqn", TINY_DQN), ("ppo", TINY_PPO)])
def test_environments_in_processes_train_what_serial_ones_train(tmp_path, algo, overrides):
    """n_envs environments stepped serially or in processes (parallel_envs) give the same run."""
    weights = []
    for parallel in (False, True):
        out = tmp_path / str(parallel)
        settings = dict(overrides, n_envs=2, parallel_envs=parallel, eval_every=128)
        metrics = train_teacher(
            "CartPole-v1", algo, out, steps=256, seed=4, overrides=settings, eval_episodes=2, progress=False
        )
        assert 256 <= metrics["env_steps"] <= 257 and metrics["hyperparameters"]["parallel_envs"] is parallel
        assert len(_read_curve(out / "curve.csv")) == 2
        weights.append(keras.saving.load_model(out / "teacher.keras").get_weights())
    for serial, in_processes in zip(*weights):
        np.testing.assert_array_equal(serial, in_processes)


def test_hyperparameters_defaults_and_alias():
    gym_id, params = load_hyperparameters("CartPole-v1-large", "dqn")
    assert gym_id == "CartPole-v1" and params["hidden_units"] == (256, 256)
    # 4*256+256 + 256*256+256 + 256*2+2 weights: the large teacher has >= 50k.
    assert TeacherModel(2, params["hidden_units"], observation_dim=4).count_params() == 67586
    gym_id, params = load_hyperparameters("Pendulum-v1", "ppo", {"n_envs": 4})
    _, default = load_hyperparameters("default", "ppo")
    assert gym_id == "Pendulum-v1" and params == dict(default, n_envs=4)


def test_periodic_evaluations_use_other_seeds_than_the_final_one(tmp_path, monkeypatch):
    seeds = []
    real_evaluate = run.run_episodes

    def recording_evaluate(policy, env_id, episodes, seed, **kwargs):
        seeds.append(seed)
        return real_evaluate(policy, env_id, episodes, seed, **kwargs)

    monkeypatch.setattr(run, "run_episodes", recording_evaluate)
    overrides = dict(TINY_DQN, eval_every=100, keep_best=True)
    metrics = train_teacher("CartPole-v1", "dqn", tmp_path, steps=300, seed=4, overrides=overrides, progress=False)
    assert seeds == [4 + CURVE_EVAL_SEED_OFFSET] * 3 == [metrics["periodic_eval_seed"]] * 3
    periodic, final = episode_seeds(seeds[0], 20), episode_seeds(4, 100)
    assert not set(periodic) & set(final), "best-weight selection must not see the final evaluation's episodes"
    # keep_best exports the weights of the best periodic evaluation.
    best = max(r for _, r in _read_curve(tmp_path / "curve.csv"))
    assert metrics["exported_weights"] == "best" and metrics["best_eval_mean_return"] == best


@pytest.mark.parametrize(
    "algo, overrides, first_eval",
    [("dqn", dict(TINY_DQN, eval_every=100), 100), ("ppo", dict(TINY_PPO, eval_every=64), 64)],
)
def test_stop_return_ends_the_run_and_env_kwargs_reach_every_environment(tmp_path, algo, overrides, first_eval):
    # Episodes cut at 20 steps: every evaluation (periodic and final) must see the cut.
    kwargs = {"max_episode_steps": 20}
    metrics = train_teacher(
        "CartPole-v1",
        algo,
        tmp_path,
        steps=1000,
        seed=1,
        overrides=overrides,
        eval_episodes=3,
        progress=False,
        stop_return=1.0,
        env_kwargs=kwargs,
    )
    assert metrics["stopped_early"] and metrics["stop_return"] == 1.0
    assert metrics["env_steps"] == first_eval
    assert [s for s, _ in _read_curve(tmp_path / "curve.csv")] == [first_eval]
    assert metrics["env_kwargs"] == kwargs
    assert max(metrics["returns"]) <= 20 and max(r for _, r in _read_curve(tmp_path / "curve.csv")) <= 20
    # Without the threshold the same run trains every step.
    full = train_teacher(
        "CartPole-v1",
        algo,
        tmp_path / "full",
        steps=2 * first_eval,
        seed=1,
        overrides=overrides,
        progress=False,
        eval_episodes=2,
    )
    assert not full["stopped_early"] and full["env_steps"] == 2 * first_eval


def _ppo_rollout(agent, n_envs: int, n_steps: int):
    """One rollout of ``agent``'s collect policy on CartPole-v1: a [n_envs, n_steps] Trajectory."""
    from tf_agents.environments import tf_py_environment
    from tf_agents.trajectories import trajectory

    from kd_rl.teachers import make_batched_env

    tf_env = tf_py_environment.TFPyEnvironment(make_batched_env("CartPole-v1", n_envs, seed=0))
    time_step, steps = tf_env.reset(), []
    for _ in range(n_steps):
        action_step = agent.collect_policy.action(time_step)
        next_time_step = tf_env.step(action_step.action)
        steps.append(trajectory.from_transition(time_step, action_step, next_time_step))
        time_step = next_time_step
    return tf.nest.map_structure(lambda *xs: tf.stack(xs, axis=1), *steps)


def test_ppo_update_equals_tf_agents_train_and_minibatches_count_their_steps():
    from tf_agents.agents.ppo import ppo_clip_agent
    from tf_agents.networks import value_network

    from kd_rl.teachers.agents import make_actor_network
    from kd_rl.teachers.ppo import make_ppo_update

    tf_keras.utils.set_random_seed(0)
    time_step_spec, action_spec = _specs()
    _, p = load_hyperparameters("CartPole-v1", "ppo", {"hidden_units": [16], "value_hidden_units": [16]})
    agent = make_ppo_agent(time_step_spec, action_spec, p)
    n_envs, n_steps, epochs = 4, 24, 3
    experience = _ppo_rollout(agent, n_envs, n_steps)
    # An episode ends inside the rollout, so boundary steps are there to mask.
    assert bool(tf.reduce_any(experience.is_boundary()))

    # Reference: TF-Agents' own PPOClipAgent.train (epochs unrolled, values and
    # normalisers handled inside train), from the same weights.
    actor, value = (
        make_actor_network(action_spec, p),
        value_network.ValueNetwork(
            time_step_spec.observation, fc_layer_params=(16,), activation_fn=tf_keras.activations.tanh
        ),
    )
    reference = ppo_clip_agent.PPOClipAgent(
        time_step_spec,
        action_spec,
        optimizer=tf_keras.optimizers.Adam(learning_rate=float(p["learning_rate"]), epsilon=1e-5),
        actor_net=actor,
        value_net=value,
        importance_ratio_clipping=float(p["clip_range"]),
        lambda_value=float(p["gae_lambda"]),
        discount_factor=float(p["gamma"]),
        entropy_regularization=float(p["ent_coef"]),
        value_pred_loss_coef=float(p["vf_coef"]),
        num_epochs=epochs,
        use_gae=True,
        use_td_lambda_return=True,
        normalize_rewards=bool(p["normalize_rewards"]),
        normalize_observations=True,
        gradient_clipping=float(p["max_grad_norm"]),
    )
    reference.initialize()
    value.create_variables()
    for mine, theirs in ((agent.actor_net, actor), (agent._value_net, value)):
        for target, source in zip(theirs.variables, mine.variables, strict=True):
            target.assign(source)
    without_values = experience.replace(policy_info={"dist_params": experience.policy_info["dist_params"]})

    update = make_ppo_update(agent, epochs, n_envs * n_steps)
    update(experience)
    reference.train(without_values)
    for mine, theirs in ((agent.actor_net, actor), (agent._value_net, value)):
        for a, b in zip(mine.variables, theirs.variables, strict=True):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    mine_norm = agent.collect_policy.observation_normalizer.variables
    theirs_norm = reference.collect_policy.observation_normalizer.variables
    for a, b in zip(tf.nest.flatten(mine_norm), tf.nest.flatten(theirs_norm), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
    assert int(agent.train_step_counter.numpy()) == epochs

    # Minibatches of 20 from 96 steps: 5 gradient steps per epoch, the last of 16.
    before = [v.numpy() for v in agent.actor_net.variables]
    loss = make_ppo_update(agent, epochs, n_envs * n_steps, batch_size=20)(experience)
    assert np.isfinite(float(loss))
    assert int(agent.train_step_counter.numpy()) == epochs + epochs * 5
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, agent.actor_net.variables))


def test_return_scaler_divides_by_the_running_std_of_the_discounted_return(tmp_path):
    from kd_rl.teachers.ppo import ReturnScaler

    rng = np.random.default_rng(0)
    n_envs, n_steps, gamma = 3, 40, 0.9
    first, mid, last = int(ts.StepType.FIRST), int(ts.StepType.MID), int(ts.StepType.LAST)
    rewards = rng.normal(-1.0, 0.5, (n_envs, n_steps)).astype(np.float32)
    rewards[:, 0] = -1.0  # the same first return everywhere: a variance near 0, the clip bites
    # TF-Agents' trajectory order: the step after an episode's LAST next_step_type is the
    # boundary (step_type LAST, next FIRST), masked by PPO.
    next_types = np.full((n_envs, n_steps), mid)
    next_types[0, 9] = next_types[2, 24] = last
    step_types = np.full((n_envs, n_steps), mid)
    step_types[0, 10] = step_types[2, 25] = last
    next_types[0, 10] = next_types[2, 25] = first
    step_types[0, 11] = step_types[2, 26] = first

    scaler = ReturnScaler(n_envs, gamma)
    halves = [scaler(rewards[:, :20], step_types[:, :20], next_types[:, :20])]
    # A fresh scaler restored from a checkpoint continues where the first left off.
    tf.train.Checkpoint(s=scaler).write(str(tmp_path / "ckpt"))
    restored = ReturnScaler(n_envs, gamma)
    tf.train.Checkpoint(s=restored).read(str(tmp_path / "ckpt")).assert_consumed()
    halves.append(restored(rewards[:, 20:], step_types[:, 20:], next_types[:, 20:]))
    scaled = np.concatenate(halves, axis=1)

    # Reference by hand: the discounted return of every live step so far, its population
    # variance (the scaler's prior of 1e-4 pseudo-counts is negligible), the clip at 10.
    returns, seen, expected = np.zeros(n_envs), [], rewards.copy()
    for t in range(n_steps):
        live = step_types[:, t] != last
        returns[live] = gamma * returns[live] + rewards[live, t]
        seen.extend(returns[live])
        expected[live, t] = np.clip(rewards[live, t] / np.sqrt(np.var(seen) + 1e-8), -10, 10)
        returns[live & (next_types[:, t] == last)] = 0.0
    assert np.isclose(expected, rewards).mean() < 0.1, "the scale should differ from 1"
    np.testing.assert_allclose(scaled, expected, rtol=1e-3)
    # Boundary steps pass unchanged; the first steps are clipped.
    assert scaled[0, 10] == rewards[0, 10] and scaled[2, 25] == rewards[2, 25]
    np.testing.assert_allclose(scaled[:, 0], -10.0)
