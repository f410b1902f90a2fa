"""Tests for kd_rl.teachers.kickstart: the λ schedules, the distillation term against NumPy,
the term inside each TF-Agents agent's loss, a kickstarted run's records, and bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import make_cartpole_teacher
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from kd_rl.cli import main
from kd_rl.models import TeacherModel
from kd_rl.teachers import (
    load_hyperparameters,
    make_dqn_agent,
    make_env,
    make_ppo_agent,
    make_q_network,
    make_sac_actor_network,
    make_sac_agent,
    train_teacher,
)
from kd_rl.teachers.kickstart import (
    Kickstart,
    KickstartedDdqnAgent,
    KickstartedPPOClipAgent,
    KickstartedSacAgent,
    kickstart_loss,
    kickstart_weight,
)
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.to_keras import dense_layers

TINY_DQN = dict(
    learning_starts=100, train_freq=4, gradient_steps=1, batch_size=32, buffer_size=1000, periodic_eval_episodes=2
)


# ---------------------------------------------------------------- NumPy references


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _np_discrete(v, z, t, tau, mask=None):
    """w(tau) * mean_b KL(softmax(v/t) || softmax(z/tau)), and its gradient in z."""
    v, z = np.asarray(v, np.float64), np.asarray(z, np.float64)
    keep = np.ones(len(v), bool) if mask is None else np.asarray(mask) > 0
    log_p, log_q = _log_softmax(v / t), _log_softmax(z / tau)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(-1)
    w = tau * max(tau, 1.0)
    grad = np.where(keep[:, None], w * (np.exp(log_q) - np.exp(log_p)) / tau / keep.sum(), 0.0)
    return w * kl[keep].mean(), grad


def _np_gaussian(teacher, student, t=1.0):
    """mean_b sum_d KL(N(mu_t, (t s_t)^2) || N(mu_s, s_s^2)) of [mean, log_std] rows."""
    d = teacher.shape[-1] // 2
    mu_t, ls_t = teacher[:, :d].astype(np.float64), teacher[:, d:] + np.log(t)
    mu_s, ls_s = student[:, :d].astype(np.float64), student[:, d:].astype(np.float64)
    var_t, var_s = np.exp(2 * ls_t), np.exp(2 * ls_s)
    return (ls_s - ls_t + (var_t + (mu_t - mu_s) ** 2) / (2 * var_s) - 0.5).sum(-1).mean()


def _np_forward(layers, x, activation=np.tanh):
    """A NumPy forward pass through tf_keras Dense layers (the last one linear)."""
    x = np.asarray(x, np.float64)
    for i, layer in enumerate(layers):
        x = x @ layer.kernel.numpy() + layer.bias.numpy()
        if i < len(layers) - 1:
            x = activation(x)
    return x


def _relu(x):
    return np.maximum(x, 0.0)


def _time_steps(observations: np.ndarray) -> ts.TimeStep:
    n = len(observations)
    return ts.TimeStep(tf.ones(n, tf.int32), tf.zeros(n), tf.ones(n), tf.constant(observations))


# ---------------------------------------------------------------- the schedule and the term


@pytest.mark.parametrize("t", [0, 1, 250, 500, 999, 1000, 1500])
def test_schedules(t):
    assert kickstart_weight("constant", 2.0, 1000, t) == 2.0
    assert kickstart_weight("linear", 2.0, 1000, t) == pytest.approx(2.0 * max(0.0, 1 - t / 1000))
    assert kickstart_weight("exponential", 2.0, 1000, t) == pytest.approx(2.0 * 0.01 ** (t / 1000))
    assert kickstart_weight("exponential", 2.0, 1000, 1000) == pytest.approx(0.02)


@pytest.mark.parametrize("t, tau", [(0.01, 0.01), (1.0, 1.0), (1.0, 0.01), (0.01, 1.0), (3.0, 2.0)])
def test_discrete_term_and_gradient_match_numpy(rng, t, tau):
    v = rng.normal(size=(16, 3)).astype(np.float32) * 0.05
    z = rng.normal(size=(16, 3)).astype(np.float32) * 0.05
    mask = (rng.random(16) > 0.3).astype(np.float32)
    for weights in (None, mask):
        zt = tf.constant(z)
        with tf.GradientTape() as tape:
            tape.watch(zt)
            loss = kickstart_loss(v, zt, t, tau, weights=weights)
        expected, grad = _np_discrete(v, z, t, tau, weights)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(tape.gradient(loss, zt).numpy(), grad, rtol=1e-3, atol=1e-7)


def test_gaussian_term_matches_numpy_and_an_empty_mask_gives_zero(rng):
    teacher = rng.normal(size=(8, 4)).astype(np.float32)
    student = rng.normal(size=(8, 4)).astype(np.float32)
    for t in (1.0, 0.5):
        loss = kickstart_loss(teacher, student, t, gaussian=True)
        np.testing.assert_allclose(float(loss), _np_gaussian(teacher, student, t), rtol=1e-5)
    mask = np.array([1, 0, 0, 1, 0, 1, 1, 0], np.float32)
    loss = kickstart_loss(teacher, student, 1.0, gaussian=True, weights=mask)
    np.testing.assert_allclose(float(loss), _np_gaussian(teacher[mask > 0], student[mask > 0]), rtol=1e-5)
    assert float(kickstart_loss(teacher, student, 1.0, gaussian=True, weights=np.zeros(8))) == 0.0


def test_a_decaying_schedule_needs_until():
    with pytest.raises(ValueError, match="schedule 'linear' needs until"):
        Kickstart(make_cartpole_teacher(), schedule="linear")
    assert Kickstart(make_cartpole_teacher(), weight=0.3, schedule="constant").weight_at(10**6) == 0.3


# ---------------------------------------------------------------- the term inside each agent


def _cartpole_batch(n: int, rng) -> TransitionBuffer:
    env = make_env("CartPole-v1", seed=0)
    buffer = TransitionBuffer(n, 4)
    step = env.reset()
    for _ in range(n):
        action = int(rng.integers(2))
        nxt = env.step(np.int64(action))
        buffer.add(step.observation, action, nxt.reward, nxt.discount, nxt.observation)
        step = env.reset() if nxt.is_last() else nxt
    return buffer


def test_dqn_loss_is_td_loss_plus_weighted_kl_to_the_teacher(rng):
    env = make_env("CartPole-v1")
    time_step_spec, action_spec = tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())
    _, p = load_hyperparameters("CartPole-v1", "dqn", {"hidden_units": [8], "lr_schedule": "constant"})
    teacher = make_cartpole_teacher(scale=0.05)
    kick = Kickstart(teacher, weight=0.7, schedule="constant")
    q_network = make_q_network(action_spec, p, 4)
    agent = make_dqn_agent(time_step_spec, action_spec, p, q_network=q_network, kickstart=kick)
    assert isinstance(agent, KickstartedDdqnAgent) and kick.temperature == 1.0  # a teacher without output_type
    plain = make_dqn_agent(time_step_spec, action_spec, p, q_network=q_network)

    batch = tf.nest.map_structure(tf.convert_to_tensor, _cartpole_batch(64, rng).sample(rng, 64))
    total = float(agent.loss(batch).loss)
    td = float(plain.loss(batch).loss)
    scalars = kick.scalars()
    obs = batch.time_step.observation.numpy()
    q = _np_forward(dense_layers(q_network), obs, _relu)
    expected, _ = _np_discrete(teacher(obs).numpy(), q, 1.0, 0.01)
    assert scalars["rl_loss"] == pytest.approx(td, rel=1e-5)
    assert scalars["kickstart_loss"] == pytest.approx(expected, rel=1e-3)
    assert scalars["kickstart_weight"] == pytest.approx(0.7)
    assert total == pytest.approx(td + 0.7 * scalars["kickstart_loss"], rel=1e-5)


def test_ppo_policy_gradient_loss_gains_the_masked_kl_to_the_teacher(rng):
    env = make_env("CartPole-v1")
    time_step_spec, action_spec = tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())
    _, p = load_hyperparameters("CartPole-v1", "ppo", {"hidden_units": [8]})
    teacher = TeacherModel(2, hidden_units=16, observation_dim=4, output_type="logits")
    kick = Kickstart(teacher, weight=0.5, schedule="linear", until=100)
    agent = make_ppo_agent(time_step_spec, action_spec, p, kickstart=kick)
    assert isinstance(agent, KickstartedPPOClipAgent)
    kick.set_step(50)  # linear: lambda = 0.5 * (1 - 50/100)

    n = 12
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    logits = rng.normal(size=(n, 2)).astype(np.float32)
    mask = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0], np.float32)
    steps = _time_steps(obs)
    distribution = tfp.distributions.Categorical(logits=logits, dtype=tf.int64)
    args = (steps, tf.zeros(n, tf.int64), tf.fill([n], -0.7), tf.constant(rng.normal(size=n), tf.float32))
    total = float(agent.policy_gradient_loss(*args, distribution, tf.constant(mask)))
    scalars = kick.scalars()
    expected, _ = _np_discrete(teacher(obs).numpy(), logits, 1.0, 1.0, mask)
    assert scalars["kickstart_weight"] == pytest.approx(0.25)
    assert scalars["kickstart_loss"] == pytest.approx(expected, rel=1e-4)
    assert total == pytest.approx(scalars["rl_loss"] + 0.25 * expected, rel=1e-4)


def test_sac_actor_loss_gains_the_gaussian_kl_before_the_squash(rng):
    env = make_env("Pendulum-v1")
    time_step_spec, action_spec = tensor_spec.from_spec(env.time_step_spec()), tensor_spec.from_spec(env.action_spec())
    _, p = load_hyperparameters("Pendulum-v1", "sac", {"hidden_units": [8], "critic_hidden_units": [8]})
    teacher = TeacherModel(action_low=[-2.0], action_high=[2.0], squash=True, hidden_units=16, observation_dim=3)
    kick = Kickstart(teacher, weight=2.0, schedule="constant")
    actor = make_sac_actor_network(action_spec, p)
    agent = make_sac_agent(time_step_spec, action_spec, p, actor_network=actor, kickstart=kick)
    assert isinstance(agent, KickstartedSacAgent)

    n = 10
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    steps = _time_steps(obs)
    total = float(agent.actor_loss(steps))
    scalars = kick.scalars()
    student = _np_forward(dense_layers(actor), obs, _relu)
    student[:, 1:] = np.clip(student[:, 1:], -20.0, 2.0)
    assert scalars["kickstart_loss"] == pytest.approx(_np_gaussian(teacher(obs).numpy(), student), rel=1e-4)
    assert total == pytest.approx(scalars["rl_loss"] + 2.0 * scalars["kickstart_loss"], rel=1e-4)


# ---------------------------------------------------------------- a kickstarted run


def _curve(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_kickstarted_dqn_run_records_lambda_and_both_terms_and_resumes(tmp_path, interrupt_teacher_run):
    out = tmp_path / "run"
    kwargs = dict(
        steps=300,
        seed=1,
        hidden_units=16,
        overrides=dict(TINY_DQN, eval_every=100),
        checkpoint_every=100,
        progress=False,
        kickstart=make_cartpole_teacher(),
        kickstart_until=200,
    )
    interrupt_teacher_run(2, lambda: train_teacher("CartPole-v1", "dqn", out, **kwargs))
    # The same teacher as a new model object (Keras names it anew): resumed, not refused.
    kwargs["kickstart"] = make_cartpole_teacher()
    metrics = train_teacher("CartPole-v1", "dqn", out, resume=True, eval_episodes=2, **kwargs)

    assert metrics["resumed_from_env_steps"] == 100 and metrics["env_steps"] == 300
    assert metrics["kickstart"] == {
        "teacher": kwargs["kickstart"].name,
        "teacher_outputs": None,
        "weight": 1.0,
        "schedule": "linear",
        "until": 200,
        "temperature": 1.0,
        "final_weight": 0.0,
    }
    rows = _curve(out / "curve.csv")
    assert list(rows[0]) == [
        "env_steps",
        "mean_return",
        "wall_seconds",
        "kickstart_weight",
        "rl_loss",
        "kickstart_loss",
    ]
    assert [int(r["env_steps"]) for r in rows] == [100, 200, 300]
    # No training before step 100 (lambda still lambda0); lambda is set before each round: 1 - 200/200 = 0.
    assert [float(r["kickstart_weight"]) for r in rows] == [1.0, 0.0, 0.0]
    assert float(rows[2]["kickstart_loss"]) >= 0.0 and np.isfinite(float(rows[2]["rl_loss"]))

    tags = set()
    for path in (out / "tensorboard").glob("events*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    assert {"train/kickstart_weight", "train/rl_loss", "train/kickstart_loss"} <= tags
    assert json.loads((out / "metrics.json").read_text())["kickstart"]["schedule"] == "linear"


# ---------------------------------------------------------------- bad input


def _squashed_pendulum_teacher():
    return TeacherModel(action_low=[-2.0], action_high=[2.0], squash=True, hidden_units=8, observation_dim=3)


@pytest.mark.parametrize(
    "env_id, algo, kwargs, match",
    [
        ("CartPole-v1", "dqn", {"kickstart": TeacherModel(2, observation_dim=3)}, "expects 3 observation features"),
        ("CartPole-v1", "dqn", {"kickstart": TeacherModel(3, observation_dim=4)}, "outputs 3 actions but CartPole"),
        ("CartPole-v1", "ppo", {"kickstart": "Pendulum-v1-sac"}, "kickstart teacher is a continuous"),
        ("Pendulum-v1", "ppo", {"kickstart": _squashed_pendulum_teacher()}, "squash alike"),
        ("CartPole-v1", "dqn", {"kickstart": "no/such/teacher.keras"}, "no/such/teacher.keras"),
        ("CartPole-v1", "dqn", {"kickstart": "CartPole-v1-dqn", "kickstart_weight": -1.0}, "weight must be a finite"),
        ("CartPole-v1", "dqn", {"kickstart": "CartPole-v1-dqn", "kickstart_schedule": "cosine"}, "schedule must be"),
        ("CartPole-v1", "dqn", {"kickstart": "CartPole-v1-dqn", "kickstart_until": 0}, "until must be an int >= 1"),
        ("CartPole-v1", "dqn", {"kickstart_weight": 0.5}, "need a kickstart teacher"),
    ],
)
def test_bad_input_raises_before_writing_anything(tmp_path, env_id, algo, kwargs, match):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=match):
        train_teacher(env_id, algo, out, progress=False, **kwargs)
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--kickstart", "Pendulum-v1-sac"], "kickstart teacher is a continuous"),
        (["--kickstart", "CartPole-v1-dqn", "--kickstart-weight", "-0.5"], "kickstart-weight: expected a number >= 0"),
        (["--kickstart", "CartPole-v1-dqn", "--kickstart-schedule", "cosine"], "invalid choice: 'cosine'"),
    ],
)
def test_cli_bad_kickstart_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, flags, match):
    out = tmp_path / "out"
    code = main(["train-teacher", "--env", "CartPole-v1", "--algo", "dqn", "--out", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err
    assert not out.exists()
