"""Gymnasium environments for kd_rl: checked creation and one stepping loop.

kd_rl distils policies over flat observation vectors: it accepts a ``Box``
observation space of any shape (a 2-D list of vehicles, say), flattened into a
vector ``[obs_dim]`` where it enters, and a ``Discrete`` action space or a 1-D
``Box`` one with finite bounds (continuous control); it says which space it
refused otherwise. `env_spec` describes an environment in those terms.

Environment ids may be Gymnasium's ``module:Env-vN`` form, so that a
third-party package registers its environments on first use, and
``env_kwargs`` (``--env-kwargs`` on the command line) are passed to
``gymnasium.make``.

`EnvGroup` steps several environments together so that one batched forward
pass chooses every action of a time step. It is the one stepping loop of
kd_rl: collection (`kd_rl.data.Collector`) and evaluation
(`kd_rl.evaluate.run_episodes`) both use it. The TF-Agents view of the same
environments (``PyEnvironment``, for teacher training) lives in
`kd_rl.teachers.tf_agents_envs`.

Example:
    >>> with EnvGroup("CartPole-v1", 2) as envs:
    ...     obs = envs.reset(seeds=[0, 1])
    ...     obs.shape, envs.num_actions
    ((2, 4), 2)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import gymnasium
import numpy as np

from kd_rl._io import error_summary
from kd_rl._validate import check_int
from kd_rl.errors import KdRlError
from kd_rl.games import atari_env, ensure_registered, is_atari

__all__ = [
    "EnvGroup",
    "EnvSpec",
    "env_spec",
    "check_observation_finite",
    "check_render_mode",
    "check_reward_finite",
    "check_spaces",
    "env_dims",
    "has_display",
    "parse_env_kwargs",
    "make_gymnasium_env",
]


def make_gymnasium_env(env_id: str, **gym_kwargs) -> gymnasium.Env:
    """``gymnasium.make(env_id, **gym_kwargs)`` with a clear error for unknown ids and bad arguments.

    ``env_id`` may be ``"module:Env-vN"``: Gymnasium imports ``module`` first,
    which registers a third-party package's environments.

    Raises:
        ValueError: If ``env_id`` is not a registered Gymnasium id, its module
            cannot be imported, or the environment rejects ``gym_kwargs``.
    """
    if not isinstance(env_id, str) or not env_id:
        raise KdRlError(f"env_id must be a non-empty Gymnasium environment id, got {env_id!r}")
    check_render_mode(gym_kwargs.get("render_mode"), env_id)
    ensure_registered(env_id)  # MinAtar and Atari ids: registered by kd_rl on first use
    preprocessing = gym_kwargs.pop("preprocessing", None) if is_atari(env_id) else None
    try:
        if is_atari(env_id) and preprocessing != "none":
            return atari_env(env_id, preprocessing, **gym_kwargs)  # kd_rl's standard Atari preprocessing
        return gymnasium.make(env_id, **gym_kwargs)
    except ModuleNotFoundError as err:
        module = env_id.split(":", 1)[0] if ":" in env_id else err.name
        raise KdRlError(
            f"environment {env_id!r}: module {module!r} cannot be imported ({err.msg.split('.')[0]})"
        ) from None
    except TypeError as err:
        if not gym_kwargs:
            raise
        raise KdRlError(
            f"environment {env_id!r} rejects the arguments {gym_kwargs}: {err}".split(" was raised")[0]
        ) from None
    except (
        gymnasium.error.NameNotFound,
        gymnasium.error.NamespaceNotFound,
        gymnasium.error.VersionNotFound,
        gymnasium.error.DeprecatedEnv,
        gymnasium.error.UnregisteredEnv,
    ) as err:
        raise KdRlError(
            f"unknown environment id {env_id!r}; use an id registered with Gymnasium "
            f"(e.g. 'CartPole-v1', 'LunarLander-v3'): {err}"
        ) from None
    except gymnasium.error.DependencyNotInstalled as err:
        extra = ' (pip install "kd_rl[box2d]")' if "box2d" in str(err).lower() else ""
        extra = ' (pip install "kd_rl[atari]")' if is_atari(env_id) else extra
        extra = ' (pip install "kd_rl[mujoco]")' if "mujoco" in str(err).lower() else extra
        raise KdRlError(f"environment {env_id!r} needs a package that is not installed{extra}: {err}") from None
    except Exception as err:  # the environment's own constructor refused (a bad argument value, say)
        given = f" with the arguments {gym_kwargs}" if gym_kwargs else ""
        raise KdRlError(f"environment {env_id!r} could not be made{given}: {error_summary(err)}") from None


def has_display() -> bool:
    """Whether windows can open here: always on macOS and Windows; on Linux, when DISPLAY or WAYLAND_DISPLAY is set."""
    if sys.platform != "linux":
        return True  # macOS and Windows always have a window server
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def check_render_mode(render_mode, env_id: str) -> None:
    """Refuse a render mode that opens a window (``"human"``) where there is no display.

    Without one, Gymnasium's renderers (pygame, MuJoCo's viewer) crash the
    process (a segmentation fault) instead of raising; off-screen modes
    (``"rgb_array"``, ``"ansi"``, ...) work everywhere.

    Raises:
        ValueError: Naming the render mode and the environment.
    """
    if render_mode is not None and "human" in str(render_mode) and not has_display():
        raise KdRlError(
            f"render_mode {render_mode!r} for {env_id!r} needs a display, and this machine has none (DISPLAY and "
            "WAYLAND_DISPLAY are unset): use 'rgb_array', or run where a display is available"
        )


def check_reward_finite(reward, step: int, env_id: str) -> None:
    """Raise ``ValueError`` naming ``step`` and ``env_id`` if ``reward`` is NaN or infinite.

    A non-finite reward makes every return, score and value target NaN: it
    is stopped where it enters, as observations are (`check_observation_finite`).
    """
    if not np.isfinite(reward):
        raise KdRlError(
            f"reward at step {step} of an episode of {env_id!r} is not finite ({float(reward)!r}): "
            "kd_rl needs finite rewards"
        )


def check_spaces(observation_space, action_space, env_id: str) -> None:
    """Raise ``ValueError`` unless the observations are a ``Box`` and the actions ``Discrete`` or a 1-D ``Box``.

    Args:
        observation_space: The environment's Gymnasium observation space.
        action_space: The environment's Gymnasium action space.
        env_id: Name used in the error message.

    Raises:
        ValueError: Naming the environment and the space it cannot use.
    """
    if isinstance(action_space, gymnasium.spaces.Box):
        if len(action_space.shape) != 1:
            raise KdRlError(
                f"env {env_id!r} has action space {action_space}; kd_rl needs a Discrete or a 1-D Box action space"
            )
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise KdRlError(f"env {env_id!r} has action space {action_space}; kd_rl needs finite Box action bounds")
    elif not isinstance(action_space, gymnasium.spaces.Discrete):
        raise KdRlError(
            f"env {env_id!r} has action space {action_space}; kd_rl needs a Discrete or a 1-D Box action space"
        )
    if not isinstance(observation_space, gymnasium.spaces.Box) or len(observation_space.shape) == 0:
        raise KdRlError(
            f"env {env_id!r} has observation space {observation_space}; "
            "kd_rl needs a Box observation space (an array of features, flattened into a vector)"
        )


@dataclass(frozen=True)
class EnvSpec:
    """What kd_rl needs to know of an environment: its observation size and action space.

    Attributes:
        env_id: The Gymnasium id.
        obs_dim: Observation size (all of a multi-dimensional ``Box``'s entries: it is flattened).
        obs_shape: The observation's own shape (``(10, 10, 4)`` for a MinAtar frame).
        obs_dtype: How kd_rl stores observations: ``uint8`` for images (a ``bool``
            or ``uint8`` ``Box``: one byte per entry), else ``float32``.
        preprocessing: An Atari environment's preprocessing settings
            (`kd_rl.games.atari_env`), None for other environments.
        obs_scale: An image's largest value (255 for Atari's bytes, 1 for
            MinAtar's booleans): teachers divide frames by it.
        num_actions: Number of discrete actions; None for a continuous action space.
        action_low: The ``Box`` action's lower bounds (float32 ``[d]``);
            None for discrete actions.
        action_high: Its upper bounds, likewise.
    """

    env_id: str
    obs_dim: int
    num_actions: int | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None
    obs_shape: tuple[int, ...] | None = None
    obs_dtype: str = "float32"
    preprocessing: dict | None = None
    obs_scale: float = 1.0

    @property
    def is_image(self) -> bool:
        """Whether observations are images: a ``(height, width, channels)`` ``Box`` of bool or uint8."""
        return self.obs_dtype == "uint8" and self.obs_shape is not None and len(self.obs_shape) == 3

    @property
    def is_continuous(self) -> bool:
        return self.action_low is not None

    @property
    def action_dim(self) -> int | None:
        """Size of a continuous action (None for discrete actions)."""
        return None if self.action_low is None else int(self.action_low.size)

    @property
    def output_size(self) -> int:
        """What a policy for it outputs per observation: ``num_actions`` logits or ``2d`` Gaussian parameters."""
        return self.num_actions if self.action_low is None else 2 * self.action_dim

    @property
    def action_range(self) -> np.ndarray | None:
        """``action_high - action_low`` (continuous actions)."""
        return None if self.action_low is None else self.action_high - self.action_low

    def describe(self) -> str:
        """The action space in words, for messages."""
        if self.action_low is None:
            return f"{self.num_actions} discrete actions"
        bounds = f"[{self.action_low.tolist()}, {self.action_high.tolist()}]"
        return f"a continuous {self.action_dim}-dimensional action in {bounds}"

    @classmethod
    def from_spaces(cls, env_id: str, observation_space, action_space) -> EnvSpec:
        check_spaces(observation_space, action_space, env_id)
        obs_dim = int(np.prod(observation_space.shape))
        shape = tuple(int(d) for d in observation_space.shape)
        dtype = "uint8" if np.dtype(observation_space.dtype) in (np.dtype(bool), np.dtype(np.uint8)) else "float32"
        scale = float(np.max(observation_space.high)) if dtype == "uint8" else 1.0
        if isinstance(action_space, gymnasium.spaces.Discrete):
            return cls(
                env_id, obs_dim, num_actions=int(action_space.n), obs_shape=shape, obs_dtype=dtype, obs_scale=scale
            )
        return cls(
            env_id,
            obs_dim,
            action_low=np.asarray(action_space.low, np.float32),
            action_high=np.asarray(action_space.high, np.float32),
            obs_shape=shape,
            obs_dtype=dtype,
            obs_scale=scale,
        )


def check_observation_finite(observation, step: int, env_id: str | None = None) -> None:
    """Raise ``ValueError`` naming ``step`` if ``observation`` holds NaN or inf.

    A non-finite observation would silently poison every network that sees it,
    so it is stopped where it enters.

    Args:
        observation: float array ``[obs_dim]`` (or any shape).
        step: The step of the episode that produced it (0 for the reset).
        env_id: The environment, named in the message.

    Raises:
        ValueError: If any entry is NaN or infinite.
    """
    observation = np.asarray(observation)
    if not np.all(np.isfinite(observation)):
        bad = np.flatnonzero(~np.isfinite(observation)).tolist()
        where = "the episode" if env_id is None else f"an episode of {env_id!r}"
        raise KdRlError(
            f"observation at step {step} of {where} is not finite (NaN or inf at indices {bad}): "
            f"{observation.tolist()}"
        )


class EnvGroup:
    """``num_envs`` Gymnasium environments of one id, stepped together.

    Observations come back stacked and flat, ``float32 [n, obs_dim]`` (``uint8``
    for images, `EnvSpec.obs_dtype`), and every one is
    checked to be finite where it enters (a NaN would silently poison every
    network that sees it). Discrete actions are indices ``0 .. num_actions -
    1``; the group adds the action space's ``start`` for environments whose
    ``Discrete`` space does not start at 0. Continuous actions are float
    ``[d]`` vectors, clipped to the ``Box`` bounds (as TF-Agents and
    Stable-Baselines3 do for Gaussian samples). Nothing resets automatically: the
    caller decides what an episode's end means (a new episode for collection,
    a finished one for evaluation).

    Args:
        env_id: Gymnasium id (1-D ``Box`` observations, ``Discrete`` or 1-D ``Box`` actions).
        num_envs: Number of environments (>= 1).
        env_kwargs: Passed to ``gymnasium.make``.

    Raises:
        ValueError: For an unknown id, unusable spaces or ``num_envs`` < 1.
    """

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict | None = None):
        self.env_id = env_id
        self.num_envs = check_int("num_envs", num_envs)
        self.envs = [make_gymnasium_env(env_id, **(env_kwargs or {}))]
        try:
            self.spec = EnvSpec.from_spaces(env_id, self.envs[0].observation_space, self.envs[0].action_space)
            self.envs += [make_gymnasium_env(env_id, **(env_kwargs or {})) for _ in range(self.num_envs - 1)]
        except BaseException:
            self.close()
            raise
        self.obs_dim = self.spec.obs_dim
        self.obs_dtype = np.dtype(self.spec.obs_dtype)
        self.num_actions = self.spec.num_actions
        self.is_continuous = self.spec.is_continuous
        self._action_start = 0 if self.is_continuous else int(self.envs[0].action_space.start)  # Discrete(n, start=k)
        self.episode_steps = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self, seeds: Sequence[int | None] | None = None, indices: Sequence[int] | None = None) -> np.ndarray:
        """Reset the environments ``indices`` (default all), each with its seed.

        Returns:
            Their first observations, ``[len(indices), obs_dim]`` of `obs_dtype`.
        """
        indices = range(self.num_envs) if indices is None else indices
        seeds = [None] * len(indices) if seeds is None else list(seeds)
        if len(seeds) != len(indices):
            raise KdRlError(f"got {len(seeds)} seeds for {len(indices)} environments")
        out = np.empty((len(indices), self.obs_dim), self.obs_dtype)
        for j, (i, seed) in enumerate(zip(indices, seeds)):
            obs, _ = self.envs[i].reset(seed=None if seed is None else int(seed))
            self.episode_steps[i] = 0
            check_observation_finite(obs, 0, self.env_id)
            out[j] = self._flat(obs, 0)
        return out

    def step(
        self, actions, indices: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step the environments ``indices`` (default all), one action each.

        Args:
            actions: int ``[len(indices)]``, each in ``0 .. num_actions - 1``,
                or float ``[len(indices), d]`` for continuous actions (clipped to the bounds).
            indices: Which environments to step.

        Returns:
            ``(observations [k, obs_dim] of obs_dtype, rewards float64 [k],
            terminated bool [k], truncated bool [k])``.
        """
        indices = range(self.num_envs) if indices is None else indices
        k = len(indices)
        obs = np.empty((k, self.obs_dim), self.obs_dtype)
        rewards = np.empty(k)
        terminated = np.empty(k, dtype=bool)
        truncated = np.empty(k, dtype=bool)
        if self.is_continuous:
            actions = np.asarray(actions, np.float32).reshape(k, self.spec.action_dim)
            actions = np.clip(actions, self.spec.action_low, self.spec.action_high)
        for j, i in enumerate(indices):
            action = actions[j] if self.is_continuous else int(actions[j]) + self._action_start
            o, rewards[j], terminated[j], truncated[j], _ = self.envs[i].step(action)
            self.episode_steps[i] += 1
            check_observation_finite(o, int(self.episode_steps[i]), self.env_id)
            check_reward_finite(rewards[j], int(self.episode_steps[i]), self.env_id)
            obs[j] = self._flat(o, int(self.episode_steps[i]))
        return obs, rewards, terminated, truncated

    def _flat(self, observation, step: int) -> np.ndarray:
        flat = np.ravel(observation)
        if flat.size != self.obs_dim:
            raise KdRlError(
                f"observation at step {step} of an episode of {self.env_id!r} has shape {np.shape(observation)}, "
                f"but its observation space {self.envs[0].observation_space} has {self.obs_dim} entries"
            )
        return flat

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def __enter__(self) -> EnvGroup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_env_kwargs(text: str | None) -> dict | None:
    """``--env-kwargs`` text as a dict: a JSON object (``'{"continuous": true}'``), or None for None.

    Raises:
        ValueError: If the text is not JSON or not a JSON object.
    """
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise KdRlError(f"--env-kwargs must be a JSON object such as '{{\"continuous\": true}}': {err}") from None
    if not isinstance(value, dict):
        raise KdRlError(f"--env-kwargs must be a JSON object such as '{{\"continuous\": true}}', got {text!r}")
    return value


def env_spec(env_id: str, **gym_kwargs) -> EnvSpec:
    """An environment's `EnvSpec` (observation size and action space), its spaces checked.

    Raises:
        ValueError: For an unknown id or spaces kd_rl cannot use.
    """
    env = make_gymnasium_env(env_id, **gym_kwargs)
    try:
        spec = EnvSpec.from_spaces(env_id, env.observation_space, env.action_space)
        preprocessing = getattr(env, "kd_rl_preprocessing", None)  # set by kd_rl.games.atari_env
        return replace(spec, preprocessing=dict(preprocessing)) if preprocessing is not None else spec
    finally:
        env.close()


def env_dims(env_id: str, **gym_kwargs) -> tuple[int, int]:
    """``(obs_dim, num_actions)`` of an environment with discrete actions, its spaces checked.

    Raises:
        ValueError: For an unknown id, spaces kd_rl cannot use, or a
            continuous action space (use `env_spec`).
    """
    spec = env_spec(env_id, **gym_kwargs)
    if spec.is_continuous:
        raise KdRlError(f"env {env_id!r} has {spec.describe()}; this needs a Discrete action space")
    return spec.obs_dim, spec.num_actions
