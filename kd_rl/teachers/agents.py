"""TF-Agents DQN, PPO and SAC agents over networks built from ``tf_keras`` layers kd_rl holds.

Each network is a TF-Agents ``Sequential`` of ``tf_keras.layers.Dense``
layers (the TF-Agents DQN tutorial's way), ending for an actor in one layer
that turns the last Dense layer's outputs into a distribution, so the layers
that hold a teacher's weights are public: `kd_rl.teachers.to_keras` reads them
from ``network.layers`` rather than from an agent's private attributes.
Initialisers are those of TF-Agents' ``QNetwork`` and
``ActorDistributionNetwork``, which these networks replace.

The actors' distributions:

* discrete PPO: ``Categorical(logits)``;
* continuous PPO: a diagonal Gaussian ``N(mean, exp(log_std)^2)`` with one learned ``log_std``
  per action dimension (`GaussianHead`, Stable-Baselines3's choice); samples
  are clipped to the bounds by the environment;
* SAC: TF-Agents' tanh-squashed Gaussian, ``SquashToSpecNormal(
  MultivariateNormalDiag(mean, exp(clip(log_std, -20, 2))))`` from one Dense
  layer of ``2d`` outputs ``[mean, log_std]``: what
  ``TanhNormalProjectionNetwork(std_transform=sac_agent.std_clip_transform)``
  gives.

Optimizers are ``tf_keras`` optimizers: a Keras 3 optimizer cannot update
``tf_keras`` variables.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras
from tf_agents.agents.ddpg import critic_network
from tf_agents.agents.dqn import dqn_agent
from tf_agents.agents.ppo import ppo_clip_agent
from tf_agents.agents.sac import sac_agent
from tf_agents.distributions import utils as distribution_utils
from tf_agents.networks import sequential, value_network
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl._validate import conv_output_shape, normalise_conv_layers
from kd_rl.errors import KdRlError
from kd_rl.models import LOG_STD_RANGE
from kd_rl.teachers import kickstart as ks
from kd_rl.teachers.hyperparam_tables import activation

__all__ = [
    "SAC_LOG_STD_RANGE",
    "GaussianHead",
    "is_continuous",
    "make_actor_network",
    "make_critic_network",
    "make_dqn_agent",
    "make_ppo_agent",
    "make_q_network",
    "make_sac_actor_network",
    "make_sac_agent",
]


#: The clip of a SAC actor's ``log_std``: TF-Agents' ``sac_agent.std_clip_transform``
#: (and Stable-Baselines3's SAC) clip it to [-20, 2] before ``exp``: kd_rl's
#: `kd_rl.models.LOG_STD_RANGE`, the one home of the value.
SAC_LOG_STD_RANGE = LOG_STD_RANGE


def _num_actions(action_spec) -> int:
    action_spec = tensor_spec.from_spec(action_spec)
    if action_spec.shape.rank != 0 or not action_spec.dtype.is_integer or int(action_spec.minimum) != 0:
        raise KdRlError(f"action_spec must be a scalar integer spec with minimum 0, got {action_spec}")
    return int(action_spec.maximum) + 1


def is_continuous(action_spec) -> bool:
    """Whether ``action_spec`` is a continuous action (a float spec), not a discrete one."""
    return tensor_spec.from_spec(action_spec).dtype.is_floating


def _action_dim(action_spec) -> int:
    action_spec = tensor_spec.from_spec(action_spec)
    if action_spec.shape.rank != 1 or not action_spec.dtype.is_floating:
        raise KdRlError(f"action_spec must be a float spec of shape [d] (a Box action), got {action_spec}")
    low = np.broadcast_to(action_spec.minimum, action_spec.shape)
    high = np.broadcast_to(action_spec.maximum, action_spec.shape)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
        raise KdRlError(f"action_spec must have finite bounds with minimum < maximum, got {action_spec}")
    return int(action_spec.shape[0])


def _learning_rate(hyperparameters: Mapping, gradient_steps: int | None):
    """The Adam learning rate: a constant, or linear decay to 0 over ``gradient_steps``."""
    rate, schedule = float(hyperparameters["learning_rate"]), hyperparameters["lr_schedule"]
    if schedule == "constant":
        return rate
    if schedule == "linear":
        if not gradient_steps:
            raise KdRlError("lr_schedule='linear' needs the run's number of gradient steps")
        # Annealing the step size stops the late oscillations that DQN in
        # particular shows on CartPole, so the last weights are good ones.
        return tf_keras.optimizers.schedules.PolynomialDecay(rate, int(gradient_steps), end_learning_rate=0.0)
    raise KdRlError(f"lr_schedule must be 'constant' or 'linear', got {schedule!r}")


def make_q_network(
    action_spec,
    hyperparameters: Mapping,
    observation_dim: int | None = None,
    observation_shape=None,
    observation_scale: float = 1.0,
) -> sequential.Sequential:
    """A Q-network ``float32 [batch, obs_dim] -> Q [batch, num_actions]``: Dense layers, after convolutions for images.

    With ``conv_layers`` in the hyperparameters (``[[filters, kernel, stride], ...]``)
    the flat observation is reshaped to ``observation_shape`` (``(height, width,
    channels)``) and goes through ``Conv2D`` layers (``valid`` padding, the
    hidden activation) and a ``Flatten`` before the Dense layers: the
    convolutional Q-networks of Mnih et al. (2015) and of MinAtar (Young &
    Tian 2019: one 16-filter 3 x 3 convolution, then 128 units). Frames are
    divided by ``observation_scale`` first (255 for Atari's bytes).

    ``init`` chooses the initial weights:

    - ``tf_agents``: TF-Agents' ``QNetwork`` examples: hidden kernels He
      truncated-normal (``VarianceScaling(2, fan_in)``), zero biases; the
      output layer uniform in ±0.03 with biases -0.2 (every Q-value starts
      near -0.2).
    - ``torch``: PyTorch's ``nn.Linear`` default, which Stable-Baselines3's DQN
      uses: every kernel and bias uniform in ±1/sqrt(fan_in). On CartPole-v1
      with RL-Zoo's settings it solved 3 seeds at 17.5k/22.5k/37.5k env steps
      against 47.5k/30k/not in 50k with ``tf_agents`` (docs/cli.md).

    Args:
        action_spec: Scalar integer ``BoundedTensorSpec`` with minimum 0.
        hyperparameters: ``hidden_units``, ``activation`` and ``init`` are used.
        observation_dim: The flat observation size; ``init: torch`` needs it
            (the first layer's biases depend on its fan-in).

    Raises:
        ValueError: For an unknown ``init``, or ``torch`` without ``observation_dim``.
    """
    num_actions = _num_actions(action_spec)
    widths = list(hyperparameters["hidden_units"])
    init = hyperparameters.get("init", "tf_agents")
    convolutions, flat_size = _conv_stack(hyperparameters, observation_shape, init, observation_scale)
    if convolutions:
        observation_dim = flat_size  # the first Dense layer's fan-in
    if init == "tf_agents":
        # One initializer per layer: an unseeded tf_keras initializer called twice repeats its values.
        kernels = [tf_keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal") for _ in widths]
        kernels.append(tf_keras.initializers.RandomUniform(-0.03, 0.03))
        biases = ["zeros"] * len(widths) + [tf_keras.initializers.Constant(-0.2)]
    elif init == "torch":
        if observation_dim is None:
            raise KdRlError("init 'torch' needs the observation size (observation_dim)")
        limits = [1.0 / np.sqrt(fan_in) for fan_in in [int(observation_dim), *widths]]
        kernels = [tf_keras.initializers.RandomUniform(-limit, limit) for limit in limits]
        biases = [tf_keras.initializers.RandomUniform(-limit, limit) for limit in limits]
    else:
        raise KdRlError(f"init must be 'tf_agents' or 'torch', got {init!r}")
    layers = [
        tf_keras.layers.Dense(
            units,
            activation=activation(hyperparameters["activation"]) if i < len(widths) else None,
            kernel_initializer=kernels[i],
            bias_initializer=biases[i],
        )
        for i, units in enumerate([*widths, num_actions])
    ]
    return sequential.Sequential(convolutions + layers, name="QNetwork")


def _conv_stack(hyperparameters: Mapping, observation_shape, init: str, scale: float = 1.0) -> tuple[list, int | None]:
    """``([Reshape, Conv2D..., Flatten], flat size)`` for the ``conv_layers`` hyperparameter (``([], None)`` without).

    With ``scale`` other than 1 a ``Rescaling(1 / scale)`` follows the ``Reshape``.

    The kernels start as the Dense layers' do: He (``tf_agents``) or uniform in
    +-1/sqrt(fan_in) (``torch``, PyTorch's ``nn.Conv2d`` default).
    """
    convs = normalise_conv_layers(hyperparameters.get("conv_layers"))
    if not convs:
        return [], None
    if observation_shape is None or len(observation_shape) != 3:
        raise KdRlError(
            f"conv_layers need image observations (height, width, channels); this environment's are {observation_shape}"
        )
    layers = [tf_keras.layers.Reshape(tuple(observation_shape), input_shape=(int(np.prod(observation_shape)),))]
    if float(scale) != 1.0:
        layers.append(tf_keras.layers.Rescaling(1.0 / float(scale)))
    flat_size = int(np.prod(conv_output_shape(observation_shape, convs)))  # refuses convolutions too large
    channels = int(observation_shape[-1])
    for filters, kernel, stride in convs:
        fan_in = kernel * kernel * channels
        if init == "torch":
            limit = 1.0 / np.sqrt(fan_in)
            kernel_init = tf_keras.initializers.RandomUniform(-limit, limit)
            bias_init = tf_keras.initializers.RandomUniform(-limit, limit)
        else:
            kernel_init, bias_init = tf_keras.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal"), "zeros"
        layers.append(
            tf_keras.layers.Conv2D(
                filters,
                kernel,
                strides=stride,
                activation=activation(hyperparameters["activation"]),
                kernel_initializer=kernel_init,
                bias_initializer=bias_init,
            )
        )
        channels = filters
    layers.append(tf_keras.layers.Flatten())
    return layers, flat_size


def _categorical(logits: tf.Tensor, dtype: tf.DType) -> tfp.distributions.Categorical:
    return tfp.distributions.Categorical(logits=logits, dtype=dtype)


class GaussianHead(tf_keras.layers.Layer):
    """``mean [batch, d] -> MultivariateNormalDiag(mean, exp(log_std))``, one learned ``log_std`` per dimension.

    The standard deviation does not depend on the observation (as in
    Stable-Baselines3's PPO and TF-Agents' ``NormalProjectionNetwork`` with
    ``state_dependent_std=False``), so the exported teacher stores it as one
    ``[d]`` vector. The distribution's mode is ``mean``.

    Args:
        initial_log_std: ``log_std``'s initial value in every dimension.
    """

    def __init__(self, initial_log_std: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_log_std = float(initial_log_std)

    def build(self, input_shape):
        self.log_std = self.add_weight(
            name="log_std",
            shape=(int(input_shape[-1]),),
            initializer=tf_keras.initializers.Constant(self.initial_log_std),
            trainable=True,
        )
        super().build(input_shape)

    def call(self, mean):
        # Event shape [d], as the action spec; a full [batch, d] scale because
        # TF-Agents stores the parameters per batch entry (policy_info["dist_params"]).
        scale = tf.exp(self.log_std) * tf.ones_like(mean)
        return tfp.distributions.MultivariateNormalDiag(loc=mean, scale_diag=scale)


def make_actor_network(
    action_spec, hyperparameters: Mapping, observation_shape=None, observation_scale: float = 1.0
) -> sequential.Sequential:
    """A PPO actor: Dense layers, then a ``Categorical`` (discrete) or a ``Normal`` (continuous) over actions.

    With ``conv_layers`` (image observations of ``observation_shape``) the
    Dense layers follow convolutions, as in `make_q_network`.

    Discrete: Dense layers to logits ``[batch, num_actions]``, then
    ``Categorical(logits)``; the greedy action (the mode) is ``argmax(logits)``.
    Continuous: Dense layers to the mean ``[batch, d]``, then a `GaussianHead`;
    the greedy action is the mean, clipped to the bounds by the policy.

    Args:
        action_spec: Scalar integer ``BoundedTensorSpec`` with minimum 0, or a
            float ``BoundedTensorSpec`` of shape ``[d]`` with finite bounds.
        hyperparameters: ``hidden_units`` and ``activation`` are used, and for
            continuous actions ``log_std_init`` (default 0).
    """
    continuous = is_continuous(action_spec)
    if continuous and normalise_conv_layers(hyperparameters.get("conv_layers")):
        raise KdRlError("conv_layers: kd_rl's convolutional PPO teachers act in Discrete action spaces")
    outputs = _action_dim(action_spec) if continuous else _num_actions(action_spec)
    hidden = [
        tf_keras.layers.Dense(units, activation=activation(hyperparameters["activation"]))
        for units in hyperparameters["hidden_units"]
    ]
    convolutions, _ = _conv_stack(hyperparameters, observation_shape, "tf_agents", observation_scale)
    # Small initial outputs, as TF-Agents' projection networks: a near-uniform
    # (or near-zero-mean) first policy.
    last = tf_keras.layers.Dense(outputs, kernel_initializer=tf_keras.initializers.VarianceScaling(0.1))
    if continuous:
        distribution = GaussianHead(hyperparameters.get("log_std_init", 0.0), name="gaussian")
    else:
        distribution = tf_keras.layers.Lambda(
            functools.partial(_categorical, dtype=tensor_spec.from_spec(action_spec).dtype), name="categorical"
        )
    return sequential.Sequential([*convolutions, *hidden, last, distribution], name="ActorNetwork")


def _tanh_squashed_normal(outputs: tf.Tensor, action_spec) -> distribution_utils.SquashToSpecNormal:
    mean, log_std = tf.split(outputs, 2, axis=-1)
    std = tf.exp(tf.clip_by_value(log_std, *SAC_LOG_STD_RANGE))  # = sac_agent.std_clip_transform(log_std)
    normal = tfp.distributions.MultivariateNormalDiag(loc=mean, scale_diag=std)
    return distribution_utils.SquashToSpecNormal(normal, action_spec)


def make_sac_actor_network(action_spec, hyperparameters: Mapping) -> sequential.Sequential:
    """A SAC actor: Dense layers to ``[mean, log_std]`` ``[batch, 2d]``, then a tanh-squashed Gaussian.

    The distribution is TF-Agents' ``SquashToSpecNormal(MultivariateNormalDiag(
    mean, exp(clip(log_std, -20, 2))))``, as from ``TanhNormalProjectionNetwork``
    with ``sac_agent.std_clip_transform``. Its mode, the greedy action, is
    ``low + (tanh(mean) + 1) / 2 * (high - low)``.

    Args:
        action_spec: Float ``BoundedTensorSpec`` of shape ``[d]`` with finite bounds.
        hyperparameters: ``hidden_units`` and ``activation`` are used.

    Raises:
        ValueError: For a discrete or unbounded action spec.
    """
    d = _action_dim(action_spec)
    hidden = [
        tf_keras.layers.Dense(units, activation=activation(hyperparameters["activation"]))
        for units in hyperparameters["hidden_units"]
    ]
    projection = tf_keras.layers.Dense(2 * d, name="mean_log_std")
    distribution = tf_keras.layers.Lambda(
        functools.partial(_tanh_squashed_normal, action_spec=tensor_spec.from_spec(action_spec)),
        name="tanh_squashed_normal",
    )
    return sequential.Sequential([*hidden, projection, distribution], name="ActorNetwork")


def make_critic_network(observation_spec, action_spec, hyperparameters: Mapping) -> critic_network.CriticNetwork:
    """A SAC critic ``Q(observation, action)``: the two joined, then ``critic_hidden_units`` Dense layers.

    TF-Agents' ``CriticNetwork`` with the initialisers of its SAC examples.
    """
    return critic_network.CriticNetwork(
        (observation_spec, action_spec),
        joint_fc_layer_params=tuple(hyperparameters["critic_hidden_units"]),
        kernel_initializer="glorot_uniform",
        last_kernel_initializer="glorot_uniform",
    )


def make_dqn_agent(
    time_step_spec: ts.TimeStep,
    action_spec,
    hyperparameters: Mapping,
    gradient_steps: int | None = None,
    q_network: sequential.Sequential | None = None,
    kickstart=None,
) -> dqn_agent.DqnAgent:
    """A TF-Agents ``DqnAgent`` (``DdqnAgent`` if ``double_dqn``).

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action.
        hyperparameters: As from `load_hyperparameters` for ``"dqn"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).
        q_network: The online Q-network; default `make_q_network`. Pass your
            own to keep a reference for `export_dqn_teacher`.
        kickstart: A `kd_rl.teachers.kickstart.Kickstart`: the agent's loss
            gains its distillation term (`KickstartedDqnAgent`).

    Returns:
        An initialised agent whose optimizer variables already exist (so a
        checkpoint restores them in a fixed order).

    Raises:
        ValueError: For an unusable action spec, loss or learning-rate schedule.
    """
    p = hyperparameters
    if p["loss"] not in ("huber", "mse"):
        raise KdRlError(f"loss must be 'huber' or 'mse', got {p['loss']!r}")
    if q_network is None:
        net = make_q_network(action_spec, p, int(np.prod(time_step_spec.observation.shape)))
    else:
        net = q_network
    optimizer = tf_keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps))
    agent_class = dqn_agent.DdqnAgent if p["double_dqn"] else dqn_agent.DqnAgent
    extra = {}
    if kickstart is not None:
        agent_class = ks.KickstartedDdqnAgent if p["double_dqn"] else ks.KickstartedDqnAgent
        extra["kickstart"] = kickstart
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
        **extra,
    )
    agent.initialize()
    optimizer.build(net.trainable_variables)
    return agent


def make_sac_agent(
    time_step_spec: ts.TimeStep,
    action_spec,
    hyperparameters: Mapping,
    gradient_steps: int | None = None,
    actor_network: sequential.Sequential | None = None,
    kickstart=None,
) -> sac_agent.SacAgent:
    """A TF-Agents ``SacAgent``: a tanh-squashed Gaussian actor, two critics, a learned entropy coefficient.

    Critic targets use the minimum of two target critics, updated softly
    (``tau``) after every gradient step; the entropy coefficient ``alpha``
    starts at ``initial_alpha`` and is tuned towards ``target_entropy``
    (``auto``: ``-d``, as Stable-Baselines3; TF-Agents' own default is ``-d/2``).

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Float ``BoundedTensorSpec`` ``[d]`` of the continuous action.
        hyperparameters: As from `load_hyperparameters` for ``"sac"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).
        actor_network: The actor; default `make_sac_actor_network`. Pass your
            own to keep a reference for `export_sac_teacher`.
        kickstart: A `kd_rl.teachers.kickstart.Kickstart`: the actor loss
            gains its distillation term (`KickstartedSacAgent`).

    Returns:
        An initialised agent (target critics equal to the critics). Its
        ``policy`` samples the Gaussian; TF-Agents' greedy policy of it
        (``GreedyPolicy(agent.policy)``) takes the mode.

    Raises:
        ValueError: For a discrete or unbounded action spec, or an unknown
            learning-rate schedule.
    """
    p = hyperparameters
    d = _action_dim(action_spec)
    actor = make_sac_actor_network(action_spec, p) if actor_network is None else actor_network
    critic = make_critic_network(time_step_spec.observation, action_spec, p)
    target_entropy = -float(d) if p["target_entropy"] == "auto" else float(p["target_entropy"])

    def adam():
        return tf_keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps))

    agent_class, extra = sac_agent.SacAgent, {}
    if kickstart is not None:
        agent_class, extra = ks.KickstartedSacAgent, {"kickstart": kickstart}
    agent = agent_class(
        time_step_spec,
        action_spec,
        critic_network=critic,
        actor_network=actor,
        actor_optimizer=adam(),
        critic_optimizer=adam(),
        alpha_optimizer=adam(),
        target_update_tau=float(p["tau"]),
        target_update_period=1,
        td_errors_loss_fn=tf.math.squared_difference,
        gamma=float(p["gamma"]),
        initial_log_alpha=float(np.log(float(p["initial_alpha"]))),
        target_entropy=target_entropy,
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
        **extra,
    )
    agent.initialize()
    return agent


def make_ppo_agent(
    time_step_spec: ts.TimeStep,
    action_spec,
    hyperparameters: Mapping,
    gradient_steps: int | None = None,
    actor_network: sequential.Sequential | None = None,
    kickstart=None,
    observation_shape=None,
    observation_scale: float = 1.0,
) -> ppo_clip_agent.PPOClipAgent:
    """A TF-Agents ``PPOClipAgent`` with a Dense actor and a ``ValueNetwork``.

    Observations are normalised (``normalize_observations=True``); GAE
    advantages and TD(lambda) returns; the agent's ``policy`` is greedy. The
    actor is categorical for a discrete action, Gaussian for a continuous one
    (`make_actor_network`).

    One ``agent.train`` call is one gradient step (``num_epochs=1``) on
    experience already passed through ``agent.preprocess_sequence`` (the
    collect policy records the value predictions); the normalisers are
    updated by the caller once per rollout. `kd_rl.teachers.ppo.make_ppo_update`
    runs the epochs and minibatches of a rollout this way in one compiled
    loop, so the graph holds one gradient step, not ``n_epochs`` of them.

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action, or
            float ``[d]`` of a continuous one.
        hyperparameters: As from `load_hyperparameters` for ``"ppo"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).
        actor_network: The actor; default `make_actor_network`. The agent's
            public ``actor_net`` is this network.
        kickstart: A `kd_rl.teachers.kickstart.Kickstart`: the policy-gradient
            loss gains its distillation term (`KickstartedPPOClipAgent`).
        observation_shape: Image observations' shape, for ``conv_layers``: the
            actor and the value network then start with the same convolutions
            (each its own), frames are divided by ``observation_scale``, and
            observations are not normalised.

    Returns:
        An initialised agent whose optimizer variables already exist.

    Raises:
        ValueError: For an unusable action spec or learning-rate schedule.
    """
    p = hyperparameters
    if actor_network is None:
        actor_network = make_actor_network(action_spec, p, observation_shape, observation_scale)
    actor = actor_network
    convs = normalise_conv_layers(p.get("conv_layers"))
    image = bool(convs) and observation_shape is not None
    if image:
        front = [tf_keras.layers.Reshape(tuple(observation_shape))]
        if float(observation_scale) != 1.0:
            front.append(tf_keras.layers.Rescaling(1.0 / float(observation_scale)))
        value = value_network.ValueNetwork(
            time_step_spec.observation,
            preprocessing_layers=tf_keras.Sequential(front),
            conv_layer_params=convs,
            fc_layer_params=tuple(p["value_hidden_units"]),
            activation_fn=activation(p["activation"]),
        )
    else:
        value = value_network.ValueNetwork(
            time_step_spec.observation,
            fc_layer_params=tuple(p["value_hidden_units"]),
            activation_fn=activation(p["activation"]),
        )
    optimizer = tf_keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps), epsilon=1e-5)
    agent_class, extra = ppo_clip_agent.PPOClipAgent, {}
    if kickstart is not None:
        agent_class, extra = ks.KickstartedPPOClipAgent, {"kickstart": kickstart}
    agent = agent_class(
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
        num_epochs=1,
        use_gae=True,
        use_td_lambda_return=True,
        compute_value_and_advantage_in_train=False,
        update_normalizers_in_train=False,
        normalize_rewards=bool(p["normalize_rewards"]),
        normalize_observations=not image,  # frames are scaled, not normalised
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
        **extra,
    )
    agent.initialize()
    value.create_variables()
    optimizer.build(actor.trainable_variables + value.trainable_variables)
    return agent
