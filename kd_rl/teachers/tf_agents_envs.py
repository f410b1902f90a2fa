"""Gymnasium environments as TF-Agents ``PyEnvironment`` objects.

TF-Agents 0.19 only wraps the old ``gym`` API, so kd_rl carries its own bridge
for Gymnasium (1.x). The one subtle point is the end of an episode:

* ``terminated`` (the MDP reached a terminal state) gives a ``LAST`` time step
  with ``discount = 0``: there is no future to bootstrap from;
* ``truncated`` (a time limit) gives a ``LAST`` time step with
  ``discount = 1``: the state had a future, so value targets still bootstrap.

Environments are made and checked by `kd_rl.envs` (``Box`` observations of
any shape, flattened into ``float32 [obs_dim]`` as everywhere in kd_rl;
``Discrete`` or 1-D ``Box`` actions; finite observations), so the bridge
refuses exactly what the rest of kd_rl refuses, with the same messages. A
``Discrete`` space becomes a scalar ``int64`` action spec starting at 0; a
``Box`` space a ``float32 [d]`` spec with its bounds, and actions are clipped
to them (a Gaussian policy's samples may fall outside).

Example:
    >>> env = make_env("CartPole-v1", seed=0)
    >>> time_step = env.reset()
    >>> time_step.observation.shape, int(env.action_spec().maximum) + 1
    ((4,), 2)
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager

import gymnasium
import numpy as np
import tensorflow as tf
from tf_agents.environments import batched_py_environment, parallel_py_environment, py_environment, tf_py_environment
from tf_agents.specs import array_spec
from tf_agents.trajectories import time_step as ts

from kd_rl._validate import check_int
from kd_rl.envs import check_observation_finite, check_reward_finite, check_spaces, make_gymnasium_env
from kd_rl.errors import KdRlError

__all__ = ["GymnasiumEnvironment", "environment_errors", "make_batched_env", "make_env", "make_tf_env"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _observation_spec(space: gymnasium.spaces.Box) -> array_spec.BoundedArraySpec:
    # Gymnasium allows infinite bounds; TF-Agents specs work with finite
    # float32 numbers, so infinity becomes the largest float32.
    # A multi-dimensional Box is flattened, as kd_rl.envs flattens it for the students.
    low = np.clip(np.ravel(np.asarray(space.low, dtype=np.float64)), -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)
    high = np.clip(np.ravel(np.asarray(space.high, dtype=np.float64)), -_FLOAT32_MAX, _FLOAT32_MAX).astype(np.float32)
    return array_spec.BoundedArraySpec(shape=low.shape, dtype=np.float32, minimum=low, maximum=high, name="observation")


class GymnasiumEnvironment(py_environment.PyEnvironment):
    """A Gymnasium environment seen as a TF-Agents ``PyEnvironment``.

    Time steps carry ``observation: float32 [obs_dim]``, ``reward: float32 []``
    and ``discount: float32 []``. Actions are ``int64 []`` (``Discrete``) or
    ``float32 [d]`` (``Box``, clipped to the bounds). A ``step`` after a ``LAST`` time step resets
    the environment (TF-Agents' auto-reset) and ignores its action.

    Args:
        env: A Gymnasium environment id (made with ``gymnasium.make``) or an
            environment instance.
        seed: If given, the first reset uses ``seed=seed`` so the sequence of
            episodes is reproducible; later resets continue Gymnasium's RNG.
        **gym_kwargs: Passed to ``gymnasium.make`` (e.g. ``max_episode_steps``).

    Raises:
        ValueError: If the id is unknown or the spaces are not a ``Box``
            observation space and a ``Discrete`` or 1-D ``Box`` action space.
    """

    def __init__(self, env: str | gymnasium.Env, seed: int | None = None, **gym_kwargs):
        super().__init__(handle_auto_reset=True)
        if isinstance(env, str):
            self.env_id = env
            env = make_gymnasium_env(env, **gym_kwargs)
        else:
            if gym_kwargs:
                raise KdRlError(f"gym_kwargs are only used with an env id, got {sorted(gym_kwargs)}")
            spec = getattr(env, "spec", None)
            self.env_id = spec.id if spec is not None else type(env.unwrapped).__name__
        try:
            check_spaces(env.observation_space, env.action_space, self.env_id)
        except ValueError:
            env.close()
            raise
        self._env = env
        self._observation_spec = _observation_spec(env.observation_space)
        space = env.action_space
        self.is_continuous = isinstance(space, gymnasium.spaces.Box)
        if self.is_continuous:
            self._action_start = 0
            self._action_low = np.asarray(space.low, np.float32)
            self._action_high = np.asarray(space.high, np.float32)
            self._action_spec = array_spec.BoundedArraySpec(
                shape=space.shape, dtype=np.float32, minimum=self._action_low, maximum=self._action_high, name="action"
            )
        else:
            self._action_start = int(space.start)
            self._action_spec = array_spec.BoundedArraySpec(
                shape=(), dtype=np.int64, minimum=0, maximum=int(space.n) - 1, name="action"
            )
        self._seed = seed
        self._episode_step = 0

    @property
    def gym(self) -> gymnasium.Env:
        """The wrapped Gymnasium environment."""
        return self._env

    def observation_spec(self) -> array_spec.BoundedArraySpec:
        return self._observation_spec

    def action_spec(self) -> array_spec.BoundedArraySpec:
        return self._action_spec

    def seed(self, seed: int | None) -> None:
        """Seed the next reset; episodes after it follow from that seed."""
        self._seed = seed

    def _observation(self, observation) -> np.ndarray:
        observation = np.ravel(np.asarray(observation, dtype=np.float32))
        check_observation_finite(observation, self._episode_step, self.env_id)
        return observation

    def should_reset(self, current_time_step: ts.TimeStep) -> bool:
        # Same rule as the base class, without its generic (and, per step,
        # costly) checks: reset after a LAST step.
        return int(current_time_step.step_type) == int(ts.StepType.LAST)

    def _time_step(self, step_type, observation, reward: float, discount: float) -> ts.TimeStep:
        # Built directly: ts.transition() and friends cost ~4x a CartPole step.
        return ts.TimeStep(
            step_type=np.asarray(step_type, dtype=np.int32),
            reward=np.asarray(reward, dtype=np.float32),
            discount=np.asarray(discount, dtype=np.float32),
            observation=observation,
        )

    def _reset(self) -> ts.TimeStep:
        # Gymnasium reseeds only when given a seed: pass it once, then let the
        # environment's own RNG carry on so consecutive episodes differ.
        observation, _ = self._env.reset(seed=self._seed)
        self._seed = None
        self._episode_step = 0
        return self._time_step(ts.StepType.FIRST, self._observation(observation), 0.0, 1.0)

    def _step(self, action) -> ts.TimeStep:
        if self.is_continuous:
            action = np.clip(
                np.asarray(action, np.float32).reshape(self._action_low.shape), self._action_low, self._action_high
            )
        else:
            action = int(np.asarray(action).item()) + self._action_start
        observation, reward, terminated, truncated, _ = self._env.step(action)
        self._episode_step += 1
        observation = self._observation(observation)
        check_reward_finite(reward, self._episode_step, self.env_id)
        if terminated:
            return self._time_step(ts.StepType.LAST, observation, reward, 0.0)
        if truncated:
            # Cut short by a time limit, not ended: keep discount 1 so value
            # targets bootstrap from the last observation.
            return self._time_step(ts.StepType.LAST, observation, reward, 1.0)
        return self._time_step(ts.StepType.MID, observation, reward, 1.0)

    def render(self, mode: str = "rgb_array"):
        return self._env.render()

    def close(self) -> None:
        self._env.close()


#: How TensorFlow reports a ValueError raised in a ``PyEnvironment`` stepped inside a graph (``TFPyEnvironment``).
_WRAPPED_VALUE_ERROR = re.compile(r"^ValueError: (.+)$", re.MULTILINE)


@contextmanager
def environment_errors():
    """Re-raise the ``ValueError`` a ``PyEnvironment`` raised inside a TensorFlow graph as that ``ValueError``.

    ``TFPyEnvironment`` steps the environment through ``tf.numpy_function``, so
    an environment's refusal (a NaN reward or observation, say) arrives as an
    ``InvalidArgumentError`` ("Graph execution error") with the original in its
    text: this gives the user the environment's own one-line message.
    """
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        found = _WRAPPED_VALUE_ERROR.findall(str(err))
        if not found:
            raise
        raise KdRlError(found[-1].strip()) from None


def make_env(env_id: str, seed: int | None = None, **gym_kwargs) -> GymnasiumEnvironment:
    """One Gymnasium environment as a ``PyEnvironment`` (see `GymnasiumEnvironment`)."""
    return GymnasiumEnvironment(env_id, seed=seed, **gym_kwargs)


def make_tf_env(env_id: str, seed: int | None = None, **gym_kwargs) -> tf_py_environment.TFPyEnvironment:
    """One environment as a ``TFPyEnvironment`` (time steps with batch size 1)."""
    return tf_py_environment.TFPyEnvironment(make_env(env_id, seed=seed, **gym_kwargs))


def make_batched_env(
    env_id: str, num_envs: int, seed: int | None = None, parallel: bool = False, **gym_kwargs
) -> batched_py_environment.BatchedPyEnvironment | parallel_py_environment.ParallelPyEnvironment:
    """``num_envs`` environments stepped together, environment ``i`` seeded ``seed + i``.

    Time steps are batched: ``observation: float32 [num_envs, obs_dim]``,
    actions ``int64 [num_envs]`` (or ``float32 [num_envs, d]``). Each environment auto-resets on its own.
    Stepping is serial (no thread pool): on a small CPU the threads only add
    overhead for environments as cheap as CartPole. With ``parallel=True``
    each environment steps in a process of its own (TF-Agents'
    ``ParallelPyEnvironment``), worth it only for slow simulators with a free
    core per environment (see docs/scaling.md).

    Raises:
        ValueError: If ``num_envs`` is not an int >= 1, or as `make_env`.
    """
    num_envs = check_int("num_envs", num_envs)
    if parallel:
        return _parallel_env(env_id, num_envs, seed, gym_kwargs)
    envs = [make_env(env_id, seed=None if seed is None else seed + i, **gym_kwargs) for i in range(num_envs)]
    return batched_py_environment.BatchedPyEnvironment(envs, multithreading=False)


def _parallel_env(env_id: str, num_envs: int, seed: int | None, gym_kwargs: dict):
    from tf_agents.system import system_multiprocessing

    if not system_multiprocessing.multiprocessing_core.initialized():
        system_multiprocessing.enable_interactive_mode()  # TF-Agents asks for this outside its handle_main
    make_env(env_id, **gym_kwargs).close()  # a bad id or space fails here, not in a child process
    constructors = [
        functools.partial(make_env, env_id, seed=None if seed is None else seed + i, **gym_kwargs)
        for i in range(num_envs)
    ]
    return parallel_py_environment.ParallelPyEnvironment(constructors, start_serially=False)
