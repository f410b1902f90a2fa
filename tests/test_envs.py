"""Tests for kd_rl.envs: checked Gymnasium environments and EnvGroup (no TF-Agents)."""

from __future__ import annotations

import re
import sys

import gymnasium
import numpy as np
import pytest
from conftest import Countdown, one_line_error

from kd_rl.envs import EnvGroup, check_observation_finite, check_spaces, env_dims, env_spec, make_gymnasium_env
from kd_rl.errors import KdRlError

gymnasium.register("KdRlCountdownEnvs-v0", entry_point=Countdown)


def test_make_gymnasium_env_and_env_dims():
    env = make_gymnasium_env("CartPole-v1", max_episode_steps=7)
    assert env.spec.max_episode_steps == 7
    env.close()
    assert env_dims("CartPole-v1") == (4, 2)
    assert env_dims("Acrobot-v1") == (6, 3)


def test_env_dims_lunar_lander():
    try:
        dims = env_dims("LunarLander-v3")
    except gymnasium.error.DependencyNotInstalled as err:
        pytest.skip(f"LunarLander needs the box2d extra: {err}")
    assert dims == (8, 4)


@pytest.mark.parametrize("bad", ["Foo-v0", "", None])
def test_unknown_env_id_is_named(bad):
    with pytest.raises(ValueError, match="env_id must be|unknown environment id 'Foo-v0'"):
        make_gymnasium_env(bad)
    with pytest.raises(ValueError, match="env_id must be|unknown environment id 'Foo-v0'"):
        env_dims(bad)


def test_check_spaces_names_the_refused_space():
    box, discrete = gymnasium.spaces.Box(-1, 1, (3,)), gymnasium.spaces.Discrete(2)
    check_spaces(box, discrete, "ok")  # a 1-D Box and a Discrete: no error
    check_spaces(box, gymnasium.spaces.Box(-2, 2, (1,)), "ok")  # a 1-D Box of actions (continuous): no error
    matrix = gymnasium.spaces.Box(-1, 1, (2, 2))
    with pytest.raises(ValueError, match=r"env 'm' has action space Box\(-1.0, 1.0, \(2, 2\), float32\)"):
        check_spaces(box, matrix, "m")
    with pytest.raises(ValueError, match=r"env 'u' has action space .*finite Box action bounds"):
        check_spaces(box, gymnasium.spaces.Box(-np.inf, np.inf, (2,)), "u")
    with pytest.raises(ValueError, match=r"env 'md' has action space MultiDiscrete"):
        check_spaces(box, gymnasium.spaces.MultiDiscrete([2, 3]), "md")
    with pytest.raises(ValueError, match=r"env 'Pendulum-v1' has a continuous 1-dimensional action.*needs a Discrete"):
        env_dims("Pendulum-v1")
    check_spaces(gymnasium.spaces.Box(0, 255, (4, 4, 3), np.uint8), discrete, "img")  # any Box: flattened
    grid = gymnasium.spaces.Discrete(16)
    with pytest.raises(ValueError, match=r"env 'grid' has observation space Discrete\(16\).*needs a Box observation"):
        check_spaces(grid, discrete, "grid")


def test_check_observation_finite_names_the_step_and_indices():
    check_observation_finite(np.zeros(3), step=0)  # finite: no error
    with pytest.raises(ValueError, match=r"observation at step 5 .*not finite.*indices \[1, 2\]"):
        check_observation_finite(np.array([0.0, np.inf, np.nan]), step=5)


def test_env_group_stacks_observations_and_seeded_resets_repeat():
    with EnvGroup("CartPole-v1", 3) as envs:
        assert (envs.obs_dim, envs.num_actions, envs.num_envs) == (4, 2, 3)
        first = envs.reset(seeds=[10, 11, 12])
        assert first.shape == (3, 4) and first.dtype == np.float32
        for i in range(3):
            ref, _ = gymnasium.make("CartPole-v1").reset(seed=10 + i)
            np.testing.assert_array_equal(first[i], ref.astype(np.float32))
        obs, rewards, terminated, truncated = envs.step(np.array([0, 1, 0]))
        assert obs.shape == (3, 4) and rewards.shape == terminated.shape == truncated.shape == (3,)
        np.testing.assert_array_equal(rewards, [1.0, 1.0, 1.0])
        np.testing.assert_array_equal(envs.reset(seeds=[10, 11, 12]), first)
        # Reset and step a subset: the others are untouched.
        again = envs.reset(seeds=[11], indices=[1])
        np.testing.assert_array_equal(again[0], first[1])
        obs, *_ = envs.step(np.array([1]), indices=[1])
        assert obs.shape == (1, 4) and list(envs.episode_steps) == [0, 1, 0]
    with pytest.raises(ValueError, match="num_envs must be an int >= 1, got 0"):
        EnvGroup("CartPole-v1", 0)
    with pytest.raises(ValueError, match="got 1 seeds for 2 environments"):
        EnvGroup("CartPole-v1", 2).reset(seeds=[0])


def test_env_group_reports_termination_and_truncation_apart():
    with EnvGroup("KdRlCountdownEnvs-v0", 2) as envs:
        envs.envs[1].unwrapped.truncate_at = 2
        envs.reset()
        _, rewards, terminated, truncated = envs.step([0, 0])
        np.testing.assert_array_equal(terminated, [False, False])
        np.testing.assert_array_equal(truncated, [False, False])
        _, rewards, terminated, truncated = envs.step([0, 0])
        np.testing.assert_array_equal(rewards, [2.0, 2.0])
        np.testing.assert_array_equal(truncated, [False, True])
        np.testing.assert_array_equal(terminated, [False, False])
        _, _, terminated, _ = envs.step([0], indices=[0])
        np.testing.assert_array_equal(terminated, [True])


def test_env_group_adds_the_action_space_start():
    with EnvGroup("KdRlCountdownEnvs-v0", 1, env_kwargs={"start": -1}) as envs:
        envs.reset()
        envs.step([0])
        envs.step([1])
        assert envs.envs[0].unwrapped.actions == [-1, 0]


def test_env_group_nan_observation_names_the_step():
    with EnvGroup("KdRlCountdownEnvs-v0", 2, env_kwargs={"terminate_at": 10, "nan_at": 2}) as envs:
        envs.reset()
        envs.step([0, 0])
        with pytest.raises(ValueError, match=r"observation at step 2 .*not finite.*indices \[1\]"):
            envs.step([0, 0])


def test_env_group_refuses_unusable_spaces():
    with pytest.raises(ValueError, match="observation space Discrete"):
        EnvGroup("FrozenLake-v1", 2)
    with pytest.raises(ValueError, match="unknown environment id 'Foo-v0'"):
        EnvGroup("Foo-v0", 1)


def test_multi_dimensional_box_observations_are_flattened():
    # Countdown with a [3, 2] observation: its first entry counts the steps.
    with EnvGroup("KdRlCountdownEnvs-v0", 2, env_kwargs={"obs_shape": (3, 2), "terminate_at": 5}) as envs:
        assert envs.obs_dim == 6
        obs = envs.reset()
        assert obs.shape == (2, 6)
        obs, *_ = envs.step([0, 1])
        np.testing.assert_array_equal(obs[:, 0], [1, 1])
    from kd_rl.envs import env_spec

    assert env_spec("KdRlCountdownEnvs-v0", obs_shape=(3, 2)).obs_dim == 6


def test_a_student_distils_on_a_2d_observation_space(tmp_path):
    from kd_rl.distill import DistillConfig, distill_policy
    from kd_rl.models import TeacherModel

    teacher = TeacherModel(2, hidden_units=8, observation_dim=6)
    config = DistillConfig(
        env_id="KdRlCountdownEnvs-v0", env_kwargs={"obs_shape": (3, 2), "terminate_at": 20}, steps=200,
        hidden_units=4, eval_every=0, eval_episodes=2, collect_per_round=100, updates_per_round=5,
    )  # fmt: skip
    student, metrics = distill_policy(teacher, config, progress=False)
    assert student.observation_dim == 6 and metrics["env_kwargs"]["terminate_at"] == 20
    assert metrics["student_mean_return"] == metrics["teacher_mean_return"] == sum(range(1, 21))


@pytest.mark.parametrize(
    "env_id,kwargs,match",
    [
        ("no_such_package.envs:Foo-v0", {}, "module 'no_such_package.envs' cannot be imported"),
        ("CartPole-v1", {"no_such_argument": 1}, "rejects the arguments {'no_such_argument': 1}"),
    ],
)
def test_env_ids_with_modules_and_bad_kwargs_are_named(env_id, kwargs, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        make_gymnasium_env(env_id, **kwargs)


def test_module_env_ids_register_on_first_use():
    env = make_gymnasium_env("gymnasium.envs.classic_control:CartPole-v1")
    assert env.spec.id == "CartPole-v1"
    env.close()


@pytest.mark.parametrize("text", ["[1]", "{not json", "3"])
def test_env_kwargs_text_must_be_a_json_object(text):
    from kd_rl.envs import parse_env_kwargs

    with pytest.raises(ValueError, match="--env-kwargs must be a JSON object"):
        parse_env_kwargs(text)
    assert parse_env_kwargs('{"continuous": true}') == {"continuous": True}


def test_env_group_non_finite_reward_names_the_step_and_the_environment():
    class NanReward(Countdown):
        def step(self, action):
            obs, _, terminated, truncated, info = super().step(action)
            return obs, float("nan") if self.t == 2 else 1.0, terminated, truncated, info

    if "KdRlNanReward-v0" not in gymnasium.registry:
        gymnasium.register("KdRlNanReward-v0", entry_point=NanReward)
    with EnvGroup("KdRlNanReward-v0", 1, env_kwargs={"terminate_at": 10}) as envs:
        envs.reset()
        envs.step([0])
        with pytest.raises(ValueError, match=r"reward at step 2 of an episode of 'KdRlNanReward-v0' is not finite"):
            envs.step([0])


def test_human_rendering_without_a_display_is_refused(monkeypatch):
    from kd_rl.envs import make_gymnasium_env

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(ValueError, match="render_mode 'human' for 'CartPole-v1' needs a display"):
        make_gymnasium_env("CartPole-v1", render_mode="human")
    make_gymnasium_env("CartPole-v1", render_mode="rgb_array").close()


def test_mujoco_environments_build_and_a_missing_mujoco_names_the_extra(capsys, monkeypatch):
    pytest.importorskip("mujoco")
    spec = env_spec("Hopper-v5")
    assert spec.obs_dim == 11 and spec.is_continuous and spec.action_dim == 3
    monkeypatch.setitem(sys.modules, "mujoco", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(KdRlError, match=r'pip install "kd_rl\[mujoco\]"'):
        make_gymnasium_env("Walker2d-v5")
    one_line_error(capsys, ["evaluate", "CartPole-v1-dqn", "--env", "Ant-v5"], "kd_rl[mujoco]")
