"""Tests for kd_rl.teachers.tf_policy: kd_rl's Keras 3 models as TF-Agents policies."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.metrics import tf_metrics
from tf_agents.policies import policy_saver
from tf_agents.trajectories import time_step as ts

from kd_rl.models import StudentModel, TeacherModel
from kd_rl.teachers import as_tf_policy, make_tf_env


def test_policy_runs_in_a_driver_and_scores_like_the_model(cartpole_teacher):
    env = make_tf_env("CartPole-v1", seed=0)
    policy = as_tf_policy(cartpole_teacher, env.time_step_spec(), env.action_spec())
    average = tf_metrics.AverageReturnMetric()
    driver = dynamic_episode_driver.DynamicEpisodeDriver(env, policy, observers=[average], num_episodes=2)
    driver.run()
    assert float(average.result()) == 500.0


def test_policy_saver_round_trip_keeps_the_keras3_weights(tmp_path, rng):
    env = make_tf_env("CartPole-v1", seed=0)
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    policy = as_tf_policy(student, env.time_step_spec(), env.action_spec())
    # The Keras 3 model's variables are the policy's (PolicySaver saves and exposes them).
    assert len(policy.variables()) == 4 and all(isinstance(v, tf.Variable) for v in policy.variables())
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    assert len(loaded.model_variables) == 4
    obs = rng.normal(size=(16, 4)).astype(np.float32)
    step = ts.restart(tf.constant(obs), batch_size=16)
    actions = loaded.action(step).action.numpy()
    np.testing.assert_array_equal(actions, np.asarray(student(obs)).argmax(1))
    np.testing.assert_array_equal(actions, policy.action(step).action.numpy())
    # Later weight updates are seen by the policy (it holds the model, not a copy).
    student.logits_layer.bias.assign([10.0, -10.0])
    np.testing.assert_array_equal(policy.action(step).action.numpy(), np.zeros(16))


def test_a_tf_keras_model_works_too(rng):
    env = make_tf_env("CartPole-v1")
    model = tf_keras.Sequential([tf_keras.layers.Dense(8, "relu"), tf_keras.layers.Dense(2)])
    model.build((None, 4))
    policy = as_tf_policy(model, env.time_step_spec(), env.action_spec())
    assert len(policy.variables()) == 4
    obs = rng.normal(size=(16, 4)).astype(np.float32)
    actions = policy.action(ts.restart(tf.constant(obs), batch_size=16)).action.numpy()
    np.testing.assert_array_equal(actions, model(obs).numpy().argmax(1))


def test_mismatched_model_is_refused():
    env = make_tf_env("CartPole-v1")
    with pytest.raises(ValueError, match="outputs 3 logits but the action spec has 2"):
        as_tf_policy(TeacherModel(3, observation_dim=4), env.time_step_spec(), env.action_spec())
