"""Tests for kd_rl.teachers: training, export, evaluation, resume, validation."""

from __future__ import annotations

import csv
import json

import gymnasium
import numpy as np
import pytest
import tensorflow as tf
from conftest import TEACHER_METRIC_KEYS
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from kd_rl import teachers
from kd_rl.envs import make_env
from kd_rl.models import TeacherModel
from kd_rl.teachers import (
    evaluate_policy,
    export_dqn_teacher,
    export_ppo_teacher,
    load_hyperparameters,
    make_dqn_agent,
    make_ppo_agent,
    train_teacher,
)

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


class _ImageEnv(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    action_space = gymnasium.spaces.Discrete(2)


gymnasium.register("KdRlImageTest-v0", entry_point=_ImageEnv)


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
    assert [s for s, _ in _read_curve(out / "curve.csv")] == expected_curve
    assert (out / "tensorboard").is_dir()

    teacher = tf.keras.models.load_model(out / "teacher.keras")
    assert isinstance(teacher, TeacherModel)
    assert metrics["params"] == teacher.count_params() == 4 * 100 + 100 + 100 * 2 + 2
    # The recorded score is the saved model's greedy score on seeds 3, 4, 5.
    again = evaluate_policy(teacher, "CartPole-v1", episodes=3, seed=3)
    assert metrics["mean_return"] == pytest.approx(again["mean_return"])
    assert metrics["std_return"] == pytest.approx(np.std(again["returns"]))


def test_export_dqn_logits_are_the_q_values_and_argmax_matches_greedy_policy():
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("CartPole-v1", "dqn", {"hidden_units": [32, 16]})
    agent = make_dqn_agent(time_step_spec, action_spec, params, gradient_steps=1000)
    observations = _rollout_observations(1000)
    # Scale the states up so the random network's Q-values differ clearly.
    observations = observations * np.float32(3.0)

    teacher = export_dqn_teacher(agent, obs_dim=4, num_actions=2, hidden_units=(32, 16))
    q_values, _ = agent._q_network(tf.constant(observations))
    np.testing.assert_allclose(teacher(observations).numpy(), q_values.numpy(), rtol=1e-6, atol=1e-6)

    greedy = agent.policy.action(_time_steps(observations)).action.numpy()
    np.testing.assert_array_equal(np.argmax(teacher(observations).numpy(), axis=-1), greedy)
    assert 0 < greedy.mean() < 1, "both actions should be greedy somewhere for the test to mean much"

    with pytest.raises(ValueError, match="hidden_units"):
        export_dqn_teacher(agent, obs_dim=4, num_actions=2, hidden_units=100)
    with pytest.raises(ValueError, match="num_actions=3"):
        export_dqn_teacher(agent, obs_dim=4, num_actions=3)


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
    count, avg, m2 = (v.numpy() for v in agent._observation_normalizer.variables[:3])
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
    np.testing.assert_allclose(teacher(observations).numpy(), actor_logits, rtol=1e-5, atol=1e-5)
    by_hand = np.clip((observations - avg) / np.sqrt(m2 / count + 1e-3), -5.0, 5.0)
    np.testing.assert_allclose(teacher.normalise(observations).numpy(), by_hand, rtol=1e-5, atol=1e-5)

    greedy = agent.policy.action(_time_steps(observations)).action.numpy()
    np.testing.assert_array_equal(np.argmax(teacher(observations).numpy(), axis=-1), greedy)
    assert 0 < greedy.mean() < 1, "both actions should be greedy somewhere for the test to mean much"


@pytest.mark.parametrize(
    "algo, overrides, interrupt_at_eval, resumed_from, expected_curve",
    [
        # Evaluations at 100 and 200; the run dies in the second, before the
        # checkpoint at 200, so it resumes from 100.
        ("dqn", dict(TINY_DQN, eval_every=100), 2, 100, [100, 200, 300]),
        # Rollouts of 64 steps; eval and checkpoint every 128.
        ("ppo", dict(TINY_PPO, eval_every=128), 2, 128, [128, 256, 320]),
    ],
)
def test_resume_after_interruption_reaches_the_same_step_count(
    tmp_path, monkeypatch, algo, overrides, interrupt_at_eval, resumed_from, expected_curve
):
    steps = expected_curve[-1]
    calls = []
    real_evaluate = teachers.evaluate_policy

    def dying_evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == interrupt_at_eval:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(teachers, "evaluate_policy", dying_evaluate)
    kwargs = dict(steps=steps, seed=1, overrides=overrides, checkpoint_every=overrides["eval_every"], progress=False)
    with pytest.raises(KeyboardInterrupt):
        train_teacher("CartPole-v1", algo, tmp_path, **kwargs)
    assert not (tmp_path / "metrics.json").exists()
    monkeypatch.setattr(teachers, "evaluate_policy", real_evaluate)

    metrics = train_teacher("CartPole-v1", algo, tmp_path, resume=True, eval_episodes=2, **kwargs)
    assert metrics["resumed_from_env_steps"] == resumed_from
    assert metrics["env_steps"] == steps
    assert [s for s, _ in _read_curve(tmp_path / "curve.csv")] == expected_curve
    assert (tmp_path / "checkpoints" / f"ckpt-{steps}.index").exists()


@pytest.mark.parametrize(
    "env_id, algo, kwargs, match",
    [
        ("Foo-v0", "dqn", {}, "unknown environment id 'Foo-v0'"),
        ("Pendulum-v1", "ppo", {}, "action space Box"),
        ("KdRlImageTest-v0", "dqn", {}, r"observation space Box\(0, 255, \(8, 8, 3\), uint8\)"),
        ("CartPole-v1", "a2c", {}, "algo must be one of \\['dqn', 'ppo'\\], got 'a2c'"),
        ("CartPole-v1", "dqn", {"steps": 0}, "steps must be an int >= 1, got 0"),
        ("CartPole-v1", "ppo", {"steps": -5}, "steps must be an int >= 1, got -5"),
        ("CartPole-v1", "dqn", {"overrides": {"learning_rat": 1.0}}, r"unknown dqn hyperparameters \['learning_rat'\]"),
        ("CartPole-v1", "dqn", {"hidden_units": [0]}, "hidden_units"),
    ],
)
def test_bad_input_raises_before_writing_anything(tmp_path, env_id, algo, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        train_teacher(env_id, algo, out, progress=False, **kwargs)
    assert not out.exists()


def test_hyperparameters_defaults_and_alias():
    gym_id, params = load_hyperparameters("CartPole-v1-large", "dqn")
    assert gym_id == "CartPole-v1" and params["hidden_units"] == (256, 256)
    # 4*256+256 + 256*256+256 + 256*2+2 weights: the large teacher has >= 50k.
    assert TeacherModel(2, params["hidden_units"], observation_dim=4).count_params() == 67586
    gym_id, params = load_hyperparameters("Acrobot-v1", "ppo", {"n_envs": 4})
    _, default = load_hyperparameters("default", "ppo")
    assert gym_id == "Acrobot-v1" and params == dict(default, n_envs=4)


def test_evaluate_policy_matches_a_hand_rollout():
    def always_left(observations):
        return np.zeros(len(observations), np.int64)

    result = evaluate_policy(always_left, "CartPole-v1", episodes=3, seed=5)
    expected = []
    for i in range(3):
        env = gymnasium.make("CartPole-v1")
        env.reset(seed=5 + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(0)
            total, done = total + reward, terminated or truncated
        expected.append(total)
    assert result["returns"] == expected
    assert result["lengths"] == [int(r) for r in expected]
    assert result["mean_return"] == pytest.approx(np.mean(expected))
    assert result["std_return"] == pytest.approx(np.std(expected))
    with pytest.raises(ValueError, match="episodes must be an int >= 1, got 0"):
        evaluate_policy(always_left, "CartPole-v1", episodes=0)
