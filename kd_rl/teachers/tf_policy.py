"""Any kd_rl student or teacher as a TF-Agents policy.

`as_tf_policy` wraps a Keras model that maps observations to logits (a
student, a teacher, any ``PolicyModel``) in a greedy ``TFPolicy``, so it runs
in TF-Agents drivers and metrics and saves with ``PolicySaver`` like any agent
policy. The model may be a Keras 3 model (kd_rl's) or a ``tf_keras`` one.

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

__all__ = ["KerasGreedyPolicy", "as_tf_policy"]


class KerasGreedyPolicy(tf_policy.TFPolicy):
    """A greedy TF-Agents policy: ``action = argmax(model(observation))``.

    Args:
        model: Keras model, ``float32 [batch, obs_dim] -> logits [batch, num_actions]``.
        time_step_spec: The environment's time-step spec (tensor specs).
        action_spec: A scalar integer ``BoundedTensorSpec`` with minimum 0.
        name: Name of the policy.

    Raises:
        ValueError: If the action spec is not a scalar integer spec starting at
            0, or the model's outputs do not match its number of actions.
    """

    def __init__(self, model, time_step_spec, action_spec, name: str | None = None):
        action_spec = tensor_spec.from_spec(action_spec)
        time_step_spec = tensor_spec.from_spec(time_step_spec)
        if action_spec.shape.rank != 0 or not action_spec.dtype.is_integer:
            raise ValueError(f"action_spec must be a scalar integer spec, got {action_spec}")
        if int(action_spec.minimum) != 0:
            raise ValueError(f"action_spec must start at 0, got minimum {action_spec.minimum}")
        num_actions = int(action_spec.maximum) + 1
        obs_dim = int(time_step_spec.observation.shape[-1])
        out = model(tf.zeros([1, obs_dim], tf.float32))
        if int(out.shape[-1]) != num_actions:
            raise ValueError(f"the model outputs {int(out.shape[-1])} logits but the action spec has {num_actions}")
        super().__init__(time_step_spec, action_spec, name=name)
        self._model = model
        # TFPolicy.variables() (which PolicySaver saves as ``model_variables``)
        # collects the tf.Variables found on the policy's attributes. A Keras 3
        # model's variables are not tf.Variables but wrap one (``.value`` on
        # the TensorFlow backend), so they are listed here to be found.
        self._tf_variables = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]

    def _variables(self):
        return self._tf_variables

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("KerasGreedyPolicy is deterministic; use action()")

    def _action(self, time_step, policy_state, seed):
        observations = tf.cast(time_step.observation, tf.float32)
        logits = self._model(observations, training=False)
        actions = tf.cast(tf.argmax(logits, axis=-1), self.action_spec.dtype)
        return policy_step.PolicyStep(actions, policy_state, ())


def as_tf_policy(model, time_step_spec, action_spec, name: str | None = None) -> KerasGreedyPolicy:
    """Wrap ``model`` as a greedy TF-Agents policy (see `KerasGreedyPolicy`)."""
    return KerasGreedyPolicy(model, time_step_spec, action_spec, name=name)
