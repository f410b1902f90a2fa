"""Training environments of a teacher run: ``n_envs`` of them, in this process or in processes.

Every algorithm steps a batch of environments (`make_training_env`): the
hyperparameters ``n_envs`` (how many) and ``parallel_envs`` (TF-Agents'
``ParallelPyEnvironment``, a process per environment, instead of stepping them
one after another here). PPO hands the batch to its TensorFlow collection loop;
the off-policy loops (DQN, SAC) act on it from Python through `OffPolicyEnvs`,
which stores each environment's transitions in the replay buffer.

TF-Agents' environments reset themselves: the ``step`` after a ``LAST`` time
step starts a new episode and ignores its action. `OffPolicyEnvs` counts and
stores only real transitions, and tells the loop which environments act
(`OffPolicyEnvs.acting`) so it draws actions, and random numbers, for those
alone: with ``n_envs: 1`` a run is the same, number for number, as one
environment reset by hand.
"""

from __future__ import annotations

import numpy as np
from tf_agents.trajectories import time_step as ts

from kd_rl.teachers.envs import make_batched_env

__all__ = ["OffPolicyEnvs", "make_training_env", "seed_training_env", "training_rounds"]


def make_training_env(gym_id: str, params, seed: int, env_kwargs: dict | None = None):
    """The batch of ``params["n_envs"]`` environments a run trains on (`make_batched_env`).

    Environment ``i`` is seeded ``seed + i``; ``params["parallel_envs"]`` puts
    each in a process of its own.
    """
    parallel = bool(params.get("parallel_envs", False))
    return make_batched_env(gym_id, int(params["n_envs"]), seed=seed, parallel=parallel, **(env_kwargs or {}))


def seed_training_env(env, seed: int) -> None:
    """Seed the next reset of each environment of a batch, environment ``i`` with ``seed + i``.

    A resumed run calls it: environments' states are not checkpointed, so the
    run starts new episodes, seeded from the step it reached.
    """
    if hasattr(env, "envs"):  # BatchedPyEnvironment: the environments are here
        for i, e in enumerate(env.envs):
            e.seed(seed + i)
    else:  # ParallelPyEnvironment: each in its process
        env.seed([seed + i for i in range(env.batch_size)])


class OffPolicyEnvs:
    """A batch of training environments as DQN's and SAC's loops step it.

    Args:
        env: A batched ``PyEnvironment`` (`make_training_env`).
    """

    def __init__(self, env):
        self.env = env
        self.n = int(env.batch_size)
        self.time_step = env.reset()
        self.returns = np.zeros(self.n)

    @property
    def observations(self) -> np.ndarray:
        """``float32 [n_envs, obs_dim]``: what each environment shows now."""
        return self.time_step.observation

    @property
    def acting(self) -> np.ndarray:
        """``bool [n_envs]``: the environments whose next step is a real one (False: it only resets)."""
        return self.time_step.step_type != ts.StepType.LAST

    def reset(self) -> None:
        """Start a new episode in every environment (after `seed_training_env`)."""
        self.time_step = self.env.reset()
        self.returns[:] = 0.0

    def step(self, actions: np.ndarray, buffer) -> tuple[int, list[float]]:
        """Step every environment; store the acting ones' transitions in ``buffer``.

        Args:
            actions: ``[n_envs, ...]``; those of environments that are not
                `acting` are ignored.
            buffer: A `kd_rl.teachers.replay.TransitionBuffer`.

        Returns:
            The environment steps taken (transitions stored), and the returns
            of the episodes that ended.
        """
        before, acting = self.time_step, self.acting
        after = self.env.step(actions)
        finished = []
        for i in np.flatnonzero(acting):
            reward = after.reward[i]
            buffer.add(before.observation[i], actions[i], reward, after.discount[i], after.observation[i])
            self.returns[i] += float(reward)
            if after.step_type[i] == ts.StepType.LAST:
                finished.append(float(self.returns[i]))
                self.returns[i] = 0.0
        self.time_step = after
        return int(acting.sum()), finished

    def close(self) -> None:
        self.env.close()


def training_rounds(before: int, after: int, train_freq: int, learning_starts: int) -> list[int]:
    """The environment steps in ``(before, after]`` past ``learning_starts`` at which a training round is due."""
    first = max(before, learning_starts) // train_freq + 1
    return [k * train_freq for k in range(first, after // train_freq + 1)]
