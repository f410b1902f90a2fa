import numpy as np
import pytest
import tensorflow as tf
from tf_agents.drivers import dynamic_episode_driver
from tf_agents.metrics import tf_metrics
from tf_agents.policies import policy_saver
from tf_agents.trajectories import time_step as ts

from kd_rl.envs import make_tf_env
from kd_rl.models import StudentModel, TeacherModel
from kd_rl.policies import as_tf_policy


def test_policy_runs_in_a_driver_and_scores_like_the_model(cartpole_teacher):
    env = make_tf_env("CartPole-v1", seed=0)
    policy = as_tf_policy(cartpole_teacher, env.time_step_spec(), env.action_spec())
    average = tf_metrics.AverageReturnMetric()
    driver = dynamic_episode_driver.DynamicEpisodeDriver(env, policy, observers=[average], num_episodes=2)
    driver.run()
    assert float(average.result()) == 500.0


def test_policy_saver_round_trip(tmp_path, rng):
    env = make_tf_env("CartPole-v1", seed=0)
    student = StudentModel(2, hidden_units=8, observation_dim=4)
    policy = as_tf_policy(student, env.time_step_spec(), env.action_spec())
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    obs = rng.normal(size=(16, 4)).astype(np.float32)
    step = ts.restart(tf.constant(obs), batch_size=16)
    actions = loaded.action(step).action.numpy()
    np.testing.assert_array_equal(actions, student(obs).numpy().argmax(1))
    np.testing.assert_array_equal(actions, policy.action(step).action.numpy())


def test_mismatched_model_is_refused():
    env = make_tf_env("CartPole-v1")
    with pytest.raises(ValueError, match="outputs 3 logits but the action spec has 2"):
        as_tf_policy(TeacherModel(3, observation_dim=4), env.time_step_spec(), env.action_spec())
