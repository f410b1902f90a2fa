"""Collect states in a live environment and label them with the teacher.

Three ways to choose who acts while the teacher labels every visited state:

* ``teacher``: the teacher acts (greedy, or ε-greedy with ``epsilon``). The
  classic policy-distillation data of Rusu et al. (2016).
* ``student``: the student acts and the teacher labels the states the student
  visits — DAgger, or on-policy distillation (Czarnecki et al., 2019). The
  student learns to recover from its own mistakes.
* ``mixed``: at every step each environment follows the teacher with
  probability β and the student otherwise; β falls linearly from ``beta_start``
  to ``beta_end`` over the collection budget (DAgger's β schedule).

Labelled pairs go to a bounded `ReplayBuffer` of
``(observation, teacher_logits)`` that feeds ``tf.data``.

Continuous actions work the same way: the teacher's label is its Gaussian
``[mean, log_std]``, and whoever acts executes its deterministic action, or,
with ``sample_actions=True``, an action drawn from its Gaussian (squashed or
clipped into the bounds as the policy says).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kd_rl._validate import check_int, check_memory
from kd_rl.config import COLLECT_MODES
from kd_rl.envs import EnvGroup
from kd_rl.errors import KdRlError
from kd_rl.games import env_kwargs_for
from kd_rl.models import PolicyModel, gaussian_action, sensor_noise_std, split_gaussian
from kd_rl.policies import (
    ObservationWindows,
    OutputSnapshot,
    PolicyMemory,
    fast_policy_fn,
    sensor_readings,
    to_actions,
)
from kd_rl.timing import RunProfile

__all__ = [
    "COLLECT_MODES",
    "check_buffer_memory",
    "ReplayBuffer",
    "SequenceBuffer",
    "Collector",
    "BetaSchedule",
    "visited_states",
]


def check_buffer_memory(
    buffer_size: int, batch_size: int, updates_per_round: int, width: int, image_entries: int = 0
) -> None:
    """Refuse a replay buffer, or a round of sampled batches, that cannot fit in memory.

    A buffer holds ``buffer_size`` rows of ``width`` float32 numbers (the
    observation and the teacher's outputs) and ``image_entries`` bytes (an
    image observation, stored as uint8); each round samples
    ``updates_per_round * batch_size`` rows more, as float32.

    Raises:
        ValueError: Naming ``--buffer-size`` or ``--batch-size`` and the bytes it would take.
    """
    check_memory(f"--buffer-size {buffer_size} (the replay buffer)", buffer_size * (4.0 * width + image_entries))
    check_memory(
        f"--batch-size {batch_size} ({updates_per_round} batches of it per round)",
        4.0 * updates_per_round * batch_size * (width + image_entries),
    )


class ReplayBuffer:
    """A bounded FIFO buffer of ``(observation, teacher_logits)`` pairs.

    Args:
        capacity: Most pairs kept; the oldest are overwritten first.
        obs_dim: Observation size.
        num_actions: Number of teacher outputs per observation: logits, or
            ``2d`` Gaussian parameters for continuous actions.
        obs_dtype: How observations are stored: ``float32``, or ``uint8`` for
            images (`kd_rl.envs.EnvSpec.obs_dtype`): 100k 4-channel MinAtar
            frames (400 entries) take 40 MB, not 160 MB, and 100k Atari stacks
            (84 x 84 x 4) 2.8 GB, not 11.3 GB.
    """

    #: The arrays `state` gives (a checkpoint's).
    STATE_KEYS = ("observations", "logits", "added")

    def __init__(self, capacity: int, obs_dim: int, num_actions: int, obs_dtype="float32"):
        self.capacity = check_int("buffer_size", capacity)
        self.observations = np.zeros((self.capacity, check_int("obs_dim", obs_dim)), np.dtype(obs_dtype))
        self.logits = np.zeros((self.capacity, check_int("num_actions", num_actions)), np.float32)
        self.size = 0
        self.added = 0  # pairs ever added

    def __len__(self) -> int:
        return self.size

    def add(self, observations: np.ndarray, logits: np.ndarray) -> None:
        """Add ``observations [n, obs_dim]`` with their ``logits [n, num_actions]``."""
        observations = np.asarray(observations, self.observations.dtype)
        logits = np.asarray(logits, np.float32)
        if observations.shape[0] != logits.shape[0]:
            raise KdRlError(f"got {observations.shape[0]} observations but {logits.shape[0]} logits")
        skipped = max(0, len(observations) - self.capacity)  # only the newest fit
        observations, logits = observations[skipped:], logits[skipped:]
        idx = (self.added + skipped + np.arange(len(observations))) % self.capacity
        self.observations[idx] = observations
        self.logits[idx] = logits
        self.added += skipped + len(observations)
        self.size = min(self.size + len(observations), self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A uniform random batch (with replacement) of observations and logits."""
        if self.size == 0:
            raise KdRlError("cannot sample from an empty replay buffer")
        idx = rng.integers(0, self.size, size=batch_size)
        return self.observations[idx], self.logits[idx]

    def as_dataset(self, batch_size: int, seed: int | None = None, observations_only: bool = False) -> tf.data.Dataset:
        """The buffer's current contents as a shuffled, repeating ``tf.data.Dataset``.

        Elements are ``(observations float32 [batch, obs_dim], logits float32 [batch, num_actions])``,
        or observations alone with ``observations_only=True`` (what ``Distiller.fit`` takes: it runs
        the teacher itself, and would read a second element as hard labels).
        """
        if self.size == 0:
            raise KdRlError("cannot make a dataset from an empty replay buffer")
        if observations_only:
            ds = tf.data.Dataset.from_tensor_slices(self.observations[: self.size])
        else:
            ds = tf.data.Dataset.from_tensor_slices((self.observations[: self.size], self.logits[: self.size]))
        return ds.shuffle(self.size, seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)

    def state(self) -> dict:
        """Arrays that fully describe the buffer (for checkpoints)."""
        return {
            "observations": self.observations[: self.size].copy(),
            "logits": self.logits[: self.size].copy(),
            "added": np.int64(self.added),
        }

    def load_state(self, state: dict) -> None:
        n = len(state["observations"])
        self.observations[:n] = state["observations"]
        self.logits[:n] = state["logits"]
        self.size = n
        self.added = int(state["added"])


class SequenceBuffer:
    """Each environment's labelled states in the order it visited them, sampled as sequences: a recurrent
    student's replay buffer (`kd_rl.models.RecurrentStudent`).

    Each of ``num_envs`` streams keeps its newest ``capacity // num_envs``
    states, their teacher outputs and whether each began an episode. `sample`
    draws windows of ``length`` consecutive states of one stream (across
    episode boundaries: the student's state is reset where one begins).

    Args:
        capacity: Most states kept, over all streams.
        num_envs: The collector's environments, one stream each.
        obs_dim: Observation size.
        num_actions: Teacher outputs per observation.
        length: States per sampled sequence (burn-in and trained steps).
    """

    #: The arrays `state` gives (a checkpoint's).
    STATE_KEYS = ("observations", "logits", "starts", "stream_added", "added")

    def __init__(self, capacity: int, num_envs: int, obs_dim: int, num_actions: int, length: int):
        self.streams = check_int("num_envs", num_envs)
        self.length = check_int("sequence length", length)
        self.per_stream = check_int("buffer_size", capacity) // self.streams
        if self.per_stream < self.length:
            raise KdRlError(
                f"buffer_size {capacity} keeps {self.per_stream} states per environment ({num_envs} of them), "
                f"fewer than a sequence of {self.length}: raise --buffer-size"
            )
        self.capacity = self.per_stream * self.streams
        self.observations = np.zeros((self.streams, self.per_stream, check_int("obs_dim", obs_dim)), np.float32)
        self.logits = np.zeros((self.streams, self.per_stream, check_int("num_actions", num_actions)), np.float32)
        self.starts = np.zeros((self.streams, self.per_stream), bool)
        self.stream_added = np.zeros(self.streams, np.int64)  # states ever added to each stream
        self.added = 0

    def __len__(self) -> int:
        return int(np.minimum(self.stream_added, self.per_stream).sum())

    def add(self, observations, logits, envs, starts) -> None:
        """Add states with their teacher outputs, environments and episode-start flags (`Collector.collect_steps`)."""
        envs = np.asarray(envs, np.int64)
        if not len(observations) == len(logits) == len(envs) == len(starts):
            raise KdRlError("give one teacher output, environment and start flag per observation")
        if len(envs) and (envs.min() < 0 or envs.max() >= self.streams):
            raise KdRlError(f"environment indices must be in [0, {self.streams}), got {envs.min()}..{envs.max()}")
        observations, logits = np.asarray(observations, np.float32), np.asarray(logits, np.float32)
        starts = np.asarray(starts, bool)
        for env in np.unique(envs):
            rows = np.flatnonzero(envs == env)[-self.per_stream :]  # in the order visited; only the newest fit
            skipped = int(np.sum(envs == env)) - len(rows)
            at = (self.stream_added[env] + skipped + np.arange(len(rows))) % self.per_stream
            self.observations[env, at] = observations[rows]
            self.logits[env, at] = logits[rows]
            self.starts[env, at] = starts[rows]
            self.stream_added[env] += skipped + len(rows)
        self.added += len(envs)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``batch_size`` uniformly drawn windows of ``length`` consecutive states of one stream.

        Returns:
            ``(sequences float32 [batch, length, obs_dim + 1], logits float32 [batch, length, num_actions])``:
            each state's observation with, as its last feature, 1.0 where an episode began (0.0 elsewhere),
            what `kd_rl.distill.make_distill_step`'s recurrent form takes.
        """
        kept = np.minimum(self.stream_added, self.per_stream)
        windows = np.maximum(kept - self.length + 1, 0)  # the windows each stream offers
        if windows.sum() == 0:
            raise KdRlError(f"no environment has {self.length} consecutive states yet: collect more first")
        streams = rng.choice(self.streams, size=batch_size, p=windows / windows.sum())
        first = rng.integers(0, windows[streams])  # the window's first state, counted from the oldest kept
        at = self.stream_added[streams, None] - kept[streams, None] + first[:, None] + np.arange(self.length)
        at %= self.per_stream
        flags = self.starts[streams[:, None], at].astype(np.float32)[..., None]
        sequences = np.concatenate([self.observations[streams[:, None], at], flags], axis=-1)
        return sequences, self.logits[streams[:, None], at]

    def state(self) -> dict:
        """Arrays that fully describe the buffer (for checkpoints)."""
        return {
            "observations": self.observations.copy(),
            "logits": self.logits.copy(),
            "starts": self.starts.copy(),
            "stream_added": self.stream_added.copy(),
            "added": np.int64(self.added),
        }

    def load_state(self, state: dict) -> None:
        for key in self.STATE_KEYS[:-1]:  # the arrays; then the count of states ever added
            value = np.asarray(state[key])
            if value.shape != getattr(self, key).shape:
                raise ValueError(f"its buffer's {key} have shape {value.shape}, this run's {getattr(self, key).shape}")
            getattr(self, key)[...] = value
        self.added = int(state["added"])


@dataclass
class BetaSchedule:
    """Probability of following the teacher, linear in the fraction of the budget spent."""

    start: float = 1.0
    end: float = 0.0

    def __post_init__(self):
        for name, v in (("beta_start", self.start), ("beta_end", self.end)):
            if not 0.0 <= float(v) <= 1.0:
                raise KdRlError(f"{name} must be in [0, 1], got {v!r}")

    def __call__(self, fraction: float) -> float:
        fraction = min(max(float(fraction), 0.0), 1.0)
        return self.start + (self.end - self.start) * fraction


class Collector:
    """Steps ``num_envs`` Gymnasium environments together and labels each state.

    Args:
        env_id: Gymnasium id (1-D Box observations, Discrete or 1-D Box actions).
        teacher: Model (or ``PolicyFn``) whose outputs (logits, or a
            Gaussian's ``[mean, log_std]``) label every state.
        student: Model (or ``PolicyFn``) acting in ``student``/``mixed`` mode. A
            model trained with sensor noise (`kd_rl.models.sensor_noise_std`)
            acts on observations with that noise added; the teacher labels the
            clean ones, and the clean ones are returned.
        mode: ``"teacher"``, ``"student"`` or ``"mixed"``.
        num_envs: Environments stepped together.
        seed: Environment ``i`` is first reset with ``seed + i``; the action
            sampler is seeded with ``seed`` too.
        epsilon: Probability of a uniformly random action (any mode).
        beta: `BetaSchedule` for ``mixed`` mode.
        total_steps: Budget the β schedule is spread over.
        env_kwargs: Passed to ``gymnasium.make``.
        sample_actions: Continuous actions only: execute an action sampled from
            the acting policy's Gaussian instead of its deterministic action.
    """

    def __init__(
        self,
        env_id: str,
        teacher,
        student=None,
        mode: str = "student",
        num_envs: int = 8,
        seed: int = 0,
        epsilon: float = 0.0,
        beta: BetaSchedule | None = None,
        total_steps: int = 10_000,
        env_kwargs: dict | None = None,
        sample_actions: bool = False,
    ):
        if mode not in COLLECT_MODES:
            raise KdRlError(f"collect mode must be one of {', '.join(COLLECT_MODES)}, got {mode!r}")
        if mode != "teacher" and student is None:
            raise KdRlError(f"collect mode {mode!r} needs a student")
        if not 0.0 <= float(epsilon) <= 1.0:
            raise KdRlError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.mode = mode
        self.epsilon = float(epsilon)
        self.beta = beta or BetaSchedule()
        self.total_steps = check_int("total_steps", total_steps)
        self.num_envs = check_int("num_envs", num_envs)
        self._teacher_model, self._student_model = teacher, student
        # What the student's sensors add to its view (kd_rl.models.sensor_noise_std); the teacher sees the state.
        self._student_noise = None if student is None else sensor_noise_std(student)
        self.teacher = fast_policy_fn(teacher)
        self.student = None if student is None else fast_policy_fn(student)
        self.profile = RunProfile()  # where collection's time goes; train_loop passes the run's own
        self.envs = EnvGroup(env_id, self.num_envs, env_kwargs_for(teacher, env_id, env_kwargs))
        for role, policy in (("teacher", teacher), ("student", student)):
            continuous = getattr(policy, "is_continuous", None)
            if continuous is not None and continuous != self.envs.is_continuous:
                self.envs.close()
                kind = "a continuous (Gaussian)" if continuous else "a discrete-action"
                raise KdRlError(f"{role} is {kind} policy but {env_id} has {self.envs.spec.describe()}")
        self.sample_actions = bool(sample_actions)
        if self.sample_actions:
            acting = [m for m, used in ((teacher, mode != "student"), (student, mode != "teacher")) if used]
            if not self.envs.is_continuous or not all(isinstance(m, PolicyModel) for m in acting):
                self.envs.close()
                raise KdRlError(
                    "sample_actions needs continuous actions and kd_rl Gaussian policies (PolicyModel) acting; "
                    "for discrete actions explore with epsilon"
                )
        self.rng = np.random.default_rng(seed)
        self.obs = self.envs.reset([seed + i for i in range(self.num_envs)])
        # The student acts on what its sensors read (noise drawn once per reading), with what it remembers
        # of the episode so far (a window of readings, or a recurrent state): kd_rl.policies.PolicyMemory.
        self._memory = (
            None if student is None else PolicyMemory(student, self.num_envs, self.envs.obs_dim, self.student)
        )
        # A student that sees its last `history` readings learns from windows of clean ones.
        self.history = 1 if student is None else int(getattr(student, "history", 1))
        if self.history > 1:
            self._windows = ObservationWindows(self.num_envs, self.history, self.envs.obs_dim)
            self._windows.start(np.arange(self.num_envs), self.obs)
        self._starts = np.ones(self.num_envs, bool)  # whether each environment's next state begins an episode
        self.steps = 0  # env steps taken so far (all envs)
        self.episode_returns: list[float] = []
        self._running_returns = np.zeros(self.num_envs)
        self._next_env = 0  # the environment that steps first in the next call

    def _sensed(self, obs: np.ndarray) -> np.ndarray:
        """``obs`` as the student's sensors read them: with its noise, if it has any."""
        return obs if self._student_noise is None else sensor_readings(self._student_noise, self.rng)(obs)

    def collect(self, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Take exactly ``num_steps`` env steps, labelling every state visited.

        Environments take turns: a call that is not a multiple of
        ``num_envs`` steps the next ones in rotation, so over a run every
        environment is stepped as often as the others (to within one step)
        and no visited state is thrown away.

        Returns:
            ``(observations float32 [num_steps, obs_dim], teacher_logits float32 [num_steps, num_actions])``;
            for a student with a ``history``, its windows of clean readings, ``[num_steps, history * obs_dim]``.
        """
        return self.collect_steps(num_steps)[:2]

    def collect_steps(self, num_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`collect`, with where each state came from: what a recurrent student's sequences need.

        Returns:
            ``(observations, teacher_logits, envs, starts)``: `collect`'s two
            arrays, the environment of each state (int64 ``[num_steps]``; each
            environment's states are in the order it visited them) and whether
            it is an episode's first (bool ``[num_steps]``).
        """
        remaining = check_int("num_steps", num_steps)
        for policy in (self.teacher, self.student):  # weights change between calls (the updates), not within
            if isinstance(policy, OutputSnapshot):
                policy.refresh()
        profile = self.profile
        all_obs, all_logits, all_envs, all_starts = [], [], [], []
        while remaining > 0:
            k = min(remaining, self.num_envs)
            idx = (self._next_env + np.arange(k)) % self.num_envs
            self._next_env = (self._next_env + k) % self.num_envs
            obs = self.obs[idx]
            with profile.section("collect_teacher"):
                teacher_logits = np.asarray(self.teacher(obs), np.float32)
            actions = self._actions(self._teacher_model, teacher_logits)
            if self.mode != "teacher":
                with profile.section("collect_student"):
                    student_outputs = self._memory(idx, self._sensed(obs))
                student_actions = self._actions(self._student_model, student_outputs)
                if self.mode == "student":
                    actions = student_actions
                else:
                    follow_teacher = self.rng.random(k) < self.beta(self.steps / self.total_steps)
                    mask = follow_teacher if actions.ndim == 1 else follow_teacher[:, None]
                    actions = np.where(mask, actions, student_actions)
            if self.epsilon > 0:
                explore = self.rng.random(k) < self.epsilon
                if self.envs.is_continuous:
                    spec = self.envs.spec
                    random_actions = self.rng.uniform(spec.action_low, spec.action_high, size=(k, spec.action_dim))
                    actions = np.where(explore[:, None], random_actions.astype(np.float32), actions)
                else:
                    actions = np.where(explore, self.rng.integers(0, teacher_logits.shape[-1], k), actions)
            all_obs.append(self._windows.view(idx) if self.history > 1 else obs)
            all_logits.append(teacher_logits)
            all_envs.append(idx)
            all_starts.append(self._starts[idx])
            with profile.section("collect_env"):
                next_obs, rewards, terminated, truncated = self.envs.step(actions, idx)
                self._running_returns[idx] += rewards
                for j in np.flatnonzero(terminated | truncated):
                    i = idx[j]
                    self.episode_returns.append(float(self._running_returns[i]))
                    self._running_returns[i] = 0.0
                    next_obs[j] = self.envs.reset(indices=[i])[0]  # the env's own RNG continues
            self.obs[idx] = next_obs
            ended = idx[terminated | truncated]
            self._starts[idx] = terminated | truncated
            if self._memory is not None:
                self._memory.start(ended)  # a new episode: the student remembers nothing of the last one
            if self.history > 1:
                self._windows.push(idx, next_obs)
                self._windows.start(ended, self.obs[ended])  # a new episode's window starts from zeros
            self.steps += k
            remaining -= k
        cat = np.concatenate
        return cat(all_obs), cat(all_logits), cat(all_envs).astype(np.int64), cat(all_starts)

    def _actions(self, policy, outputs) -> np.ndarray:
        """The actions ``policy`` takes given its ``outputs``: deterministic, or sampled (``sample_actions``)."""
        if not self.sample_actions:
            return to_actions(policy, outputs)

        mean, log_std = split_gaussian(np.asarray(outputs, np.float32))
        draw = mean + np.exp(log_std) * self.rng.standard_normal(mean.shape).astype(np.float32)
        return gaussian_action(draw, policy.action_low, policy.action_high, policy.squash)

    def close(self) -> None:
        self.envs.close()


def visited_states(
    policy, env_id: str, num_states: int, seed: int = 0, epsilon: float = 0.0, env_kwargs: dict | None = None
) -> np.ndarray:
    """The states ``policy`` visits acting greedily in ``env_id``, with ε-random actions.

    Eight environments seeded ``seed, seed + 1, ...`` are stepped together, as
    a `Collector` in ``teacher`` mode with ``policy`` as the teacher.

    Returns:
        float32 ``[num_states, obs_dim]``.
    """
    collector = Collector(
        env_id, policy, mode="teacher", num_envs=8, seed=seed, epsilon=epsilon, total_steps=num_states,
        env_kwargs=env_kwargs,
    )  # fmt: skip
    try:
        observations, _ = collector.collect(num_states)
    finally:
        collector.close()
    return observations
