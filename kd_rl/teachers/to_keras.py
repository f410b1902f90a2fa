"""Export TF-Agents teachers as Keras 3 `kd_rl.models.TeacherModel`s.

The exported teacher's outputs are

* a DQN teacher's Q-values (`export_dqn_teacher`),
* a discrete PPO teacher's actor logits, with PPO's observation normaliser
  baked in (`export_ppo_teacher`),

so that ``argmax(teacher(observations))`` is the TF-Agents greedy action; or,
for a continuous action, a Gaussian's ``[mean, log_std]`` (``2d`` outputs,
``output_type="gaussian"``):

* a SAC teacher's tanh-squashed Gaussian (`export_sac_teacher`,
  ``squash=True``, state-dependent ``log_std`` clipped to [-20, 2]),
* a continuous PPO teacher's Gaussian (`export_ppo_teacher`, ``squash=False``,
  one learned ``log_std`` per dimension, the normaliser baked in),

so that ``teacher.act(observations)`` is the TF-Agents greedy action (the
distribution's mode), clipped to the bounds as the environment clips it.
Weights are read from the ``tf_keras`` Dense layers of the networks that
`kd_rl.teachers.agents` builds (``network.layers``), PPO's ``log_std`` from its
`GaussianHead` layer, and the normaliser from the PPO policy's public
``observation_normalizer``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras
from tf_agents.agents.ppo import ppo_agent
from tf_agents.networks import sequential
from tf_agents.utils import tensor_normalizer

from kd_rl.errors import KdRlError
from kd_rl.models import TeacherModel, normalise_hidden_units
from kd_rl.policies import NumpyPolicy
from kd_rl.teachers.agents import SAC_LOG_STD_RANGE, GaussianHead

__all__ = [
    "action_bounds",
    "conv_layers",
    "dense_layers",
    "export_dqn_teacher",
    "export_ppo_teacher",
    "export_sac_teacher",
    "numpy_policy",
    "ppo_normaliser",
]

_NO_NORMALISER = (None, None, None)


def _split_convolutions(network) -> tuple[list, list, float | None]:
    """``(Conv2D layers, the layers after the Flatten, the frames' scale)`` of a network that starts
    ``Reshape, [Rescaling,] Conv2D..., Flatten``; ``([], all layers, None)`` for one without convolutions."""
    layers = list(network.layers)
    if not layers or not isinstance(layers[0], tf_keras.layers.Reshape):
        return [], layers, None
    scale = None
    if len(layers) > 1 and isinstance(layers[1], tf_keras.layers.Rescaling):
        if float(layers[1].offset) != 0.0:
            raise KdRlError("cannot export a Rescaling with an offset: kd_rl's teachers divide frames by a scale")
        scale = 1.0 / float(layers[1].scale)
    flat = next((i for i, layer in enumerate(layers) if isinstance(layer, tf_keras.layers.Flatten)), None)
    convs = layers[(2 if scale is not None else 1) : flat] if flat is not None else []
    if flat is None or not convs or not all(type(layer) is tf_keras.layers.Conv2D for layer in convs):
        raise KdRlError("a convolutional network must start Reshape, Conv2D..., Flatten to export to a TeacherModel")
    for conv in convs:
        if conv.padding != "valid" or conv.dilation_rate != (1, 1) or conv.strides[0] != conv.strides[1]:
            raise KdRlError(f"cannot export {conv.name}: kd_rl's convolutions are 'valid', undilated, square-strided")
    return convs, layers[flat + 1 :], scale


def conv_layers(network: sequential.Sequential) -> list[tf_keras.layers.Conv2D]:
    """The Conv2D layers of a kd_rl convolutional Q-network or actor, input to output (empty for an MLP)."""
    return _split_convolutions(network)[0]


def frame_normaliser(network: sequential.Sequential) -> tuple:
    """``(mean, std, clip)`` that divides frames by the network's ``Rescaling`` scale; no normaliser without one."""
    scale = _split_convolutions(network)[2]
    return _NO_NORMALISER if scale is None else (None, np.array([scale], np.float32), None)


def _observation_shape(network) -> tuple[int, ...] | None:
    found = [layer for layer in network.layers if isinstance(layer, tf_keras.layers.Reshape)]
    return tuple(found[0].target_shape) if found else None


def dense_layers(network: sequential.Sequential) -> list[tf_keras.layers.Dense]:
    """The Dense layers of a kd_rl Q-network or actor, input to output.

    An actor's final distribution layer (a ``Lambda`` or a `GaussianHead`) is
    skipped, and so are a convolutional network's ``Reshape, Conv2D...,
    Flatten`` (`conv_layers` gives the convolutions).

    Raises:
        ValueError: If ``network`` is not a TF-Agents ``Sequential`` of Dense
            layers (a plain MLP), which a TeacherModel could not hold.
    """
    if not isinstance(network, sequential.Sequential):
        raise KdRlError(
            f"expected a TF-Agents Sequential network (see kd_rl.teachers.agents), got {type(network).__name__}"
        )
    layers = _split_convolutions(network)[1]
    if layers and isinstance(layers[-1], tf_keras.layers.Lambda | GaussianHead):
        layers = layers[:-1]
    for layer in layers:
        if not isinstance(layer, tf_keras.layers.Dense):
            raise KdRlError(f"cannot export layer {layer.name} ({type(layer).__name__}) to a TeacherModel")
    if len(layers) < 2:
        raise KdRlError("cannot export a network without hidden layers to a TeacherModel")
    if not layers[0].built:
        raise KdRlError("the network has no weights yet; build it (e.g. by making its agent) before exporting")
    return layers


def _activation_name(layers) -> str:
    names = {tf_keras.activations.serialize(layer.activation) for layer in layers}
    if len(names) != 1:
        raise KdRlError(f"hidden layers must share one activation to export, got {sorted(names)}")
    return names.pop()


def ppo_normaliser(agent: ppo_agent.PPOAgent) -> tuple:
    """``(mean, std, clip)`` reproducing the PPO agent's observation normaliser.

    TF-Agents' PPO policies call ``normalizer.normalize(observation)`` with the
    method's defaults (clip_value=5.0, center_mean=True, variance_epsilon=1e-3
    in 0.19), i.e. ``clip((x - mean) / sqrt(var + eps), -clip, clip)``; the
    defaults are read from the installed TF-Agents so the export follows it.
    A ``StreamingTensorNormalizer``'s public ``variables`` are
    ``(count, avg, m2, m2_carry)``, and its estimates are ``mean = avg``,
    ``var = m2 / count``.
    """
    normaliser = agent.collect_policy.observation_normalizer
    if normaliser is None:
        return _NO_NORMALISER
    if not isinstance(normaliser, tensor_normalizer.StreamingTensorNormalizer):
        raise KdRlError(f"cannot export a {type(normaliser).__name__}; expected a StreamingTensorNormalizer")
    defaults = inspect.signature(type(normaliser).normalize).parameters
    clip_value = float(defaults["clip_value"].default)
    center_mean = bool(defaults["center_mean"].default)
    epsilon = np.float32(defaults["variance_epsilon"].default)
    (count,), (avg,), (m2,), _ = (tf.nest.flatten(v) for v in normaliser.variables)
    variance = m2.numpy().astype(np.float32) / count.numpy().astype(np.float32)
    return (
        avg.numpy().astype(np.float32) if center_mean else None,
        np.sqrt(variance + epsilon),
        clip_value if clip_value > 0 else None,
    )


def _ppo_actor_layers(agent) -> list[tf_keras.layers.Dense]:
    if not isinstance(agent, ppo_agent.PPOAgent):
        raise KdRlError(f"expected a TF-Agents PPOAgent, got {type(agent).__name__}")
    return dense_layers(agent.actor_net)


def action_bounds(action_spec) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``, float32 ``[d]``, of a continuous ``BoundedTensorSpec`` / ``BoundedArraySpec``."""
    shape = tuple(int(n) for n in action_spec.shape)
    low = np.broadcast_to(np.asarray(action_spec.minimum, np.float32), shape).copy()
    high = np.broadcast_to(np.asarray(action_spec.maximum, np.float32), shape).copy()
    return low, high


def _check_layers(layers, obs_dim: int, outputs: int, hidden_units, what: str, convs=()) -> tuple[int, ...]:
    hidden, output = layers[:-1], layers[-1]
    found_units = tuple(int(layer.units) for layer in hidden)
    if hidden_units is not None and normalise_hidden_units(hidden_units) != found_units:
        raise KdRlError(f"hidden_units={hidden_units!r} does not match the network's hidden layers {found_units}")
    if int(output.units) != outputs:
        raise KdRlError(f"{what} does not match the network's {output.units} outputs")
    kernel_in = int(layers[0].kernel.shape[0])
    if not convs and kernel_in != obs_dim:
        raise KdRlError(f"obs_dim={obs_dim} does not match the network's input size {kernel_in}")
    if tf_keras.activations.serialize(output.activation) != "linear":
        raise KdRlError("the network's output layer must be linear to export its outputs")
    return found_units


def _new_teacher(
    layers, obs_dim: int, found_units, output_type: str, normaliser=_NO_NORMALISER, convs=(), observation_shape=None,
    **head,
) -> TeacherModel:  # fmt: skip
    """A ``TeacherModel`` with the hidden layers of ``layers`` and the convolutions ``convs`` (their weights
    copied); ``head``: its output's arguments (``num_actions``, or the Gaussian's bounds and std). The caller
    copies the head's weights."""
    mean, std, clip = normaliser
    if convs:
        if observation_shape is None or int(np.prod(observation_shape)) != obs_dim:
            raise KdRlError(f"a convolutional teacher needs the observation_shape of its {obs_dim} inputs")
        if int(convs[0].kernel.shape[2]) != int(observation_shape[-1]):
            raise KdRlError(
                f"the network's first convolution takes {int(convs[0].kernel.shape[2])} channels but "
                f"observation_shape={tuple(observation_shape)} has {observation_shape[-1]}"
            )
        head.update(
            observation_shape=tuple(observation_shape),
            conv_layers=[(int(c.filters), int(c.kernel_size[0]), int(c.strides[0])) for c in convs],
        )
    teacher = TeacherModel(
        hidden_units=found_units,
        activation=_activation_name(layers[:-1]),
        observation_dim=obs_dim,
        observation_mean=mean,
        observation_std=std,
        observation_clip=clip,
        output_type=output_type,
        **head,
    )
    for source, target in zip(list(convs) + list(layers[:-1]), teacher.convolutions + teacher.hidden_layers):
        target.set_weights([source.kernel.numpy(), source.bias.numpy()])
    return teacher


def _copy_into_teacher(
    layers, obs_dim: int, num_actions: int, hidden_units, output_type: str, normaliser=_NO_NORMALISER, convs=(),
    observation_shape=None,
) -> TeacherModel:  # fmt: skip
    found_units = _check_layers(layers, obs_dim, num_actions, hidden_units, f"num_actions={num_actions}", convs)
    teacher = _new_teacher(
        layers, obs_dim, found_units, output_type, normaliser, convs, observation_shape, num_actions=num_actions
    )
    teacher.logits_layer.set_weights([layers[-1].kernel.numpy(), layers[-1].bias.numpy()])
    return teacher


def export_dqn_teacher(
    q_network: sequential.Sequential,
    obs_dim: int,
    num_actions: int,
    hidden_units: int | Sequence[int] | None = None,
    observation_shape: Sequence[int] | None = None,
) -> TeacherModel:
    """A TeacherModel whose logits are exactly the DQN's Q-values.

    The kernels and biases of the Q-network's Dense layers are copied into the
    teacher's ``hidden_layers`` and ``logits_layer``, and a convolutional
    network's ``Conv2D`` layers into its ``convolutions``.

    Args:
        q_network: The agent's online Q-network, as from
            `kd_rl.teachers.make_q_network` (and passed to `make_dqn_agent`).
        obs_dim: Observation size.
        num_actions: Number of actions.
        hidden_units: If given, must equal the network's hidden layer widths.
        observation_shape: The image shape ``(height, width, channels)`` of a
            convolutional network's observations (recorded in the teacher).

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> Q [batch, num_actions]``,
        with ``output_type="q_values"`` (so distillation defaults to T = 0.01).

    Raises:
        ValueError: If the network does not match the sizes or is not a plain MLP.
    """
    layers = dense_layers(q_network)  # first: it names what a network that is not kd_rl's lacks
    return _copy_into_teacher(
        layers, obs_dim, num_actions, hidden_units, "q_values", frame_normaliser(q_network),
        convs=conv_layers(q_network), observation_shape=observation_shape or _observation_shape(q_network),
    )  # fmt: skip


def export_ppo_teacher(
    agent: ppo_agent.PPOAgent,
    obs_dim: int,
    num_actions: int | None = None,
    hidden_units: int | Sequence[int] | None = None,
    action_spec=None,
) -> TeacherModel:
    """A TeacherModel with the PPO actor's outputs: categorical logits, or a Gaussian's ``[mean, log_std]``.

    The agent's observation normaliser becomes the teacher's fixed
    ``observation_mean``, ``observation_std = sqrt(var + eps)`` and
    ``observation_clip``, so ``teacher(raw_observations)`` sees what the actor saw.

    Args:
        agent: A TF-Agents ``PPOAgent`` (e.g. ``PPOClipAgent``) whose actor is
            from `kd_rl.teachers.make_actor_network`.
        obs_dim: Observation size.
        num_actions: Number of actions (discrete actions).
        hidden_units: If given, must equal the actor's hidden layer widths.
        action_spec: The continuous action's bounded spec (continuous actions;
            default the agent's own ``action_spec``).

    Returns:
        A built ``TeacherModel``. Discrete: ``float32 [batch, obs_dim] -> logits
        [batch, num_actions]``, ``output_type="logits"`` (so distillation
        defaults to T = 1). Continuous: ``-> [mean, log_std] [batch, 2d]``,
        ``output_type="gaussian"``, ``squash=False``, one ``log_std`` per
        dimension, not clipped; ``teacher.act`` is ``clip(mean, low, high)``.

    Raises:
        ValueError: If the actor does not match the sizes or is not a plain MLP.
    """
    layers = _ppo_actor_layers(agent)
    head = agent.actor_net.layers[-1]
    convs = conv_layers(agent.actor_net)
    if not isinstance(head, GaussianHead):
        if num_actions is None:
            raise KdRlError("num_actions is needed to export a PPO teacher with discrete actions")
        normaliser = frame_normaliser(agent.actor_net) if convs else ppo_normaliser(agent)
        return _copy_into_teacher(
            layers, obs_dim, num_actions, hidden_units, "logits", normaliser,
            convs=convs, observation_shape=_observation_shape(agent.actor_net),
        )  # fmt: skip
    if convs:
        raise KdRlError("kd_rl's convolutional PPO teachers have discrete actions")
    low, high = action_bounds(agent.action_spec if action_spec is None else action_spec)
    d = low.size
    found_units = _check_layers(layers, obs_dim, d, hidden_units, f"the action's {d} dimensions")
    teacher = _new_teacher(
        layers, obs_dim, found_units, "gaussian", ppo_normaliser(agent),
        action_low=low, action_high=high, squash=False, state_dependent_std=False, log_std_range=None,
    )  # fmt: skip
    teacher.mean_layer.set_weights([layers[-1].kernel.numpy(), layers[-1].bias.numpy()])
    teacher.log_std.assign(head.log_std.numpy())
    return teacher


def export_sac_teacher(
    actor_network: sequential.Sequential,
    obs_dim: int,
    action_spec,
    hidden_units: int | Sequence[int] | None = None,
) -> TeacherModel:
    """A TeacherModel with a SAC actor's tanh-squashed Gaussian: outputs ``[mean, log_std]``.

    The actor's last Dense layer (``2d`` outputs ``[mean, log_std]``) is split
    into the teacher's ``mean_layer`` and ``log_std_layer``; ``log_std`` is
    clipped to `SAC_LOG_STD_RANGE` as TF-Agents clips it.

    Args:
        actor_network: The SAC actor, as from `kd_rl.teachers.make_sac_actor_network`.
        obs_dim: Observation size.
        action_spec: The action's bounded spec, float ``[d]``.
        hidden_units: If given, must equal the actor's hidden layer widths.

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> [mean, log_std]
        [batch, 2d]``, ``output_type="gaussian"``, ``squash=True``;
        ``teacher.act`` is ``low + (tanh(mean) + 1) / 2 * (high - low)``, the
        mode of TF-Agents' ``SquashToSpecNormal``.

    Raises:
        ValueError: If the actor does not match the sizes or is not a plain MLP.
    """
    layers = dense_layers(actor_network)
    low, high = action_bounds(action_spec)
    d = low.size
    found_units = _check_layers(layers, obs_dim, 2 * d, hidden_units, f"2 x the action's {d} dimensions")
    teacher = _new_teacher(
        layers, obs_dim, found_units, "gaussian",
        action_low=low, action_high=high, squash=True, state_dependent_std=True, log_std_range=SAC_LOG_STD_RANGE,
    )  # fmt: skip
    kernel, bias = layers[-1].kernel.numpy(), layers[-1].bias.numpy()
    teacher.mean_layer.set_weights([kernel[:, :d], bias[:d]])
    teacher.log_std_layer.set_weights([kernel[:, d:], bias[d:]])
    return teacher


def numpy_policy(
    layers, normaliser=_NO_NORMALISER, action_spec=None, squash: bool = False, convs=(), observation_shape=None
) -> NumpyPolicy:
    """A NumPy copy of Dense ``layers`` (and a normaliser, and convolutions) to act with during training.

    A TF call costs ~0.3 ms whatever its size; the NumPy forward pass costs
    ~10 us for one CartPole observation, which makes per-step acting cheap.

    Args:
        layers: The Dense layers, as from `dense_layers`.
        normaliser: ``(mean, std, clip)`` of the observations.
        action_spec: A continuous action's bounded spec: the policy then gives
            deterministic actions. With ``squash`` (SAC) the last layer's
            outputs are ``[mean, log_std]`` and only the mean is kept.
        squash: Tanh-squash the mean into the bounds (SAC), else clip it (PPO).
        convs: The Conv2D layers before them (`conv_layers`), for image observations.
        observation_shape: The image shape the convolutions take.
    """
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in layers]
    if action_spec is None:
        convolutions = [(c.kernel.numpy(), c.bias.numpy(), int(c.strides[0])) for c in convs]
        return NumpyPolicy(
            weights, _activation_name(layers[:-1]), *normaliser, convolutions=convolutions,
            observation_shape=observation_shape,
        )  # fmt: skip
    low, high = action_bounds(action_spec)
    if squash:
        kernel, bias = weights[-1]
        weights[-1] = (kernel[:, : low.size], bias[: low.size])
    return NumpyPolicy(
        weights, _activation_name(layers[:-1]), *normaliser, action_low=low, action_high=high, squash=squash
    )
