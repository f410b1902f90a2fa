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

After each batch of steps, `OffPolicyProgress` logs, evaluates and saves a
checkpoint when one falls due, the same way for both loops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
from tf_agents.trajectories import time_step as ts

from kd_rl.errors import KdRlError
from kd_rl.teachers.tf_agents_envs import make_batched_env

__all__ = ["OffPolicyEnvs", "OffPolicyProgress", "make_training_env", "seed_training_env", "training_rounds"]


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

    With ``n_step > 1`` each stored transition spans up to ``n_step`` steps of
    one environment (multi-step returns, as in Rainbow; Hessel et al., 2018).
    The transition from step ``t`` over ``k`` steps stores

    - ``reward``: ``R = sum_{j<k} gamma^j r_{t+j}``,
    - ``discount``: ``gamma^(k-1) * d_{t+k-1}`` (``d`` is 0 at a termination),
    - ``next_observation``: ``s_{t+k}``,

    so the one-step target ``reward + gamma * discount * max_a Q(s', a)`` of
    TF-Agents' ``DqnAgent`` becomes the n-step target
    ``R + gamma^k d Q(s_{t+k})``. ``k = n_step`` except where the episode ends
    first: then every pending step is stored with what remains, bootstrapped
    from the last observation after a truncation (``d = 1``) and not after a
    termination (``d = 0``). A step is stored once the ``n_step`` steps from it
    have been taken, so up to ``n_step - 1`` steps per environment wait;
    `reset` (a resumed run's new episodes) drops them.

    Args:
        env: A batched ``PyEnvironment`` (`make_training_env`).
        n_step: Steps per stored transition (1: the plain transitions).
        gamma: The discount factor of the returns; needed if ``n_step > 1``.
        clip_reward: Store each reward's sign (-1, 0 or 1), as DQN on Atari
            does (Mnih et al. 2015); episode returns stay the game's own.

    Raises:
        ValueError: If ``n_step > 1`` and ``gamma`` is not given.
    """

    def __init__(self, env, n_step: int = 1, gamma: float | None = None, clip_reward: bool = False):
        if n_step > 1 and gamma is None:
            raise KdRlError(f"n_step={n_step} needs the discount factor gamma of the returns")
        self.env = env
        self.n = int(env.batch_size)
        self.n_step, self.gamma = int(n_step), 1.0 if gamma is None else float(gamma)
        self.clip_reward = bool(clip_reward)
        self.time_step = env.reset()
        self.returns = np.zeros(self.n)
        self._pending = [deque() for _ in range(self.n)]  # per environment: (obs, action, reward, discount)

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
        for pending in self._pending:
            pending.clear()

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
            raw, last = after.reward[i], after.step_type[i] == ts.StepType.LAST
            reward = np.sign(raw).astype(raw.dtype) if self.clip_reward else raw
            if self.n_step == 1:
                buffer.add(before.observation[i], actions[i], reward, after.discount[i], after.observation[i])
            else:
                self._store_n_step(i, buffer, before.observation[i], actions[i], reward, after, last)
            self.returns[i] += float(raw)
            if last:
                finished.append(float(self.returns[i]))
                self.returns[i] = 0.0
        self.time_step = after
        return int(acting.sum()), finished

    def _store_n_step(self, i: int, buffer, observation, action, reward, after, last: bool) -> None:
        """Queue environment ``i``'s step; store the steps whose ``n_step`` successors (or episode end) are known."""
        pending = self._pending[i]
        pending.append((np.array(observation), np.array(action), float(reward), float(after.discount[i])))
        if not last and len(pending) < self.n_step:
            return
        # At an episode's end every pending step is stored; otherwise the oldest one.
        for _ in range(len(pending) if last else 1):
            total, scale = 0.0, 1.0  # scale: gamma^j times the discounts so far
            for _, _, r, d in pending:
                total += scale * r
                scale *= self.gamma * d
            k = len(pending)
            discount = self.gamma ** (k - 1) * np.prod([d for *_, d in pending])
            first_obs, first_action, _, _ = pending.popleft()
            buffer.add(first_obs, first_action, total, discount, after.observation[i])

    def close(self) -> None:
        self.env.close()


def training_rounds(before: int, after: int, train_freq: int, learning_starts: int) -> list[int]:
    """The environment steps in ``(before, after]`` past ``learning_starts`` at which a training round is due."""
    first = max(before, learning_starts) // train_freq + 1
    return [k * train_freq for k in range(first, after // train_freq + 1)]


class OffPolicyProgress:
    """What DQN's and SAC's loops do after each batch of environment steps: log, evaluate, checkpoint.

    It gathers the returns of finished episodes and the training rounds'
    losses, logs them every 1,000 environment steps (and at the last step),
    evaluates every ``run.eval_every`` steps and saves a checkpoint, with the
    replay buffer, every ``run.checkpoint_every`` steps (and at the last step).

    Args:
        run: The `kd_rl.teachers.run.Run`.
        buffer: The run's `kd_rl.teachers.replay.TransitionBuffer`.
        env_steps: The environment steps already taken (a resumed run's).
        summarise: ``losses -> dict`` of the scalars to log from the rounds'
            losses since the last log (an empty list when none ran).
    """

    def __init__(self, run, buffer, env_steps: int, summarise: Callable[[list], dict]):
        self.run, self.buffer, self.summarise = run, buffer, summarise
        self.finished: list[float] = []
        self.losses: list = []
        self.last_log = env_steps

    def after(self, before: int, env_steps: int, policy: Callable[[], Callable], **scalars) -> None:
        """Log, evaluate and checkpoint what falls due in ``(before, env_steps]``.

        Args:
            before, env_steps: The environment steps before and after the batch.
            policy: Returns the policy to evaluate (called only when an
                evaluation is due).
            **scalars: More scalars to log (DQN's epsilon).
        """
        run = self.run
        last = env_steps >= run.steps
        if env_steps - self.last_log >= 1000 or last:
            run.bar.update(env_steps - self.last_log)
            run.log_training(env_steps, self.finished, **scalars, **self.summarise(self.losses))
            self.finished, self.losses, self.last_log = [], [], env_steps
        if run.due(run.eval_every, before, env_steps) or last:
            run.evaluate(env_steps, policy())
        if run.due(run.checkpoint_every, before, env_steps) or (run.checkpoint_every and last):
            self.buffer.sync_to_variables()
            run.save_checkpoint(env_steps)
