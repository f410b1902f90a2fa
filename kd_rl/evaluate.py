"""Measure a policy: returns, agreement with a teacher, size and latency.

`run_episodes` is kd_rl's one evaluation: ``episodes`` Gymnasium environments
(an `kd_rl.envs.EnvGroup`) are stepped together so that one batched forward
pass chooses every action of a time step (a 100-episode CartPole evaluation
takes about a second). `evaluate_model` adds what a saved model has beyond
its returns (parameters, bytes, latency).

Episode seeds come from ``numpy.random.SeedSequence(seed).spawn(episodes)``
(`episode_seeds`): two evaluations with different seeds share no episode
(``seed, seed + 1, ...`` would make seeds 0 and 5 share 95 of 100), and a
teacher and a student evaluated with the same seed play the same episodes
(common random numbers).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from kd_rl._validate import check_int
from kd_rl.policies import PolicyFn, as_policy_fn, observation_dim

__all__ = [
    "EpisodeStats",
    "PolicyFn",
    "episode_seeds",
    "run_episodes",
    "evaluate_model",
    "model_size_bytes",
    "inference_latency_us",
    "check_model_fits_env",
    "RandomPolicy",
    "random_policy_return",
    "normalised_score",
]


@dataclass
class EpisodeStats:
    """Returns and lengths of a set of seeded episodes."""

    returns: list[float]
    lengths: list[int]
    agreement: float | None = None
    seeds: list[int] = field(default_factory=list)
    kl: float | None = None

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
        if self.kl is not None:
            out["kl"] = self.kl
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of an evaluation: ``episodes`` independent draws from ``SeedSequence(seed)``.

    Different ``seed`` values give disjoint episode sets (up to 32-bit
    collisions); the same ``seed`` always gives the same list.
    """
    seed = check_int("seed", seed, minimum=0)
    children = np.random.SeedSequence(seed).spawn(check_int("episodes", episodes))
    return [int(child.generate_state(1)[0]) for child in children]


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
    temperature: float | None = None,
) -> EpisodeStats:
    """Run ``episodes`` greedy episodes of ``policy`` side by side.

    Args:
        policy: A Keras model or a ``PolicyFn`` giving logits (it acts
            greedily), or a callable giving actions ``int [batch]``.
        env_id: Gymnasium environment id.
        episodes: Number of episodes (>= 1), reset with `episode_seeds` ``(seed, episodes)``.
        seed: Seed of the evaluation (>= 0).
        reference: Optional model or ``PolicyFn`` (the teacher) scored on the
            same visited states: ``agreement`` is the fraction of steps where
            both choose the same action.
        max_steps: Optional cap on steps per episode (the env's own time limit
            still applies).
        env_kwargs: Passed to ``gymnasium.make``.
        temperature: With a ``reference``, also measure ``kl``: the mean over
            visited states of ``KL(softmax(reference / T) ‖ softmax(policy / T))``,
            the distillation target's divergence from the policy (needs logits).

    Returns:
        `EpisodeStats`.

    Raises:
        ValueError: If ``episodes`` < 1 or ``seed`` < 0, or an observation is NaN or infinite.
    """
    from kd_rl.envs import EnvGroup

    seeds = episode_seeds(seed, episodes)
    act = as_policy_fn(policy)
    ref = None if reference is None else as_policy_fn(reference)
    with EnvGroup(env_id, episodes, env_kwargs) as envs:
        obs = envs.reset(seeds)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        active = np.ones(episodes, dtype=bool)
        agree = total = 0
        kl_sum = 0.0
        while active.any():
            idx = np.flatnonzero(active)
            out = act(obs[idx])
            actions = _greedy(out)
            if ref is not None:
                ref_out = ref(obs[idx])
                agree += int(np.sum(actions == _greedy(ref_out)))
                total += len(idx)
                if temperature is not None:
                    kl_sum += float(np.sum(_kl(ref_out, out, temperature)))
            obs[idx], rewards, terminated, truncated = envs.step(actions, idx)
            returns[idx] += rewards
            lengths[idx] += 1
            done = terminated | truncated
            if max_steps is not None:
                done |= lengths[idx] >= max_steps
            active[idx[done]] = False
    return EpisodeStats(
        returns=returns.tolist(),
        lengths=lengths.tolist(),
        agreement=None if ref is None else agree / max(total, 1),
        seeds=seeds,
        kl=None if ref is None or temperature is None else kl_sum / max(total, 1),
    )


def _kl(teacher_logits, student_logits, temperature: float) -> np.ndarray:
    """Per-row ``KL(softmax(teacher / T) ‖ softmax(student / T))`` in float64: ``[batch]``."""
    t = np.asarray(teacher_logits, np.float64) / temperature
    s = np.asarray(student_logits, np.float64) / temperature
    if t.ndim != 2 or s.shape != t.shape:
        raise ValueError("kl needs logits [batch, num_actions] from both the policy and the reference")
    log_p = t - np.logaddexp.reduce(t, axis=-1, keepdims=True)
    log_q = s - np.logaddexp.reduce(s, axis=-1, keepdims=True)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


class RandomPolicy:
    """Uniformly random actions, ``int64 [batch]``: the floor of a normalised score.

    Args:
        num_actions: Number of discrete actions.
        seed: Seed of the action sampler.
    """

    def __init__(self, num_actions: int, seed: int = 0):
        self.num_actions = check_int("num_actions", num_actions)
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations) -> np.ndarray:
        return self.rng.integers(0, self.num_actions, size=len(observations))


def random_policy_return(env_id: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of a uniformly random policy over the episodes `run_episodes` plays for ``seed``."""
    from kd_rl.envs import env_dims

    _, num_actions = env_dims(env_id)
    return run_episodes(RandomPolicy(num_actions, seed), env_id, episodes, seed=seed).mean_return


def normalised_score(student_return: float, teacher_return: float, random_return: float) -> float | None:
    """``(s − r) / (t − r)``: 0 for a random policy, 1 for the teacher; None if ``t == r``.

    Unlike ``s / t`` it means the same for negative returns: a student at −161
    against a teacher at −146 and a random policy at −180 scores 0.56, not 1.10.
    """
    if teacher_return == random_return:
        return None
    return (student_return - random_return) / (teacher_return - random_return)


def model_size_bytes(model) -> int:
    """Size in bytes of a Keras model saved as a ``.keras`` file."""
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
    import keras

    fn = policy if not isinstance(policy, keras.Model) else (lambda x: np.asarray(policy(x)))
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
    """`run_episodes` plus what a model has beyond its returns, as plain JSON.

    Keys: env_id, seed, episodes, mean_return, std_return, min_return,
    max_return, mean_length, returns, lengths, and where they apply agreement
    (with ``reference``), params, size_bytes (of a Keras model's ``.keras``
    file) and latency_us (batch-1, eager Keras).
    """
    import keras

    stats = run_episodes(model, env_id, episodes=episodes, seed=seed, reference=reference)
    out = {"env_id": env_id, "seed": seed, **stats.summary(), "returns": stats.returns, "lengths": stats.lengths}
    if isinstance(model, keras.Model):
        from kd_rl.models import count_params

        out["params"] = count_params(model)
        out["size_bytes"] = model_size_bytes(model)
        if latency:
            out["latency_us"] = inference_latency_us(model, observation_dim(model))
    elif hasattr(model, "count_params"):
        out["params"] = int(model.count_params())
    return out


def check_model_fits_env(model, env_id: str, role: str = "model") -> tuple[int, int]:
    """Check that ``model`` reads ``env_id``'s observations and picks its actions.

    Returns:
        ``(obs_dim, num_actions)`` of the environment.

    Raises:
        ValueError: Naming the role, the sizes and the environment on a mismatch,
            the environment's space when kd_rl cannot use it, or a Keras 2
            (``tf_keras``) model where kd_rl needs Keras 3.
    """
    import keras

    from kd_rl.envs import env_dims
    from kd_rl.models import check_keras3

    check_keras3(model, role)
    obs_dim, num_actions = env_dims(env_id)
    model_dim = getattr(model, "observation_dim", None)
    if model_dim is None and isinstance(model, keras.Model) and model.built:
        try:
            model_dim = model.input_shape[-1]
        except (AttributeError, ValueError):
            model_dim = None  # a subclassed model has no input shape
    if model_dim is not None and model_dim != obs_dim:
        raise ValueError(f"{role} expects {model_dim} observation features but {env_id} gives {obs_dim}")
    out = model(np.zeros((1, obs_dim), np.float32))
    model_actions = int(np.shape(out)[-1])
    if model_actions != num_actions:
        raise ValueError(f"{role} outputs {model_actions} actions but {env_id} has {num_actions}")
    return obs_dim, num_actions
