"""DQN's and SAC's replay buffer: a uniform ring of transitions in NumPy, checkpointable.

It is not `kd_rl.data.ReplayBuffer` (observations and teacher logits, for
distillation): DQN and SAC store whole transitions and hand them to
TF-Agents' ``DqnAgent.train`` / ``SacAgent.train`` in their ``Transition`` form.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import policy_step, trajectory
from tf_agents.trajectories import time_step as ts

__all__ = ["TransitionBuffer"]


class TransitionBuffer(tf.Module):
    """Uniform replay of ``(observation, action, reward, discount, next_observation)``.

    TF-Agents' ``TFUniformReplayBuffer`` costs ~1 ms per ``add_batch`` in eager
    mode, more than a CartPole step and a Q-network forward together. Here
    adding is a NumPy row write; the arrays are copied into ``tf.Variable``s
    (which a ``tf.train.Checkpoint`` saves) only in `sync_to_variables`.

    Args:
        capacity: Most transitions kept; the oldest are overwritten.
        obs_dim: Observation size.
        action_dim: None for a discrete action (``int64 []``), else the size
            of a continuous one (``float32 [action_dim]``).
        obs_dtype: How observations are stored: ``uint8`` for images (a
            quarter of float32's memory: the observations and next
            observations of 100k 4-channel MinAtar transitions take 80 MB, not
            320 MB, and as much again in the checkpointed variables); they are
            sampled as float32.
    """

    def __init__(self, capacity: int, obs_dim: int, action_dim: int | None = None, obs_dtype=np.float32):
        super().__init__(name="replay_buffer")
        self.capacity = int(capacity)
        self._arrays = {
            "observation": np.zeros((capacity, obs_dim), obs_dtype),
            "action": (
                np.zeros(capacity, np.int64) if action_dim is None else np.zeros((capacity, action_dim), np.float32)
            ),
            "reward": np.zeros(capacity, np.float32),
            "discount": np.zeros(capacity, np.float32),
            "next_observation": np.zeros((capacity, obs_dim), obs_dtype),
        }
        self.size = 0
        self.position = 0
        self.storage = {k: tf.Variable(v, trainable=False, name=k) for k, v in self._arrays.items()}
        self.counters = tf.Variable([0, 0], dtype=tf.int64, trainable=False, name="size_position")

    def add(self, observation, action, reward, discount, next_observation) -> None:
        """Store one transition (``observation: float32 [obs_dim]``, an action, scalars, ``next_observation``)."""
        i = self.position
        a = self._arrays
        a["observation"][i] = observation
        a["action"][i] = action
        a["reward"][i] = reward
        a["discount"][i] = discount
        a["next_observation"][i] = next_observation
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> trajectory.Transition:
        """``batch_size`` transitions drawn uniformly with replacement, as a TF-Agents ``Transition``."""
        i = rng.integers(0, self.size, size=batch_size)
        a = self._arrays
        mid = np.full(batch_size, ts.StepType.MID, np.int32)
        zeros = np.zeros(batch_size, np.float32)
        return trajectory.Transition(
            # Stored transitions never start at a LAST step, so MID is right for
            # the DQN loss (it masks out transitions that start at LAST).
            time_step=ts.TimeStep(mid, zeros, zeros, a["observation"][i].astype(np.float32, copy=False)),
            action_step=policy_step.PolicyStep(a["action"][i], (), ()),
            next_time_step=ts.TimeStep(
                np.where(a["discount"][i] == 0.0, np.int32(ts.StepType.LAST), mid),
                a["reward"][i],
                a["discount"][i],
                a["next_observation"][i].astype(np.float32, copy=False),
            ),
        )

    def sync_to_variables(self) -> None:
        """Copy the arrays into the checkpointed variables (before saving a checkpoint)."""
        for key, variable in self.storage.items():
            variable.assign(self._arrays[key])
        self.counters.assign([self.size, self.position])

    def sync_from_variables(self) -> None:
        """Copy the checkpointed variables back into the arrays (after restoring)."""
        for key, variable in self.storage.items():
            self._arrays[key][...] = variable.numpy()
        self.size, self.position = (int(x) for x in self.counters.numpy())
