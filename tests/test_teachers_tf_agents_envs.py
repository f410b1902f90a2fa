"""Tests for kd_rl.teachers.tf_agents_envs: the Gymnasium -> TF-Agents bridge."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from conftest import Countdown
from tf_agents.environments import utils as env_utils
from tf_agents.trajectories import time_step as ts

from kd_rl.teachers import GymnasiumEnvironment, make_batched_env, make_env, make_tf_env


def _run_episode(env, action=0):
    steps = [env.reset()]
    while not steps[-1].is_last():
        steps.append(env.step(np.int64(action)))
    return steps


def test_reset_gives_first_step_with_zero_reward_and_unit_discount():
    env = make_env("CartPole-v1", seed=0)
    first = env.reset()
    assert int(first.step_type) == ts.StepType.FIRST
    assert float(first.reward) == 0.0 and float(first.discount) == 1.0
    assert first.observation.dtype == np.float32 and first.observation.shape == (4,)


def test_termination_gives_discount_zero_and_rewards_pass_through():
    env = GymnasiumEnvironment(Countdown(terminate_at=3))
    steps = _run_episode(env)
    assert [int(s.step_type) for s in steps] == [0, 1, 1, 2]
    assert [float(s.discount) for s in steps] == [1.0, 1.0, 1.0, 0.0]
    assert [float(s.reward) for s in steps] == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(steps[-1].observation, np.array([3.0, 0.0], np.float32))


def test_truncation_by_time_limit_keeps_discount_one():
    env = make_env("CartPole-v1", seed=0, max_episode_steps=5)
    steps = _run_episode(env, action=0)
    # Pushing left for 5 steps does not topple the pole: a time-limit cut.
    assert len(steps) == 6
    assert int(steps[-1].step_type) == ts.StepType.LAST
    assert float(steps[-1].discount) == 1.0


def test_step_after_last_resets():
    env = GymnasiumEnvironment(Countdown(terminate_at=2))
    _run_episode(env)
    after = env.step(np.int64(1))
    assert int(after.step_type) == ts.StepType.FIRST
    np.testing.assert_array_equal(after.observation, [0.0, 0.0])


def test_validate_py_environment_passes():
    env_utils.validate_py_environment(make_env("CartPole-v1", seed=1), episodes=3)
    env_utils.validate_py_environment(GymnasiumEnvironment(Countdown()), episodes=3)


def test_same_seed_same_episodes_different_seed_different():
    def observations(seed):
        env = make_env("CartPole-v1", seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(2):  # two episodes: the second follows from the first's seed
            out += [s.observation for s in _run_episode_random(env, rng)]
        return np.stack(out)

    a, b, c = observations(3), observations(3), observations(4)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def _run_episode_random(env, rng):
    steps = [env.reset()]
    while not steps[-1].is_last():
        steps.append(env.step(np.int64(rng.integers(2))))
    return steps


def test_seed_method_reseeds_next_reset():
    env = make_env("CartPole-v1")
    env.seed(7)
    first = env.reset().observation
    env.seed(7)
    np.testing.assert_array_equal(env.reset().observation, first)
    ref, _ = gymnasium.make("CartPole-v1").reset(seed=7)
    np.testing.assert_array_equal(first, ref.astype(np.float32))


def test_specs():
    env = make_env("CartPole-v1")
    action_spec = env.action_spec()
    assert action_spec.shape == () and action_spec.dtype == np.int64
    assert (int(action_spec.minimum), int(action_spec.maximum)) == (0, 1)
    assert env.observation_spec().dtype == np.float32
    # CartPole's infinite-ish bounds stay finite float32 numbers.
    assert np.all(np.isfinite(env.observation_spec().maximum))
    infinite = GymnasiumEnvironment(Countdown()).observation_spec()
    assert infinite.maximum[0] == np.finfo(np.float32).max


def _box_countdown(low, high):
    env = Countdown(terminate_at=10)
    env.action_space = gymnasium.spaces.Box(np.float32(low), np.float32(high), (2,), np.float32)
    return env


def test_box_action_space_becomes_a_bounded_float_spec_and_actions_are_clipped():
    spec = make_env("Pendulum-v1").action_spec()
    assert spec.shape == (1,) and spec.dtype == np.float32
    assert (float(spec.minimum[0]), float(spec.maximum[0])) == (-2.0, 2.0)
    gym_env = _box_countdown(-1.0, 1.0)
    env = GymnasiumEnvironment(gym_env)
    env.reset()
    env.step(np.array([5.0, -0.25], np.float32))
    env.step(np.array([[-3.0, 0.5]], np.float32))  # a batch of one is reshaped to the action's shape
    np.testing.assert_array_equal(np.stack(gym_env.actions), [[1.0, -0.25], [-1.0, 0.5]])
    assert gym_env.actions[0].dtype == np.float32
    with pytest.raises(ValueError, match=r"action space Box\(-inf, inf, \(2,\), float32\).*finite"):
        GymnasiumEnvironment(_box_countdown(-np.inf, np.inf))


def test_multi_dimensional_observations_are_flattened():
    env = GymnasiumEnvironment(Countdown(obs_shape=(4, 4, 3)))
    assert env.observation_spec().shape == (48,)
    assert env.reset().observation.shape == (48,)
    assert env.step(np.array(0, np.int64)).observation[0] == 1.0


def test_non_box_observation_space_is_refused_by_name():
    with pytest.raises(ValueError, match=r"observation space Discrete\(16\).*needs a Box observation"):
        make_env("FrozenLake-v1")


def test_unknown_env_id():
    with pytest.raises(ValueError, match=r"unknown environment id 'Foo-v0'"):
        make_env("Foo-v0")


def test_nan_observation_names_the_step():
    env = GymnasiumEnvironment(Countdown(terminate_at=10, nan_at=2))
    env.reset()
    env.step(np.int64(0))
    with pytest.raises(ValueError, match=r"observation at step 2 .*not finite.*indices \[1\]"):
        env.step(np.int64(0))


def test_batched_env_shapes_and_seeds():
    env = make_batched_env("CartPole-v1", num_envs=3, seed=10)
    first = env.reset()
    assert first.observation.shape == (3, 4) and first.observation.dtype == np.float32
    assert first.step_type.shape == (3,) and first.reward.shape == (3,)
    for i in range(3):
        ref, _ = gymnasium.make("CartPole-v1").reset(seed=10 + i)
        np.testing.assert_array_equal(first.observation[i], ref.astype(np.float32))
    nxt = env.step(np.array([0, 1, 0], np.int64))
    assert nxt.observation.shape == (3, 4)
    np.testing.assert_array_equal(nxt.reward, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="num_envs"):
        make_batched_env("CartPole-v1", num_envs=0)


def test_tf_env_batch_of_one():
    env = make_tf_env("CartPole-v1", seed=0)
    first = env.reset()
    assert tuple(first.observation.shape) == (1, 4)


def test_action_space_start_is_added():
    inner = Countdown(terminate_at=5)
    inner.action_space = gymnasium.spaces.Discrete(2, start=-1)
    seen = []
    step = inner.step
    inner.step = lambda action: (seen.append(action), step(action))[1]
    env = GymnasiumEnvironment(inner)
    assert (int(env.action_spec().minimum), int(env.action_spec().maximum)) == (0, 1)
    env.reset()
    env.step(np.int64(0))
    env.step(np.int64(1))
    assert seen == [-1, 0]
