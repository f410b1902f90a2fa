"""Tests for continuous-action teachers: SAC and Gaussian PPO on Box action spaces (issue #13)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from conftest import TEACHER_METRIC_KEYS
from tf_agents.policies import greedy_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl.evaluate import run_episodes
from kd_rl.models import TeacherModel, load_policy
from kd_rl.teachers import (
    export_ppo_teacher,
    export_sac_teacher,
    load_hyperparameters,
    make_env,
    make_ppo_agent,
    make_sac_actor_network,
    make_sac_agent,
    train_teacher,
)
from kd_rl.teachers.agents import SAC_LOG_STD_RANGE, GaussianHead
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.sac import ActionNoise

LOW, HIGH = np.float32(-2.0), np.float32(2.0)  # Pendulum-v1's torque bounds
TINY_SAC = dict(
    hidden_units=[16],
    critic_hidden_units=[16],
    learning_starts=50,
    batch_size=32,
    buffer_size=1000,
    periodic_eval_episodes=1,
)


def _specs(env_id: str = "Pendulum-v1"):
    env = make_env(env_id)
    return tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())


def _batched(time_step):
    return tf.nest.map_structure(lambda x: np.asarray(x)[None], time_step)


def _visited_states(policy, n: int = 1000, seed: int = 0) -> np.ndarray:
    """At least ``n`` Pendulum states visited by running the TF-Agents ``policy``: float32 [>=n, 3]."""
    env = make_env("Pendulum-v1", seed=seed)
    action = common.function(policy.action)  # eager TF-Agents policies cost ~20 ms a step
    out = []
    step = env.reset()
    while len(out) < n:
        out.append(step.observation)
        step = env.step(action(_batched(step)).action.numpy()[0])
        if step.is_last():
            step = env.reset()
    return np.stack(out)


def _time_steps(observations: np.ndarray) -> ts.TimeStep:
    return ts.restart(tf.constant(observations), batch_size=observations.shape[0])


def _mlp(observations, kernels_biases, activation=lambda x: np.maximum(x, 0.0)):
    """The reference forward pass, by hand in float64."""
    x = observations.astype(np.float64)
    for kernel, bias in kernels_biases[:-1]:
        x = activation(x @ kernel + bias)
    kernel, bias = kernels_biases[-1]
    return x @ kernel + bias


def test_export_sac_matches_tf_agents_greedy_policy_on_visited_states(tmp_path):
    # Seeded: the checks that the test means much (actions spread, the clip
    # matters) must not depend on which tests ran before.
    tf_keras.utils.set_random_seed(0)
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("Pendulum-v1", "sac", {"hidden_units": [32, 32], "critic_hidden_units": [32]})
    actor = make_sac_actor_network(action_spec, params)
    agent = make_sac_agent(time_step_spec, action_spec, params, actor_network=actor)
    # Non-trivial weights: a wide spread of means (squashed actions away from
    # 0 and near the bounds) and of log_std.
    actor.layers[0].kernel.assign(actor.layers[0].kernel * 2.0)
    projection = actor.layers[-2]
    projection.kernel.assign(projection.kernel * 1.5)
    projection.bias.assign([0.3, 0.0])

    greedy = greedy_policy.GreedyPolicy(agent.policy)
    observations = _visited_states(greedy, 1000)
    assert len(observations) >= 1000
    # The greedy action (the squashed mean) does not depend on log_std, so the
    # visited states stay the same when its bias now centres log_std on SAC's
    # clip of 2 over those states: the clip matters on about half of them,
    # whatever the random initial weights.
    pre_bias = _mlp(observations, [(layer.kernel.numpy(), layer.bias.numpy()) for layer in actor.layers[:-1]])
    projection.bias.assign([0.3, SAC_LOG_STD_RANGE[1] - float(np.median(pre_bias[:, 1]))])
    teacher = export_sac_teacher(actor, obs_dim=3, action_spec=action_spec, hidden_units=(32, 32))
    assert isinstance(teacher, TeacherModel) and teacher.output_type == "gaussian"
    assert teacher.squash and teacher.state_dependent_std and teacher.action_dim == 1

    tf_actions = greedy.action(_time_steps(observations)).action.numpy()
    actions = np.asarray(teacher.act(observations))
    assert actions.shape == (len(observations), 1) and actions.dtype == np.float32
    error = np.abs(actions - tf_actions).max()
    print(f"SAC export: max abs action error {error:.3g} on {len(observations)} visited states")
    assert error < 1e-5, f"max abs action error {error}"
    assert tf_actions.std() > 0.3 and np.abs(tf_actions).max() > 1.5, "actions should vary for the test to mean much"

    # Reference by hand: the actor's Dense layers, then [mean, clip(log_std)].
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in actor.layers[:-1]]
    raw = _mlp(observations, weights)
    mean_ref, log_std_ref = raw[:, :1], np.clip(raw[:, 1:], *SAC_LOG_STD_RANGE)
    assert (raw[:, 1:] > SAC_LOG_STD_RANGE[1]).mean() > 0.05, "the log_std clip should matter somewhere"
    outputs = np.asarray(teacher(observations))
    np.testing.assert_allclose(outputs[:, :1], mean_ref, atol=1e-4)
    np.testing.assert_allclose(outputs[:, 1:], log_std_ref, atol=1e-4)
    np.testing.assert_allclose(actions, LOW + (np.tanh(mean_ref) + 1) / 2 * (HIGH - LOW), atol=1e-5)
    # ... and TF-Agents' own distribution: its input Normal's standard deviation.
    distribution = agent.policy.distribution(_time_steps(observations)).action
    np.testing.assert_allclose(
        outputs[:, 1:], np.log(distribution.input_distribution.stddev().numpy()), rtol=1e-5, atol=1e-5
    )

    # A Keras 3 file that loads without kd_rl.teachers and acts the same.
    teacher.save(tmp_path / "teacher.keras")
    loaded = load_policy(tmp_path / "teacher.keras")
    np.testing.assert_allclose(np.asarray(loaded.act(observations)), actions, atol=1e-6)

    with pytest.raises(ValueError, match="hidden_units"):
        export_sac_teacher(actor, obs_dim=3, action_spec=action_spec, hidden_units=100)
    with pytest.raises(ValueError, match="obs_dim=4"):
        export_sac_teacher(actor, obs_dim=4, action_spec=action_spec)


def test_export_continuous_ppo_matches_tf_agents_greedy_policy_on_visited_states():
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("Pendulum-v1", "ppo", {"hidden_units": [32]})
    agent = make_ppo_agent(time_step_spec, action_spec, params, gradient_steps=1000)
    head = agent.actor_net.layers[-1]
    assert isinstance(head, GaussianHead)
    head.log_std.assign([-0.7])
    states = _visited_states(agent.collect_policy, 1000, seed=1)
    # A normaliser far from (0, 1): shifted and narrow, many states past its clip of 5.
    agent.update_observation_normalizer(tf.constant((states * 0.1 + [0.2, -0.1, 0.5])[None], tf.float32))

    observations = _visited_states(agent.policy, 1000, seed=2)
    # Scale the mean layer so that about half of these states have a mean past the bound of 2
    # (the clip matters), whatever the random initialisation gave.
    mean_layer = agent.actor_net.layers[-2]
    means = np.asarray(export_ppo_teacher(agent, obs_dim=3)(observations))[:, 0]
    scale = 2.0 / np.median(np.abs(means))
    mean_layer.kernel.assign(mean_layer.kernel * scale)
    mean_layer.bias.assign(mean_layer.bias * scale)
    teacher = export_ppo_teacher(agent, obs_dim=3)
    assert teacher.output_type == "gaussian" and not teacher.squash and not teacher.state_dependent_std
    assert teacher.log_std_range is None

    tf_actions = agent.policy.action(_time_steps(observations)).action.numpy()  # greedy_eval: the mode
    actions = np.asarray(teacher.act(observations))
    error = np.abs(actions - tf_actions).max()
    print(f"PPO export: max abs action error {error:.3g} on {len(observations)} visited states")
    assert error < 1e-5, f"max abs action error {error}"

    distribution = agent.collect_policy.distribution(_time_steps(observations)).action
    outputs = np.asarray(teacher(observations))
    np.testing.assert_allclose(outputs[:, :1], distribution.loc.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outputs[:, 1:], np.log(distribution.stddev().numpy()), atol=1e-6)
    np.testing.assert_allclose(outputs[:, 1:], -0.7, atol=1e-6)
    unclipped = outputs[:, 0]
    assert 0.3 < (np.abs(unclipped) > 2.0).mean() < 0.7
    np.testing.assert_allclose(actions[:, 0], np.clip(unclipped, LOW, HIGH), atol=1e-6)


def test_replay_buffer_holds_continuous_actions(rng):
    buffer = TransitionBuffer(4, obs_dim=3, action_dim=2)
    for i in range(6):
        buffer.add(np.full(3, i, np.float32), np.array([i, -i], np.float32), float(i), 1.0, np.zeros(3))
    batch = buffer.sample(rng, 8)
    actions = batch.action_step.action
    assert actions.shape == (8, 2) and actions.dtype == np.float32
    np.testing.assert_array_equal(actions[:, 0], batch.time_step.observation[:, 0])
    assert set(actions[:, 0]) <= {2.0, 3.0, 4.0, 5.0}  # the two oldest were overwritten


# Two environments: Pendulum's episodes all last 200 steps, so evaluations still fall on 100, 200, 300.
@pytest.mark.parametrize("n_envs", [1, 2])
def test_train_teacher_sac_writes_a_gaussian_teacher_and_resumes(tmp_path, interrupt_teacher_run, n_envs):
    overrides = dict(TINY_SAC, eval_every=100, n_envs=n_envs)
    kwargs = dict(steps=300, seed=1, overrides=overrides, checkpoint_every=100, progress=False, eval_episodes=2)
    # In the evaluation at 200, before its checkpoint.
    interrupt_teacher_run(2, lambda: train_teacher("Pendulum-v1", "sac", tmp_path, **kwargs))
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "teacher.keras").exists()

    metrics = train_teacher("Pendulum-v1", "sac", tmp_path, resume=True, command="cmd", **kwargs)
    assert TEACHER_METRIC_KEYS <= set(metrics)
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["resumed_from_env_steps"] == 100 and metrics["env_steps"] == 300
    assert metrics["algo"] == "sac" and metrics["outputs"] == "gaussian" and metrics["hidden_units"] == [16]
    rows = (tmp_path / "curve.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [100, 200, 300]
    assert (tmp_path / "tensorboard").is_dir() and (tmp_path / "checkpoints" / "ckpt-300.index").exists()

    teacher = keras.saving.load_model(tmp_path / "teacher.keras")
    assert isinstance(teacher, TeacherModel) and teacher.is_continuous and teacher.squash
    # 3*16+16 hidden, 16*1+1 mean, 16*1+1 log_std.
    assert metrics["params"] == teacher.count_params() == 3 * 16 + 16 + 2 * (16 + 1)
    again = run_episodes(teacher, "Pendulum-v1", episodes=2, seed=1)
    assert metrics["returns"] == again.returns


def test_train_teacher_ppo_on_a_box_action_space_writes_a_gaussian_teacher(tmp_path):
    overrides = dict(hidden_units=[16], n_envs=2, n_steps=32, n_epochs=2, periodic_eval_episodes=1, eval_every=64)
    metrics = train_teacher(
        "Pendulum-v1", "ppo", tmp_path, steps=128, seed=2, overrides=overrides, eval_episodes=2, progress=False
    )
    assert metrics["env_steps"] == 128 and metrics["outputs"] == "gaussian"
    teacher = keras.saving.load_model(tmp_path / "teacher.keras")
    assert teacher.is_continuous and not teacher.squash and not teacher.state_dependent_std
    assert teacher.observation_mean is not None  # PPO's normaliser, baked in
    # 3*16+16 hidden, 16*1+1 mean, one log_std.
    assert metrics["params"] == teacher.count_params() == 3 * 16 + 16 + 16 + 1 + 1
    assert metrics["returns"] == run_episodes(teacher, "Pendulum-v1", episodes=2, seed=2).returns


@pytest.mark.parametrize(
    "env_id, algo, kwargs, match",
    [
        ("Pendulum-v1", "dqn", {}, r"algo 'dqn' needs a Discrete action space, but env 'Pendulum-v1' has .*'sac'"),
        ("CartPole-v1", "sac", {}, r"algo 'sac' needs a Box action space, but env 'CartPole-v1' has .*'dqn' or 'ppo'"),
        ("Pendulum-v1", "sac", {"overrides": {"batch_size": 0}}, "batch_size must be an int >= 1, got 0"),
        ("Pendulum-v1", "sac", {"overrides": {"learning_starts": -1}}, "learning_starts must be an int >= 0"),
        ("Pendulum-v1", "sac", {"overrides": {"target_entropy": "high"}}, "target_entropy must be 'auto'"),
        ("Pendulum-v1", "sac", {"overrides": {"initial_alpha": 0}}, "initial_alpha must be a number > 0"),
        ("Pendulum-v1", "sac", {"overrides": {"n_steps": 2}}, r"unknown sac hyperparameters \['n_steps'\]"),
        ("Pendulum-v1", "sac", {"overrides": {"action_noise": "ou"}}, r"action_noise must be one of \['none'"),
        ("Pendulum-v1", "sac", {"overrides": {"noise_std": -0.1}}, "noise_std must be a number >= 0"),
        ("Pendulum-v1", "sac", {"overrides": {"noise_theta": 0}}, r"noise_theta must be a number in \(0, 1\]"),
    ],
)
def test_bad_input_raises_before_writing_anything(tmp_path, env_id, algo, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        train_teacher(env_id, algo, out, progress=False, **kwargs)
    assert not out.exists()


def test_action_noise_is_normal_at_theta_1_and_correlated_below_it():
    low, high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])  # half-ranges 2 and 0.5
    normal = ActionNoise(3, low, high, std=0.5, theta=1.0)
    draws = np.stack([normal(np.random.default_rng(i)) for i in range(4000)])  # [4000, 3 envs, 2]
    assert draws.shape == (4000, 3, 2) and draws.dtype == np.float32
    np.testing.assert_allclose(draws.std(axis=(0, 1)), [1.0, 0.25], rtol=0.05)
    assert abs(np.corrcoef(draws[:-1, 0, 0], draws[1:, 0, 0])[0, 1]) < 0.05

    ou, rng = ActionNoise(1, low[:1], high[:1], std=0.5, theta=0.15), np.random.default_rng(0)
    path = np.array([ou(rng)[0, 0] for _ in range(20_000)])
    # x <- 0.85 x + 0.5 N(0, 1): lag-1 correlation 0.85, stationary std 0.5 / sqrt(1 - 0.85²), times half-range 2.
    assert np.corrcoef(path[:-1], path[1:])[0, 1] == pytest.approx(0.85, abs=0.02)
    assert path.std() == pytest.approx(2 * 0.5 / np.sqrt(1 - 0.85**2), rel=0.1)
    two = ActionNoise(2, low[:1], high[:1], std=0.5, theta=0.15)
    two(rng)
    two.reset(np.array([True, False]))
    assert two.state[0, 0] == 0.0 and two.state[1, 0] != 0.0


def test_sac_adds_the_noise_to_every_collected_action_within_the_bounds(tmp_path, monkeypatch):
    stored = []
    real_add = TransitionBuffer.add
    monkeypatch.setattr(
        TransitionBuffer, "add", lambda self, o, a, *rest: (stored.append(a.copy()), real_add(self, o, a, *rest))
    )
    # Random actions before step 50, the policy's after; noise of 20 half-ranges pins nearly all to a bound.
    overrides = dict(TINY_SAC, action_noise="normal", noise_std=20.0, eval_every=100)
    train_teacher(
        "Pendulum-v1", "sac", tmp_path, steps=100, seed=0, overrides=overrides, progress=False, eval_episodes=1
    )
    actions = np.concatenate(stored)
    assert actions.shape == (100,) and np.all((actions >= LOW) & (actions <= HIGH))
    assert np.mean(np.abs(actions) == HIGH) > 0.9
    stored.clear()
    train_teacher(
        "Pendulum-v1",
        "sac",
        tmp_path / "quiet",
        steps=100,
        seed=0,
        overrides=dict(TINY_SAC, eval_every=100),
        progress=False,
        eval_episodes=1,
    )
    assert np.mean(np.abs(np.concatenate(stored)) == HIGH) < 0.1


def test_sac_hyperparameters_per_environment():
    gym_id, params = load_hyperparameters("Pendulum-v1", "sac")
    assert gym_id == "Pendulum-v1" and params["n_timesteps"] <= 30_000
    assert params["hidden_units"] == (256, 256) and params["critic_hidden_units"] == (256, 256)
    assert params["learning_rate"] == 1e-3 and params["target_entropy"] == "auto"
    _, lunar = load_hyperparameters("LunarLanderContinuous-v3", "sac")
    assert lunar["hidden_units"] == (400, 300) and lunar["tau"] == 0.01
    _, walker = load_hyperparameters("BipedalWalker-v3", "sac")
    assert walker["train_freq"] == walker["gradient_steps"] == 64 and walker["gamma"] == 0.98
    _, car = load_hyperparameters("MountainCarContinuous-v0", "sac")
    assert car["action_noise"] == "ornstein-uhlenbeck" and car["gamma"] == 0.9999
    _, default = load_hyperparameters("default", "sac")
    assert default["action_noise"] == "none"
    assert load_hyperparameters("Swimmer-v5", "sac", {"tau": 0.1}) == ("Swimmer-v5", dict(default, tau=0.1))


def test_sac_agent_targets_minus_d_entropy_and_refuses_discrete_actions():
    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("Pendulum-v1", "sac", {"hidden_units": [8], "critic_hidden_units": [8]})
    agent = make_sac_agent(time_step_spec, action_spec, params)
    # One gradient step on a batch: alpha's loss is -log_alpha * (log_pi + target), target = -d = -1.
    assert agent.policy.action(_time_steps(np.zeros((2, 3), np.float32))).action.shape == (2, 1)
    _, discrete_spec = _specs("CartPole-v1")
    with pytest.raises(ValueError, match="action_spec must be a float spec"):
        make_sac_actor_network(discrete_spec, params)


@pytest.mark.parametrize(
    "env_id, algo, fits",
    [("Pendulum-v1", "dqn", "'ppo' or 'sac'"), ("CartPole-v1", "sac", "'dqn' or 'ppo'")],
)
def test_cli_refuses_an_algorithm_that_does_not_fit_the_action_space(tmp_path, capsys, env_id, algo, fits):
    from kd_rl.cli import main

    out = tmp_path / "run"
    assert main(["train-teacher", "--env", env_id, "--algo", algo, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"kd-rl: error: algo '{algo}' needs a") and fits in err
    assert not out.exists()


def test_mujoco_entries_take_rl_zoo_settings_and_the_initial_log_std():
    from kd_rl.teachers.agents import make_actor_network

    _, hopper = load_hyperparameters("Hopper-v5", "ppo")
    assert hopper["log_std_init"] == -2.0 and hopper["hidden_units"] == (256, 256) and hopper["n_envs"] == 1
    assert load_hyperparameters("Walker2d-v5", "ppo")[1]["log_std_init"] == 0.0  # RL-Zoo's: SB3's default
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"):
        sac = load_hyperparameters(env_id, "sac")[1]
        assert sac["learning_starts"] == 10_000 and sac["train_freq"] == sac["gradient_steps"] == 64
    spec = tensor_spec.BoundedTensorSpec([3], tf.float32, -1.0, 1.0)
    actor = make_actor_network(spec, hopper)
    actor.create_variables(tf.TensorSpec([11], tf.float32))
    head = [layer for layer in actor.layers if isinstance(layer, GaussianHead)][0]
    np.testing.assert_allclose(head.log_std.numpy(), [-2.0] * 3)


def test_a_sac_training_round_in_one_call_takes_the_same_steps_as_one_call_each():
    from tf_agents.trajectories import policy_step, trajectory

    from kd_rl.teachers.off_policy import make_train_round

    time_step_spec, action_spec = _specs()
    _, params = load_hyperparameters("Pendulum-v1", "sac", {"hidden_units": [16], "critic_hidden_units": [16]})
    agents = []
    for _ in range(2):
        tf_keras.utils.set_random_seed(0)
        agents.append(make_sac_agent(time_step_spec, action_spec, params))
        agents[-1].initialize()
    rng = np.random.default_rng(0)
    steps, batch = 3, 8

    def step(obs, reward, discount, kind):
        return ts.TimeStep(np.full(obs.shape[:-1], kind, np.int32), reward, discount, obs)

    obs = rng.normal(size=(steps, batch, 3)).astype(np.float32)
    nxt = rng.normal(size=(steps, batch, 3)).astype(np.float32)
    reward = rng.normal(size=(steps, batch)).astype(np.float32)
    discount = np.ones((steps, batch), np.float32)
    actions = rng.uniform(-2, 2, size=(steps, batch, 1)).astype(np.float32)
    batches = trajectory.Transition(
        step(obs, np.zeros_like(reward), discount, ts.StepType.MID), policy_step.PolicyStep(actions, (), ()),
        step(nxt, reward, discount, ts.StepType.MID),
    )  # fmt: skip
    initial = [v.numpy().copy() for v in agents[0]._actor_network.variables]
    means = make_train_round(agents[0], steps, ("loss", "critic_loss", "actor_loss", "alpha_loss"))(batches)
    one = common.function(agents[1].train)
    infos = [one(tf.nest.map_structure(lambda t, i=i: t[i], batches)) for i in range(steps)]
    assert float(means["loss"]) == pytest.approx(np.mean([float(i.loss) for i in infos]), rel=1e-4)
    assert float(means["critic_loss"]) == pytest.approx(np.mean([float(i.extra.critic_loss) for i in infos]), rel=1e-4)
    moved = False
    for a, b, start in zip(agents[0]._actor_network.variables, agents[1]._actor_network.variables, initial):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
        moved |= not np.allclose(a.numpy(), start)
    assert moved  # the three steps trained the actor
    assert int(agents[0].train_step_counter.numpy()) == int(agents[1].train_step_counter.numpy()) == steps
