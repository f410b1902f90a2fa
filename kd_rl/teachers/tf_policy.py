"""Any kd_rl student or teacher as a TF-Agents policy.

`as_tf_policy` wraps a Keras model that maps observations to logits (a
student, a teacher, any ``PolicyModel``) in a greedy ``TFPolicy``, so it runs
in TF-Agents drivers and metrics and saves with ``PolicySaver`` like any agent
policy. The model may be a Keras 3 model (kd_rl's) or a ``tf_keras`` one.
A continuous (Gaussian) kd_rl policy acts with its deterministic action
(`kd_rl.models.PolicyModel.act`) under a float ``Box`` action spec.

Example:
    >>> from tf_agents.drivers import dynamic_episode_driver
    >>> env = make_tf_env("CartPole-v1", seed=0)
    >>> policy = as_tf_policy(load_policy("CartPole-v1-dqn"), env.time_step_spec(), env.action_spec())
    >>> dynamic_episode_driver.DynamicEpisodeDriver(env, policy, num_episodes=1).run()
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from kd_rl.errors import KdRlError

__all__ = ["KerasGreedyPolicy", "as_tf_policy"]


class KerasGreedyPolicy(tf_policy.TFPolicy):
    """A greedy TF-Agents policy: ``action = argmax(model(observation))``, or a Gaussian policy's deterministic action.

    Args:
        model: Keras model, ``float32 [batch, obs_dim] -> logits [batch, num_actions]``,
            or a continuous kd_rl ``PolicyModel`` (``[mean, log_std]``).
        time_step_spec: The environment's time-step spec (tensor specs).
        action_spec: A scalar integer ``BoundedTensorSpec`` with minimum 0, or
            for a continuous model a float ``BoundedTensorSpec [d]`` with the
            model's bounds.
        name: Name of the policy.

    Raises:
        ValueError: If the action spec is not a scalar integer spec starting at
            0 (or, for a continuous model, a float spec of its size and
            bounds), or the model's outputs do not match its number of actions.
    """

    def __init__(self, model, time_step_spec, action_spec, name: str | None = None):
        if int(getattr(model, "state_size", 0) or 0):
            raise KdRlError(
                f"{type(model).__name__} carries a recurrent state; as_tf_policy makes stateless TF-Agents policies "
                "(play it with kd_rl.policies.PolicyMemory, or its TFLite export's state input)"
            )
        action_spec = tensor_spec.from_spec(action_spec)
        time_step_spec = tensor_spec.from_spec(time_step_spec)
        self._continuous = bool(getattr(model, "is_continuous", False))
        if self._continuous:
            self._check_continuous_spec(model, action_spec)
        elif action_spec.shape.rank != 0 or not action_spec.dtype.is_integer:
            raise KdRlError(f"action_spec must be a scalar integer spec, got {action_spec}")
        elif int(action_spec.minimum) != 0:
            raise KdRlError(f"action_spec must start at 0, got minimum {action_spec.minimum}")
        obs_dim = int(time_step_spec.observation.shape[-1])
        out = model(tf.zeros([1, obs_dim], tf.float32))
        num_actions = 2 * model.action_dim if self._continuous else int(action_spec.maximum) + 1
        if int(out.shape[-1]) != num_actions:
            raise KdRlError(f"the model outputs {int(out.shape[-1])} logits but the action spec has {num_actions}")
        super().__init__(time_step_spec, action_spec, name=name)
        self._model = model
        # TFPolicy.variables() (which PolicySaver saves as ``model_variables``)
        # collects the tf.Variables found on the policy's attributes. A Keras 3
        # model's variables are not tf.Variables but wrap one (``.value`` on
        # the TensorFlow backend), so they are listed here to be found.
        self._tf_variables = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]

    @staticmethod
    def _check_continuous_spec(model, action_spec) -> None:
        import numpy as np

        if action_spec.shape.rank != 1 or not action_spec.dtype.is_floating:
            raise KdRlError(f"a continuous model needs a float action spec of shape [d], got {action_spec}")
        if int(action_spec.shape[0]) != model.action_dim:
            raise KdRlError(
                f"the model acts in {model.action_dim} dimensions but the action spec has {action_spec.shape[0]}"
            )
        low = np.broadcast_to(action_spec.minimum, action_spec.shape)
        high = np.broadcast_to(action_spec.maximum, action_spec.shape)
        if not (np.allclose(low, model.action_low) and np.allclose(high, model.action_high)):
            raise KdRlError(
                f"the model acts in [{model.action_low.tolist()}, {model.action_high.tolist()}] but the action spec "
                f"is [{low.tolist()}, {high.tolist()}]"
            )

    def _variables(self):
        return self._tf_variables

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("KerasGreedyPolicy is deterministic; use action()")

    def _action(self, time_step, policy_state, seed):
        observations = tf.cast(time_step.observation, tf.float32)
        outputs = self._model(observations, training=False)
        if self._continuous:
            actions = tf.cast(self._model.actions_from_outputs(outputs), self.action_spec.dtype)
        else:
            actions = tf.cast(tf.argmax(outputs, axis=-1), self.action_spec.dtype)
        return policy_step.PolicyStep(actions, policy_state, ())


def as_tf_policy(model, time_step_spec, action_spec, name: str | None = None) -> KerasGreedyPolicy:
    """Wrap ``model`` as a greedy TF-Agents policy (see `KerasGreedyPolicy`)."""
    return KerasGreedyPolicy(model, time_step_spec, action_spec, name=name)
