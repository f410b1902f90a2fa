"""Export TF-Agents teachers as Keras 3 `kd_rl.models.TeacherModel`s.

The exported teacher's logits are

* a DQN teacher's Q-values (`export_dqn_teacher`), or
* a PPO teacher's actor logits, with PPO's observation normaliser baked in
  (`export_ppo_teacher`),

so that ``argmax(teacher(observations))`` is the TF-Agents greedy action.
Weights are read from the ``tf_keras`` Dense layers of the networks that
`kd_rl.teachers.agents` builds (``network.layers``), and the normaliser from
the PPO policy's public ``observation_normalizer``.
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

from kd_rl.models import TeacherModel, _normalise_hidden_units
from kd_rl.policies import NumpyPolicy

__all__ = ["dense_layers", "export_dqn_teacher", "export_ppo_teacher", "numpy_policy", "ppo_normaliser"]

_NO_NORMALISER = (None, None, None)


def dense_layers(network: sequential.Sequential) -> list[tf_keras.layers.Dense]:
    """The Dense layers of a kd_rl Q-network or actor, input to output.

    The actor's final ``Lambda`` (logits to a ``Categorical``) is skipped.

    Raises:
        ValueError: If ``network`` is not a TF-Agents ``Sequential`` of Dense
            layers (a plain MLP), which a TeacherModel could not hold.
    """
    if not isinstance(network, sequential.Sequential):
        raise ValueError(
            f"expected a TF-Agents Sequential network (see kd_rl.teachers.agents), got {type(network).__name__}"
        )
    layers = list(network.layers)
    if layers and isinstance(layers[-1], tf_keras.layers.Lambda):
        layers = layers[:-1]
    for layer in layers:
        if not isinstance(layer, tf_keras.layers.Dense):
            raise ValueError(f"cannot export layer {layer.name} ({type(layer).__name__}) to a TeacherModel")
    if len(layers) < 2:
        raise ValueError("cannot export a network without hidden layers to a TeacherModel")
    if not layers[0].built:
        raise ValueError("the network has no weights yet; build it (e.g. by making its agent) before exporting")
    return layers


def _activation_name(layers) -> str:
    names = {tf_keras.activations.serialize(layer.activation) for layer in layers}
    if len(names) != 1:
        raise ValueError(f"hidden layers must share one activation to export, got {sorted(names)}")
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
        raise ValueError(f"cannot export a {type(normaliser).__name__}; expected a StreamingTensorNormalizer")
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
        raise ValueError(f"expected a TF-Agents PPOAgent, got {type(agent).__name__}")
    return dense_layers(agent.actor_net)


def _copy_into_teacher(
    layers, obs_dim: int, num_actions: int, hidden_units, output_type: str, normaliser=_NO_NORMALISER
) -> TeacherModel:
    hidden, output = layers[:-1], layers[-1]
    found_units = tuple(int(layer.units) for layer in hidden)
    if hidden_units is not None and _normalise_hidden_units(hidden_units) != found_units:
        raise ValueError(f"hidden_units={hidden_units!r} does not match the network's hidden layers {found_units}")
    if int(output.units) != num_actions:
        raise ValueError(f"num_actions={num_actions} does not match the network's {output.units} outputs")
    kernel_in = int(layers[0].kernel.shape[0])
    if kernel_in != obs_dim:
        raise ValueError(f"obs_dim={obs_dim} does not match the network's input size {kernel_in}")
    if tf_keras.activations.serialize(output.activation) != "linear":
        raise ValueError("the network's output layer must be linear to export its outputs as logits")
    mean, std, clip = normaliser
    teacher = TeacherModel(
        num_actions=num_actions,
        hidden_units=found_units,
        activation=_activation_name(hidden),
        observation_dim=obs_dim,
        observation_mean=mean,
        observation_std=std,
        observation_clip=clip,
        output_type=output_type,
    )
    for source, target in zip(layers, [*teacher.hidden_layers, teacher.logits_layer]):
        target.set_weights([source.kernel.numpy(), source.bias.numpy()])
    return teacher


def export_dqn_teacher(
    q_network: sequential.Sequential, obs_dim: int, num_actions: int, hidden_units: int | Sequence[int] | None = None
) -> TeacherModel:
    """A TeacherModel whose logits are exactly the DQN's Q-values.

    The kernels and biases of the Q-network's Dense layers are copied into the
    teacher's ``hidden_layers`` and ``logits_layer``.

    Args:
        q_network: The agent's online Q-network, as from
            `kd_rl.teachers.make_q_network` (and passed to `make_dqn_agent`).
        obs_dim: Observation size.
        num_actions: Number of actions.
        hidden_units: If given, must equal the network's hidden layer widths.

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> Q [batch, num_actions]``,
        with ``output_type="q_values"`` (so distillation defaults to T = 0.01).

    Raises:
        ValueError: If the network does not match the sizes or is not a plain MLP.
    """
    return _copy_into_teacher(dense_layers(q_network), obs_dim, num_actions, hidden_units, "q_values")


def export_ppo_teacher(
    agent: ppo_agent.PPOAgent, obs_dim: int, num_actions: int, hidden_units: int | Sequence[int] | None = None
) -> TeacherModel:
    """A TeacherModel whose logits are the PPO actor's categorical logits.

    The agent's observation normaliser becomes the teacher's fixed
    ``observation_mean``, ``observation_std = sqrt(var + eps)`` and
    ``observation_clip``, so ``teacher(raw_observations)`` sees what the actor saw.

    Args:
        agent: A TF-Agents ``PPOAgent`` (e.g. ``PPOClipAgent``) whose actor is
            from `kd_rl.teachers.make_actor_network`.
        obs_dim: Observation size.
        num_actions: Number of actions.
        hidden_units: If given, must equal the actor's hidden layer widths.

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> logits [batch, num_actions]``,
        with ``output_type="logits"`` (so distillation defaults to T = 1).

    Raises:
        ValueError: If the actor does not match the sizes or is not a plain MLP.
    """
    layers = _ppo_actor_layers(agent)
    return _copy_into_teacher(layers, obs_dim, num_actions, hidden_units, "logits", ppo_normaliser(agent))


def numpy_policy(layers, normaliser=_NO_NORMALISER) -> NumpyPolicy:
    """A NumPy copy of Dense ``layers`` (and a normaliser) to act with during training.

    A TF call costs ~0.3 ms whatever its size; the NumPy forward pass costs
    ~10 us for one CartPole observation, which makes per-step acting cheap.
    """
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in layers]
    return NumpyPolicy(weights, _activation_name(layers[:-1]), *normaliser)
