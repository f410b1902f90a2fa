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

from kd_rl._validate import check_int, check_memory
from kd_rl.envs import EnvGroup, env_spec, make_gymnasium_env
from kd_rl.errors import KdRlError
from kd_rl.games import env_kwargs_for
from kd_rl.models import sensor_noise_std
from kd_rl.policies import (
    PolicyFn,
    PolicyMemory,
    fast_policy_fn,
    observation_dim,
    sensor_readings,
    to_actions,
)

__all__ = [
    "CURVE_EVAL_SEED_OFFSET",
    "FINAL_EVAL_SEED_OFFSET",
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
    "AGREEMENT_TOLERANCE",
    "DEFAULT_MAX_EPISODE_STEPS",
    "MAX_PARALLEL_EPISODES",
    "episode_cap",
]


@dataclass
class EpisodeStats:
    """Returns and lengths of a set of seeded episodes."""

    returns: list[float]
    lengths: list[int]
    agreement: float | None = None
    seeds: list[int] = field(default_factory=list)
    kl: float | None = None
    action_error: float | None = None
    #: Episodes ended by the step cap ``max_steps`` rather than by the environment.
    capped: int = 0
    max_steps: int | None = None

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
        if self.action_error is not None:
            out["action_error"] = self.action_error
        if self.capped:
            out["capped_episodes"] = self.capped
            out["max_episode_steps"] = self.max_steps
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


#: Continuous actions "agree" when every dimension is within this share of its range.
AGREEMENT_TOLERANCE = 0.05

#: The seeds of a run's periodic evaluations (a distillation's curve, a teacher's
#: evaluations during training) and of its final one are offset from the run's
#: seed, so that they share no episodes with each other or with collection.
CURVE_EVAL_SEED_OFFSET = 10_000
FINAL_EVAL_SEED_OFFSET = 1_000_000


#: Episodes played side by side at most; more are played in chunks of this many (memory stays bounded).
MAX_PARALLEL_EPISODES = 1000

#: Step cap of an episode in an environment without its own time limit (Gymnasium's ``max_episode_steps``):
#: 27,000 steps, the 108,000 frames (at frame skip 4) that Atari evaluations cap an episode at.
DEFAULT_MAX_EPISODE_STEPS = 27_000

#: Bytes an evaluated episode keeps (its return, length and seed, and its environment's share of a chunk).
_BYTES_PER_EPISODE = 200


def episode_cap(env_id: str, max_steps: int | None = None, env_kwargs: dict | None = None) -> int | None:
    """The step cap `run_episodes` applies: ``max_steps``, else None if the environment has its own time
    limit, else `DEFAULT_MAX_EPISODE_STEPS`."""
    if max_steps is not None:
        return check_int("max_steps", max_steps)
    import gymnasium

    kwargs = env_kwargs or {}
    if kwargs.get("max_episode_steps") is not None:
        return None
    try:
        spec = gymnasium.spec(env_id)
    except Exception:  # an id only `make` can resolve ("module:Env-v0" before its import): make decides
        env = make_gymnasium_env(env_id, **kwargs)
        spec = env.spec
        env.close()
    return None if spec is not None and spec.max_episode_steps is not None else DEFAULT_MAX_EPISODE_STEPS


def run_episodes(
    policy,
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    reference=None,
    max_steps: int | None = None,
    env_kwargs: dict | None = None,
    temperature: float | None = None,
    sensor_noise: bool = True,
) -> EpisodeStats:
    """Run ``episodes`` greedy (deterministic) episodes of ``policy`` side by side.

    At most `MAX_PARALLEL_EPISODES` episodes run at once; more run in chunks,
    each episode with its own seed, so the results do not depend on the chunking.

    Args:
        policy: A Keras model, a ``PolicyFn`` giving logits (it acts
            greedily), a callable giving actions ``int [batch]``, or a
            continuous policy (a kd_rl model, or an export giving actions).
        env_id: Gymnasium environment id.
        episodes: Number of episodes (>= 1), reset with `episode_seeds` ``(seed, episodes)``.
        seed: Seed of the evaluation (>= 0).
        reference: Optional model or ``PolicyFn`` (the teacher) scored on the
            same visited states (the policy's own). Discrete actions:
            ``agreement`` is the fraction of steps where both choose the same
            action. Continuous actions: ``action_error`` is the mean over
            steps and dimensions of ``|a − a_ref| / (high − low)``, and
            ``agreement`` the fraction of steps where every dimension is within
            `AGREEMENT_TOLERANCE` (5%) of its range.
        max_steps: Cap on steps per episode; None: the environment's own time
            limit, or `DEFAULT_MAX_EPISODE_STEPS` for an environment that has
            none (one that never ends would otherwise run forever). Episodes
            the cap ends count in ``EpisodeStats.capped``.
        env_kwargs: Passed to ``gymnasium.make``.
        temperature: With a ``reference``, also measure ``kl``: the mean over
            visited states of the distillation target's divergence from the
            policy, ``KL(softmax(reference / T) ‖ softmax(policy / T))`` for
            logits, or the Gaussian KL with the reference's standard deviation
            scaled by T (`kd_rl.losses.gaussian_kl_loss`) for Gaussian policies.
        sensor_noise: A policy trained with sensor noise (`kd_rl.models.sensor_noise_std`)
            sees its observations with that noise, drawn from ``seed`` (the
            ``reference`` sees them clean); False: without it.

    Returns:
        `EpisodeStats`.

    Raises:
        ValueError: If ``episodes`` < 1 or ``seed`` < 0, more episodes than
            memory holds, or an observation or reward is NaN or infinite.
    """
    check_memory(f"episodes={episodes}", _BYTES_PER_EPISODE * check_int("episodes", episodes))
    env_kwargs = env_kwargs_for(policy, env_id, env_kwargs) or None  # an Atari policy's own preprocessing
    seeds = episode_seeds(seed, episodes)
    cap = episode_cap(env_id, max_steps, env_kwargs)
    forward = fast_policy_fn(policy)  # the weights as they are now: they do not change during an evaluation
    ref = None if reference is None else fast_policy_fn(reference)
    noise = sensor_noise_std(policy) if sensor_noise else None
    totals = {"agree": 0, "steps": 0, "kl": 0.0, "error": 0.0, "capped": 0}
    returns, lengths = [], []
    continuous = False
    for start in range(0, episodes, MAX_PARALLEL_EPISODES):
        chunk = seeds[start : start + MAX_PARALLEL_EPISODES]
        sense = None
        if noise is not None:  # drawn from the chunk's episode seeds: the same whatever the chunking
            sense = sensor_readings(noise, np.random.default_rng([NOISE_SEED_OFFSET, *chunk]))
        r, n, continuous = _run_chunk(
            policy, forward, reference, ref, env_id, chunk, cap, env_kwargs, temperature, totals, sense
        )
        returns += r
        lengths += n
    total = max(totals["steps"], 1)
    return EpisodeStats(
        returns=returns,
        lengths=lengths,
        agreement=None if ref is None else totals["agree"] / total,
        seeds=seeds,
        kl=None if ref is None or temperature is None else totals["kl"] / total,
        action_error=totals["error"] / total if ref is not None and continuous else None,
        capped=totals["capped"],
        max_steps=cap,
    )


#: Mixed into the seed of an evaluation's sensor noise, away from the environments' seeds.
NOISE_SEED_OFFSET = 7_919


def _run_chunk(policy, forward, reference, ref, env_id, seeds, cap, env_kwargs, temperature, totals, sense=None):
    """Play one episode per seed side by side; add to ``totals``; return ``(returns, lengths, continuous)``.

    The policy sees ``sense(observations)`` (None: the observations), with
    what it remembers of its episode (`kd_rl.policies.PolicyMemory`: a window of
    its last ``history`` readings, or its recurrent state); the reference
    sees the observations.
    """

    episodes = len(seeds)
    sense = sense or (lambda x: x)
    with EnvGroup(env_id, episodes, env_kwargs) as envs:
        continuous = envs.is_continuous
        obs = envs.reset(seeds)
        memory = PolicyMemory(policy, episodes, envs.obs_dim, forward)
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, dtype=np.int64)
        active = np.ones(episodes, dtype=bool)
        while active.any():
            idx = np.flatnonzero(active)
            out = memory(idx, sense(obs[idx]))
            actions = to_actions(policy, out)
            if ref is not None:
                ref_out = ref(obs[idx])
                ref_actions = to_actions(reference, ref_out)
                totals["steps"] += len(idx)
                if continuous:
                    error = np.abs(actions - ref_actions) / envs.spec.action_range
                    totals["error"] += float(np.sum(np.mean(error, axis=-1)))
                    totals["agree"] += int(np.sum(np.all(error <= AGREEMENT_TOLERANCE, axis=-1)))
                else:
                    totals["agree"] += int(np.sum(actions == ref_actions))
                if temperature is not None:
                    totals["kl"] += float(np.sum(_kl(ref_out, out, temperature, continuous)))
            obs[idx], rewards, terminated, truncated = envs.step(actions, idx)
            returns[idx] += rewards
            lengths[idx] += 1
            done = terminated | truncated
            if cap is not None:
                capped = ~done & (lengths[idx] >= cap)
                totals["capped"] += int(np.sum(capped))
                done |= capped
            active[idx[done]] = False
    return returns.tolist(), lengths.tolist(), continuous


def _kl(teacher_outputs, student_outputs, temperature: float, gaussian: bool = False) -> np.ndarray:
    """Per-row KL divergence of the target from the student, in float64: ``[batch]``.

    Logits: ``KL(softmax(teacher / T) ‖ softmax(student / T))``. Gaussians
    (``[mean, log_std]``): ``KL(N(mu_t, (T sigma_t)^2) ‖ N(mu_s, sigma_s^2))`` summed over dimensions.
    """
    t = np.asarray(teacher_outputs, np.float64)
    s = np.asarray(student_outputs, np.float64)
    if t.ndim != 2 or s.shape != t.shape:
        raise KdRlError("kl needs the outputs [batch, n] of both the policy and the reference (Keras models)")
    if gaussian:
        d = t.shape[-1] // 2
        mu_t, log_t = t[:, :d], t[:, d:] + np.log(temperature)
        mu_s, log_s = s[:, :d], s[:, d:]
        per_dim = log_s - log_t + 0.5 * (np.exp(2 * (log_t - log_s)) + (mu_t - mu_s) ** 2 * np.exp(-2 * log_s)) - 0.5
        return per_dim.sum(axis=-1)
    t, s = t / temperature, s / temperature
    log_p = t - np.logaddexp.reduce(t, axis=-1, keepdims=True)
    log_q = s - np.logaddexp.reduce(s, axis=-1, keepdims=True)
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)


class RandomPolicy:
    """Uniformly random actions: the floor of a normalised score.

    Discrete: ``int64 [batch]`` in ``0 .. num_actions - 1``. Continuous (with
    ``action_low``/``action_high``): ``float32 [batch, d]`` uniform in the box.

    Args:
        num_actions: Number of discrete actions (None for continuous actions).
        seed: Seed of the action sampler.
        action_low: Lower Box bounds of a continuous action.
        action_high: Upper Box bounds of a continuous action.
    """

    def __init__(self, num_actions: int | None = None, seed: int = 0, action_low=None, action_high=None):
        self.is_continuous = self.outputs_are_actions = action_low is not None
        if self.is_continuous:
            from kd_rl.models import check_action_bounds

            self.action_low, self.action_high = check_action_bounds(action_low, action_high)
            self.num_actions = None
        else:
            self.num_actions = check_int("num_actions", num_actions)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations) -> np.ndarray:
        if self.is_continuous:
            size = (len(observations), self.action_low.size)
            return self.rng.uniform(self.action_low, self.action_high, size=size).astype(np.float32)
        return self.rng.integers(0, self.num_actions, size=len(observations))

    @classmethod
    def for_env(cls, env_id: str, seed: int = 0, env_kwargs: dict | None = None) -> RandomPolicy:
        """A random policy over ``env_id``'s action space."""

        spec = env_spec(env_id, **(env_kwargs or {}))
        return cls(spec.num_actions, seed, spec.action_low, spec.action_high)


def random_policy_return(env_id: str, episodes: int = 100, seed: int = 0, env_kwargs: dict | None = None) -> float:
    """Mean return of a uniformly random policy over the episodes `run_episodes` plays for ``seed``."""
    policy = RandomPolicy.for_env(env_id, seed, env_kwargs)
    return run_episodes(policy, env_id, episodes, seed=seed, env_kwargs=env_kwargs).mean_return


def normalised_score(student_return: float, teacher_return: float, random_return: float) -> float | None:
    """``(s − r) / (t − r)``: 0 for a random policy, 1 for the teacher; None if ``t == r``.

    Unlike ``s / t`` it means the same for negative returns: a student at −161
    against a teacher at −146 and a random policy at −180 scores 0.56, not 1.10.
    """
    if teacher_return == random_return:
        return None
    return (student_return - random_return) / (teacher_return - random_return)


def model_size_bytes(model) -> int:
    """Size in bytes of a Keras model saved as a ``.keras`` file (a temporary one).

    Raises:
        OSError: Naming the temporary file, if it cannot be written (a full disk).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        try:
            model.save(path)
        except OSError as err:
            raise OSError(err.errno, f"{err.strerror} while writing a temporary copy of the model, {path!r}") from None
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
    env_kwargs: dict | None = None,
    max_steps: int | None = None,
    sensor_noise: bool = True,
) -> dict:
    """`run_episodes` plus what a model has beyond its returns, as plain JSON.

    Keys: env_id, seed, episodes, mean_return, std_return, min_return,
    max_return, mean_length, returns, lengths, and where they apply agreement
    (with ``reference``), params, size_bytes (of a Keras model's ``.keras``
    file), latency_us (batch-1, eager Keras), capped_episodes with
    max_episode_steps when the step cap ended episodes (``max_steps``: as in
    `run_episodes`), and sensor_noise (whether the model's recorded sensor
    noise was added; ``sensor_noise``: as in `run_episodes`) for a model that has it.
    """
    import keras

    stats = run_episodes(
        model, env_id, episodes=episodes, seed=seed, reference=reference, env_kwargs=env_kwargs, max_steps=max_steps,
        sensor_noise=sensor_noise,
    )  # fmt: skip
    out = {"env_id": env_id, "seed": seed, **stats.summary(), "returns": stats.returns, "lengths": stats.lengths}
    if sensor_noise_std(model) is not None:
        out["sensor_noise"] = bool(sensor_noise)
    if isinstance(model, keras.Model):
        from kd_rl.models import count_params

        out["params"] = count_params(model)
        out["size_bytes"] = model_size_bytes(model)
        if latency:
            out["latency_us"] = inference_latency_us(model, observation_dim(model))
    elif hasattr(model, "count_params"):
        out["params"] = int(model.count_params())
    return out


def check_model_fits_env(model, env_id: str, role: str = "model", env_kwargs: dict | None = None) -> tuple[int, int]:
    """Check that ``model`` reads ``env_id``'s observations and acts in its action space.

    Returns:
        ``(obs_dim, output_size)`` of the environment: ``num_actions`` logits
        for discrete actions, ``2d`` Gaussian parameters for continuous ones
        (`kd_rl.envs.EnvSpec.output_size`).

    Raises:
        ValueError: Naming the role, the sizes and the environment on a mismatch
            (observation size, number of actions, discrete against continuous,
            action bounds), the environment's space when kd_rl cannot use it,
            or a Keras 2 (``tf_keras``) model where kd_rl needs Keras 3.
    """
    import keras

    from kd_rl.models import check_keras3

    check_keras3(model, role)
    spec = env_spec(env_id, **env_kwargs_for(model, env_id, env_kwargs))
    obs_dim = spec.obs_dim
    continuous = bool(getattr(model, "is_continuous", False))
    if continuous != spec.is_continuous:
        kind = "a continuous (Gaussian)" if continuous else "a discrete-action"
        raise KdRlError(f"{role} is {kind} policy but {env_id} has {spec.describe()}")
    recorded, made = getattr(model, "preprocessing", None), spec.preprocessing
    if recorded is not None and made is not None and dict(recorded) != made:
        raise KdRlError(
            f"{role} was trained on {env_id} frames preprocessed with {dict(recorded)}, but this environment "
            f"is made with {made}; leave preprocessing out of the environment arguments to use the model's"
        )
    model_shape = getattr(model, "observation_shape", None)
    history = int(getattr(model, "history", 1))
    if history > 1:  # a window of readings: each reading is the environment's observation
        model_shape = None if model_shape is None else tuple(model_shape)[1:]
        if spec.is_image:
            raise KdRlError(f"{role} sees its last {history} vector readings but {env_id} gives images")
    if getattr(model, "conv_layers", ()) and not spec.is_image:
        raise KdRlError(
            f"{role} is convolutional, for images of shape {model_shape}, but {env_id} gives a vector of "
            f"{obs_dim} features"
        )
    shaped = model_shape is not None and len(model_shape) > 1 and spec.obs_shape is not None  # else sizes compare
    if shaped and tuple(model_shape) != tuple(spec.obs_shape):
        same_size = len(model_shape) == len(spec.obs_shape) == 3 and model_shape[:2] == spec.obs_shape[:2]
        raise KdRlError(
            f"{role} takes observations of shape {tuple(model_shape)} but {env_id} gives {tuple(spec.obs_shape)}"
            + (f" ({spec.obs_shape[-1]} channels, not {model_shape[-1]})" if same_size else "")
        )
    model_dim = getattr(model, "observation_dim", None)
    if model_dim is not None:
        model_dim //= history
    if model_dim is None and isinstance(model, keras.Model) and model.built:
        try:
            model_dim = model.input_shape[-1]
        except (AttributeError, ValueError):
            model_dim = None  # a subclassed model has no input shape
    if model_dim is not None and model_dim != obs_dim:
        raise KdRlError(f"{role} expects {model_dim} observation features but {env_id} gives {obs_dim}")
    out = model(np.zeros((1, obs_dim * history), np.float32))
    size = int(np.shape(out)[-1])
    if continuous:
        if getattr(model, "action_dim", None) != spec.action_dim:
            raise KdRlError(f"{role} outputs {model.action_dim}-dimensional actions but {env_id} has {spec.describe()}")
        bounds = (getattr(model, "action_low", None), getattr(model, "action_high", None))
        if bounds[0] is not None and not (
            np.allclose(bounds[0], spec.action_low) and np.allclose(bounds[1], spec.action_high)
        ):
            raise KdRlError(
                f"{role} acts in [{model.action_low.tolist()}, {model.action_high.tolist()}] "
                f"but {env_id} has {spec.describe()}"
            )
    elif size != spec.num_actions:
        raise KdRlError(f"{role} outputs {size} actions but {env_id} has {spec.num_actions}")
    return obs_dim, spec.output_size
