"""TF-Agents DQN and PPO agents over networks built from ``tf_keras`` layers kd_rl holds.

Each network is a TF-Agents ``Sequential`` of ``tf_keras.layers.Dense``
layers (the TF-Agents DQN tutorial's way), so the layers that hold a teacher's
weights are public: `kd_rl.teachers.export` reads them from
``network.layers`` rather than from an agent's private attributes.
Initialisers are those of TF-Agents' ``QNetwork`` and
``ActorDistributionNetwork``, which these networks replace.

Optimizers are ``tf_keras`` optimizers: a Keras 3 optimizer cannot update
``tf_keras`` variables.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras
from tf_agents.agents.dqn import dqn_agent
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.networks import sequential, value_network
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl.teachers.hyperparams import activation

__all__ = ["make_q_network", "make_actor_network", "make_dqn_agent", "make_ppo_agent"]


def _num_actions(action_spec) -> int:
    action_spec = tensor_spec.from_spec(action_spec)
    if action_spec.shape.rank != 0 or not action_spec.dtype.is_integer or int(action_spec.minimum) != 0:
        raise ValueError(f"action_spec must be a scalar integer spec with minimum 0, got {action_spec}")
    return int(action_spec.maximum) + 1


def _learning_rate(hyperparameters: Mapping, gradient_steps: int | None):
    """The Adam learning rate: a constant, or linear decay to 0 over ``gradient_steps``."""
    rate, schedule = float(hyperparameters["learning_rate"]), hyperparameters["lr_schedule"]
    if schedule == "constant":
        return rate
    if schedule == "linear":
        if not gradient_steps:
            raise ValueError("lr_schedule='linear' needs the run's number of gradient steps")
        # Annealing the step size stops the late oscillations that DQN in
        # particular shows on CartPole, so the last weights are good ones.
        return tf_keras.optimizers.schedules.PolynomialDecay(rate, int(gradient_steps), end_learning_rate=0.0)
    raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {schedule!r}")


def make_q_network(action_spec, hyperparameters: Mapping) -> sequential.Sequential:
    """A Q-network ``float32 [batch, obs_dim] -> Q [batch, num_actions]``: Dense layers only.

    Args:
        action_spec: Scalar integer ``BoundedTensorSpec`` with minimum 0.
        hyperparameters: ``hidden_units`` and ``activation`` are used.
    """
    num_actions = _num_actions(action_spec)
    hidden = [
        tf_keras.layers.Dense(
            units,
            activation=activation(hyperparameters["activation"]),
            # One initializer per layer: an unseeded tf_keras initializer called twice repeats its values.
            kernel_initializer=tf_keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal"),
        )
        for units in hyperparameters["hidden_units"]
    ]
    q_values = tf_keras.layers.Dense(
        num_actions,
        kernel_initializer=tf_keras.initializers.RandomUniform(-0.03, 0.03),
        bias_initializer=tf_keras.initializers.Constant(-0.2),
    )
    return sequential.Sequential([*hidden, q_values], name="QNetwork")


def _categorical(logits: tf.Tensor, dtype: tf.DType) -> tfp.distributions.Categorical:
    return tfp.distributions.Categorical(logits=logits, dtype=dtype)


def make_actor_network(action_spec, hyperparameters: Mapping) -> sequential.Sequential:
    """A PPO actor: Dense layers to logits ``[batch, num_actions]``, then a ``Categorical``.

    The greedy action (the distribution's mode) is ``argmax(logits)``.

    Args:
        action_spec: Scalar integer ``BoundedTensorSpec`` with minimum 0.
        hyperparameters: ``hidden_units`` and ``activation`` are used.
    """
    num_actions = _num_actions(action_spec)
    hidden = [
        tf_keras.layers.Dense(units, activation=activation(hyperparameters["activation"]))
        for units in hyperparameters["hidden_units"]
    ]
    # Small initial logits, as TF-Agents' CategoricalProjectionNetwork: a near-uniform first policy.
    logits = tf_keras.layers.Dense(num_actions, kernel_initializer=tf_keras.initializers.VarianceScaling(0.1))
    distribution = tf_keras.layers.Lambda(
        functools.partial(_categorical, dtype=tensor_spec.from_spec(action_spec).dtype), name="categorical"
    )
    return sequential.Sequential([*hidden, logits, distribution], name="ActorNetwork")


def make_dqn_agent(
    time_step_spec: ts.TimeStep,
    action_spec,
    hyperparameters: Mapping,
    gradient_steps: int | None = None,
    q_network: sequential.Sequential | None = None,
) -> dqn_agent.DqnAgent:
    """A TF-Agents ``DqnAgent`` (``DdqnAgent`` if ``double_dqn``).

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action.
        hyperparameters: As from `load_hyperparameters` for ``"dqn"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).
        q_network: The online Q-network; default `make_q_network`. Pass your
            own to keep a reference for `export_dqn_teacher`.

    Returns:
        An initialised agent whose optimizer variables already exist (so a
        checkpoint restores them in a fixed order).

    Raises:
        ValueError: For an unusable action spec, loss or learning-rate schedule.
    """
    p = hyperparameters
    if p["loss"] not in ("huber", "mse"):
        raise ValueError(f"loss must be 'huber' or 'mse', got {p['loss']!r}")
    net = make_q_network(action_spec, p) if q_network is None else q_network
    optimizer = tf_keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps))
    agent_class = dqn_agent.DdqnAgent if p["double_dqn"] else dqn_agent.DqnAgent
    agent = agent_class(
        time_step_spec,
        action_spec,
        q_network=net,
        optimizer=optimizer,
        # Only used by agent.collect_policy; train_teacher explores itself.
        epsilon_greedy=float(p["exploration_final_eps"]),
        target_update_tau=float(p["target_update_tau"]),
        target_update_period=int(p["target_update_interval"]),
        td_errors_loss_fn=(
            common.element_wise_huber_loss if p["loss"] == "huber" else common.element_wise_squared_loss
        ),
        gamma=float(p["gamma"]),
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
    )
    agent.initialize()
    optimizer.build(net.trainable_variables)
    return agent


def make_ppo_agent(
    time_step_spec: ts.TimeStep,
    action_spec,
    hyperparameters: Mapping,
    gradient_steps: int | None = None,
    actor_network: sequential.Sequential | None = None,
) -> ppo_clip_agent.PPOClipAgent:
    """A TF-Agents ``PPOClipAgent`` with a Dense actor and a ``ValueNetwork``.

    Observations are normalised (``normalize_observations=True``); GAE
    advantages and TD(lambda) returns; the agent's ``policy`` is greedy.

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action.
        hyperparameters: As from `load_hyperparameters` for ``"ppo"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).
        actor_network: The actor; default `make_actor_network`. The agent's
            public ``actor_net`` is this network.

    Returns:
        An initialised agent whose optimizer variables already exist.

    Raises:
        ValueError: For an unusable action spec or learning-rate schedule.
    """
    p = hyperparameters
    actor = make_actor_network(action_spec, p) if actor_network is None else actor_network
    value = value_network.ValueNetwork(
        time_step_spec.observation,
        fc_layer_params=tuple(p["value_hidden_units"]),
        activation_fn=activation(p["activation"]),
    )
    optimizer = tf_keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps), epsilon=1e-5)
    agent = ppo_clip_agent.PPOClipAgent(
        time_step_spec,
        action_spec,
        optimizer=optimizer,
        actor_net=actor,
        value_net=value,
        greedy_eval=True,
        importance_ratio_clipping=float(p["clip_range"]),
        lambda_value=float(p["gae_lambda"]),
        discount_factor=float(p["gamma"]),
        entropy_regularization=float(p["ent_coef"]),
        value_pred_loss_coef=float(p["vf_coef"]),
        num_epochs=int(p["n_epochs"]),
        use_gae=True,
        use_td_lambda_return=True,
        normalize_rewards=bool(p["normalize_rewards"]),
        normalize_observations=True,
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
    )
    agent.initialize()
    value.create_variables()
    optimizer.build(actor.trainable_variables + value.trainable_variables)
    return agent
