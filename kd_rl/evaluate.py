"""Measure a policy: returns, agreement with a teacher, size and latency.

Episodes run side by side: ``episodes`` Gymnasium environments, each reset
with its own seed (``seed``, ``seed + 1``, ...), are stepped together so that
one batched forward pass chooses every action of a time step. This is what
makes a 100-episode evaluation of CartPole take about a second.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from kd_rl._validate import check_int

__all__ = [
    "EpisodeStats",
    "PolicyFn",
    "as_policy_fn",
    "run_episodes",
    "evaluate_model",
    "model_size_bytes",
    "inference_latency_us",
    "check_model_fits_env",
    "observation_dim",
]

#: A batched policy: ``observations float32 [batch, obs_dim] -> logits float32 [batch, num_actions]``.
PolicyFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class EpisodeStats:
    """Returns and lengths of a set of seeded episodes."""

    returns: list[float]
    lengths: list[int]
    agreement: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    def summary(self) -> dict:
        """Plain-JSON summary: mean/std/min/max return, mean length, agreement."""
        out = {
            "episodes": len(self.returns),
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "min_return": float(np.min(self.returns)),
            "max_return": float(np.max(self.returns)),
            "mean_length": float(np.mean(self.lengths)),
        }
        if self.agreement is not None:
            out["agreement"] = self.agreement
        out.update(self.extra)
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def observation_dim(model) -> int:
    """Input size of a Keras policy: its ``observation_dim``, else its input shape."""
    return getattr(model, "observation_dim", None) or model.input_shape[-1]


def as_policy_fn(model) -> PolicyFn:
    """Wrap a Keras model (or a callable) as a fast batched ``PolicyFn``.

    Keras models are traced once with a ``[None, obs_dim]`` signature, so
    varying batch sizes do not retrace.
    """
    if not isinstance(model, tf.keras.Model):
        return model
    dim = observation_dim(model)

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def forward(x):
        return model(x, training=False)

    return lambda obs: forward(np.asarray(obs, np.float32)).numpy()


def _greedy(output) -> np.ndarray:
    """Actions from a policy's output: the argmax of logits ``[batch, num_actions]``, or actions ``[batch]``."""
    out = np.asarray(output)
    if out.ndim == 2:
        return np.argmax(out, axis=-1)
    if out.ndim == 1:
        return out.astype(np.int64)
    raise ValueError(f"the policy must return logits [batch, num_actions] or actions [batch], got shape {out.shape}")


def run_episodes(
    policy,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    reference=None,
    max_steps: int | None = None,
    env_kwargs: dict | None = None,
) -> EpisodeStats:
    """Run ``episodes`` greedy episodes of ``policy`` side by side.

    Args:
        policy: A Keras model or a ``PolicyFn`` giving logits (it acts
            greedily), or a callable giving actions ``int [batch]``.
        env_id: Gymnasium environment id.
        episodes: Number of episodes (>= 1); episode ``i`` is reset with ``seed + i``.
        seed: Base seed.
        reference: Optional model or ``PolicyFn`` (the teacher) scored on the
            same visited states: ``agreement`` is the fraction of steps where
            both choose the same action.
        max_steps: Optional cap on steps per episode (the env's own time limit
            still applies).
        env_kwargs: Passed to ``gymnasium.make``.

    Returns:
        `EpisodeStats`.

    Raises:
        ValueError: If ``episodes`` < 1, or an observation is NaN or infinite.
    """
    from kd_rl.envs import check_observation_finite, check_spaces, make_gymnasium_env

    episodes = check_int("episodes", episodes)
    act = as_policy_fn(policy)
    ref = None if reference is None else as_policy_fn(reference)
    envs = [make_gymnasium_env(env_id, **(env_kwargs or {})) for _ in range(episodes)]
    try:
        check_spaces(envs[0].observation_space, envs[0].action_space, env_id)
        action_start = int(envs[0].action_space.start)  # Discrete(n, start=k) counts actions from k
        obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        active = np.ones(episodes, dtype=bool)
        agree = total = 0
        step = 0
        while active.any():
            idx = np.flatnonzero(active)
            batch = obs[idx]
            check_observation_finite(batch, step)
            actions = _greedy(act(batch))
            if ref is not None:
                agree += int(np.sum(actions == _greedy(ref(batch))))
                total += len(idx)
            for j, i in enumerate(idx):
                o, r, terminated, truncated, _ = envs[i].step(int(actions[j]) + action_start)
                obs[i] = o
                returns[i] += r
                lengths[i] += 1
                if terminated or truncated or (max_steps is not None and lengths[i] >= max_steps):
                    active[i] = False
            step += 1
    finally:
        for env in envs:
            env.close()
    return EpisodeStats(
        returns=returns.tolist(),
        lengths=lengths.tolist(),
        agreement=None if ref is None else agree / max(total, 1),
    )


def model_size_bytes(model: tf.keras.Model) -> int:
    """Size in bytes of the model saved as a ``.keras`` file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        return os.path.getsize(path)


def inference_latency_us(policy, obs_dim: int, repeats: int = 200, warmup: int = 20) -> dict:
    """Batch-1 latency of ``policy`` in microseconds: median, p99 and interquartile range.

    ``policy`` is a ``PolicyFn`` (any callable on ``float32 [1, obs_dim]``) or a
    Keras model, called eagerly as a user would call it. ``benchmarks/latency.py``
    times every runtime with this function.
    """
    fn = policy if not isinstance(policy, tf.keras.Model) else (lambda x: policy(x).numpy())
    x = np.zeros((1, obs_dim), np.float32)
    for _ in range(warmup):
        fn(x)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter_ns()
        fn(x)
        times[i] = time.perf_counter_ns() - start
    times /= 1e3
    return {
        "median_us": float(np.median(times)),
        "p99_us": float(np.percentile(times, 99)),
        "iqr_us": float(np.subtract(*np.percentile(times, [75, 25]))),
    }


def evaluate_model(
    model,
    env_id: str,
    episodes: int = 100,
    seed: int = 0,
    reference=None,
    latency: bool = True,
) -> dict:
    """Everything kd_rl reports about a model on an environment, as plain JSON.

    Keys: env_id, episodes, mean_return, std_return, min_return, max_return,
    mean_length, returns, lengths, params, size_bytes, and where it applies
    agreement (with ``reference``) and latency_us (batch-1, eager Keras).
    """
    stats = run_episodes(model, env_id, episodes=episodes, seed=seed, reference=reference)
    out = {"env_id": env_id, **stats.summary(), "returns": stats.returns, "lengths": stats.lengths}
    if isinstance(model, tf.keras.Model):
        out["params"] = int(model.count_params())
        out["size_bytes"] = model_size_bytes(model)
        if latency:
            out["latency_us"] = inference_latency_us(model, observation_dim(model))
    return out


def check_model_fits_env(model, env_id: str, role: str = "model") -> tuple[int, int]:
    """Check that ``model`` reads ``env_id``'s observations and picks its actions.

    Returns:
        ``(obs_dim, num_actions)`` of the environment.

    Raises:
        ValueError: Naming the role, the sizes and the environment on a mismatch,
            or the environment's space when kd_rl cannot use it.
    """
    from kd_rl.envs import env_dims

    obs_dim, num_actions = env_dims(env_id)
    model_dim = getattr(model, "observation_dim", None)
    if model_dim is None and isinstance(model, tf.keras.Model) and model.built:
        model_dim = model.input_shape[-1]
    if model_dim is not None and model_dim != obs_dim:
        raise ValueError(f"{role} expects {model_dim} observation features but {env_id} gives {obs_dim}")
    out = model(np.zeros((1, obs_dim), np.float32))
    model_actions = int(np.shape(out)[-1])
    if model_actions != num_actions:
        raise ValueError(f"{role} outputs {model_actions} actions but {env_id} has {num_actions}")
    return obs_dim, num_actions
