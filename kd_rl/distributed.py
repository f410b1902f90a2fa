"""Scale-out: collection on Ray actors, the learner under ``tf.distribute``.

Collecting states and labelling them with the teacher dominates a
distillation run once the teacher is large or the simulator slow. Two kept,
current engines take the two halves:

* **Collection on Ray actors** (`DistributedCollector`): ``actors`` Ray actors,
  each with its own `kd_rl.data.Collector` (its own environments, a copy of
  the teacher and of the student), collect and label a share of every round.
  Before each round the learner broadcasts the student's current weights once
  through Ray's object store. The collector has `Collector`'s contract,
  ``collect(n) -> (observations, teacher_logits)``, so `distill_policy`'s loop
  does not change. Ray is optional (``pip install "kd_rl[distributed]"``) and
  imported only when ``actors > 0``.
* **The learner under tf.distribute** (`make_strategy`, then
  `kd_rl.distill.make_distill_step` with ``strategy=``): the update runs
  under a ``MirroredStrategy`` over a host's devices, each replica taking an
  equal slice of the global batch; Keras sums the replicas' gradients, so the
  update equals the single-device one up to float rounding.

Seeds: actor ``i`` of a run seeded ``seed`` seeds its collector with
`actor_seed` ``(seed, i)``, so a run is reproducible given the actor count
(a different count collects different episodes). A replaced actor gets a new
seed ``actor_seed(seed, i, generation)``.

Example:
    >>> config = DistillConfig(actors=2)  # doctest: +SKIP
    >>> student, metrics = distill_policy(teacher, config)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Sequence

import numpy as np

from kd_rl._validate import check_int
from kd_rl.config import STRATEGIES
from kd_rl.errors import KdRlError, MissingDependency

__all__ = [
    "INSTALL_HINT",
    "STRATEGIES",
    "ActorLostError",
    "DistributedCollector",
    "actor_seed",
    "check_ray_address",
    "check_ray_ready",
    "connect_ray",
    "make_strategy",
    "require_ray",
    "split_evenly",
]

#: The command that installs Ray for kd_rl.
INSTALL_HINT = 'pip install "kd_rl[distributed]"'


class ActorLostError(ConnectionError):
    """A collection actor died more often than it may be replaced (the run's checkpoint resumes it)."""


# --------------------------------------------------------------------------
# Ray: import, connection, seeds
# --------------------------------------------------------------------------


def require_ray():
    """Import and return ``ray``, or raise a one-line ``ImportError`` naming the install command."""
    try:
        import ray
    except ImportError:
        raise MissingDependency(f"actors > 0 needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Raise unless a Ray head answers at ``address`` (``host:port`` or ``ray://host:port``).

    ``"auto"`` (a cluster started on this machine with ``ray start``) is left
    to Ray. The check is a TCP connection, made before anything is written,
    so that a mistyped address fails in seconds instead of in Ray's retries.

    Raises:
        ValueError: If ``address`` is not ``host:port``, ``ray://host:port`` or ``"auto"``.
        ConnectionError: If nothing listens there.
    """
    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise KdRlError(f"ray_address must be host:port, ray://host:port or 'auto', got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise ConnectionError(
            f"cannot reach a Ray cluster at ray_address={address!r} ({err}); start one with `ray start --head` "
            "and pass the address it prints"
        ) from None


def check_ray_ready(address: str | None = None) -> None:
    """Raise now, before a run writes anything, if Ray is missing or ``address`` does not answer.

    Raises:
        ImportError: If Ray is not installed (naming the install command).
        ValueError, ConnectionError: As `check_ray_address`.
    """
    require_ray()
    if address is not None:
        check_ray_address(address)


def connect_ray(address: str | None = None, actors: int = 1) -> bool:
    """Connect to Ray: the cluster at ``address``, or a new local instance when None.

    A local instance gets the machine's cores, or ``actors`` CPUs if that is
    more (actors then share cores). An already initialised Ray is used as is.

    Returns:
        True if this call started (or joined) Ray and should shut it down, False if Ray was already up.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    # TensorFlow's C++ start-up lines, once per actor, say nothing to a kd_rl user.
    quiet = {"runtime_env": {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "3"}}, "logging_level": logging.ERROR}
    if address is None:
        # The actors' own output stays in Ray's session logs (/tmp/ray/session_latest/logs); their errors
        # reach the learner as exceptions.
        cpus = max(os.cpu_count() or 1, actors)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, **quiet)
    else:
        check_ray_address(address)
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as err:
            raise ConnectionError(_ray_connect_message(address, err)) from None
    return True


def _ray_connect_message(address: str, err: Exception) -> str:
    """One line for a Ray head that answers at ``address`` but refuses this process."""
    message = f"Ray did not accept a connection to ray_address={address!r}: {str(err).splitlines()[0]}"
    if os.environ.get("RAY_AUTH_MODE", "disabled") != "token":
        # Ray 2.60's `ray start --head` turns token authentication on, but a client sends its
        # token only with RAY_AUTH_MODE=token: measured with the docs/scaling.md recipe.
        message += (
            "; a cluster started with `ray start` (Ray >= 2.60 turns token authentication on) also needs "
            "RAY_AUTH_MODE=token in this shell, with the cluster's token in ~/.ray/auth_token or "
            "RAY_AUTH_TOKEN (see docs/scaling.md)"
        )
    return message


def actor_seed(seed: int, index: int, generation: int = 0) -> int:
    """The collector seed of actor ``index`` (its ``generation``-th replacement): a 31-bit int.

    Derived with NumPy's ``SeedSequence([seed, index, generation])``, so
    actors draw unrelated episodes and a run is reproducible given its actor count.
    """
    return int(np.random.SeedSequence([seed, index, generation]).generate_state(1)[0] >> 1)


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` shares differing by at most one, the larger first."""
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _model_bytes(model) -> bytes | object:
    """A Keras model as the bytes of its ``.keras`` file (anything else as is, for Ray to pickle)."""
    import keras

    if not isinstance(model, keras.Model):
        return model
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _load_model(blob):
    if not isinstance(blob, bytes):
        return blob
    import keras  # after `import kd_rl`, keras.saving.load_model knows every kd_rl class

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        with open(path, "wb") as f:
            f.write(blob)
        return keras.saving.load_model(path, compile=False)


class _CollectionWorker:
    """The body of one Ray actor: a `Collector` with its own teacher and student copies."""

    def __init__(self, teacher, student, collector_kwargs: dict, threads: int = 1):
        import kd_rl  # noqa: F401  (first, as everywhere: it sets up the Kerases before TensorFlow loads)

        # isort: split
        import tensorflow as tf

        # One actor per core: TensorFlow's own thread pools would only fight each other.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        from kd_rl.data import Collector

        self.student = _load_model(student)
        self.collector = Collector(teacher=_load_model(teacher), student=self.student, **collector_kwargs)

    def ready(self) -> int:
        return os.getpid()

    def set_student_weights(self, weights) -> None:
        self.student.set_weights(weights)

    def collect(self, num_steps: int, steps_so_far: int):
        # The β schedule of `mixed` collection follows the whole run's progress, not this actor's.
        self.collector.steps = steps_so_far
        return self.collector.collect(num_steps)

    def episode_returns(self) -> list[float]:
        return list(self.collector.episode_returns)


class DistributedCollector:
    """`kd_rl.data.Collector` spread over ``actors`` Ray actors: ``collect(n) -> (observations, logits)``.

    Each call splits ``n`` env steps into near-equal shares (`split_evenly`),
    broadcasts the student's current weights (``student``/``mixed`` modes:
    one ``ray.put``, read by every actor), and collects the shares in
    parallel; the result is the actors' outputs concatenated in actor order.
    An actor that dies is replaced (a new seed, the current weights) up to
    ``max_replacements`` times in all; after that `ActorLostError`.

    ``env_id``, ``teacher``, ``student``, ``mode``, ``num_envs``, ``epsilon``,
    ``beta``, ``total_steps``, ``env_kwargs`` and ``sample_actions`` are as for
    `Collector`; each actor steps ``num_envs`` environments of its own. Keras
    models are shipped as ``.keras`` bytes (they must be serialisable).

    Args:
        seed: Actor ``i`` seeds its collector with ``actor_seed(seed, i)``.
        actors: Number of Ray actors (>= 1).
        ray_address: A running cluster (``host:port``, ``ray://host:port`` or
            ``"auto"``); None: a local Ray instance is started (and shut down
            by `close`). An already initialised Ray is used as it is.
        max_replacements: Dead actors replaced over the collector's life.
        actor_options: Passed to Ray's ``.options`` (e.g. ``{"num_cpus": 2}``);
            by default each actor asks for one CPU.

    Raises:
        ImportError: If Ray is not installed (naming the install command).
        ConnectionError: If ``ray_address`` cannot be reached.
        ValueError: For ``actors < 1`` or anything `Collector` refuses.
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
        beta=None,
        total_steps: int = 10_000,
        env_kwargs: dict | None = None,
        sample_actions: bool = False,
        actors: int = 2,
        ray_address: str | None = None,
        max_replacements: int = 2,
        actor_options: dict | None = None,
    ):
        from kd_rl.data import COLLECT_MODES, BetaSchedule

        self.actors = check_int("actors", actors)
        self.max_replacements = check_int("max_replacements", max_replacements, minimum=0)
        if mode not in COLLECT_MODES:
            raise KdRlError(f"collect mode must be one of {', '.join(COLLECT_MODES)}, got {mode!r}")
        if mode != "teacher" and student is None:
            raise KdRlError(f"collect mode {mode!r} needs a student")
        self.mode, self.seed = mode, int(seed)
        self.total_steps = check_int("total_steps", total_steps)
        self._student = student
        self._kwargs = dict(
            env_id=env_id, mode=mode, num_envs=check_int("num_envs", num_envs), epsilon=epsilon,
            beta=beta or BetaSchedule(), total_steps=self.total_steps, env_kwargs=env_kwargs,
            sample_actions=sample_actions,
        )  # fmt: skip
        self._ray = require_ray()
        self._started = connect_ray(ray_address, self.actors)
        self._closed = False
        try:
            ray = self._ray
            self._remote = ray.remote(_CollectionWorker).options(**{"num_cpus": 1, **(actor_options or {})})
            self._teacher_ref = ray.put(_model_bytes(teacher))
            self._student_ref = ray.put(_model_bytes(student)) if student is not None else None
            self._generations = [0] * self.actors
            self._workers = [self._new_worker(i) for i in range(self.actors)]
            self._get([w.ready.remote() for w in self._workers])
        except BaseException:
            self.close()
            raise
        self.replacements = 0
        self.steps = 0  # env steps taken so far (all actors)

    def _new_worker(self, index: int):
        kwargs = dict(self._kwargs, seed=actor_seed(self.seed, index, self._generations[index]))
        return self._remote.remote(self._teacher_ref, self._student_ref, kwargs)

    def _get(self, refs):
        """``ray.get``, re-raising a `ValueError` raised in an actor as itself (bad input, not a crash)."""
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, ValueError):
                raise KdRlError(str(cause)) from None
            raise

    def _broadcast(self, workers) -> None:
        if self._student is None or self.mode == "teacher":
            return
        weights = self._ray.put([np.asarray(w) for w in self._student.get_weights()])
        for w in workers:
            w.set_student_weights.remote(weights)  # an actor runs its calls in order: before its collect

    def collect(self, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Take exactly ``num_steps`` env steps over the actors, labelling every state visited.

        Returns:
            ``(observations float32 [num_steps, obs_dim], teacher_logits float32 [num_steps, num_actions])``,
            actor 0's share first.
        """
        shares = split_evenly(check_int("num_steps", num_steps), self.actors)
        self._broadcast(self._workers)
        refs = [w.collect.remote(k, self.steps) if k else None for w, k in zip(self._workers, shares)]
        results = []
        for i, (ref, k) in enumerate(zip(refs, shares)):
            while ref is not None:
                try:
                    results.append(self._get(ref))
                    break
                except self._ray.exceptions.RayActorError as err:
                    ref = self._replace(i, k, err)
        self.steps += num_steps
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])

    def _replace(self, index: int, num_steps: int, err):
        """Start a new actor in place of dead actor ``index`` and resubmit its share."""
        if self.replacements >= self.max_replacements:
            raise ActorLostError(
                f"collection actor {index} died and {self.replacements} of max_replacements="
                f"{self.max_replacements} replacements are used up ({type(err).__name__}); the run's last "
                "checkpoint continues it with --resume"
            ) from None
        self.replacements += 1
        self._generations[index] += 1
        worker = self._new_worker(index)
        self._workers[index] = worker
        self._broadcast([worker])
        return worker.collect.remote(num_steps, self.steps)

    @property
    def episode_returns(self) -> list[float]:
        """Returns of the episodes the live actors finished, actor by actor."""
        return [r for rs in self._ray.get([w.episode_returns.remote() for w in self._workers]) for r in rs]

    def close(self) -> None:
        """Stop the actors, and the local Ray instance if this collector started it."""
        if self._closed:
            return
        self._closed = True
        for w in getattr(self, "_workers", []):
            self._ray.kill(w)
        if self._started:
            self._ray.shutdown()


# --------------------------------------------------------------------------
# The learner under tf.distribute
# --------------------------------------------------------------------------


def make_strategy(name: str = "default", devices: Sequence[str] | None = None):
    """The learner's ``tf.distribute`` strategy.

    Args:
        name: ``"default"``: TensorFlow's default strategy (one device, no
            change to anything); ``"mirrored"``: a ``MirroredStrategy`` over
            ``devices``, by default every GPU, else every logical CPU device
            (one, unless ``tf.config.set_logical_device_configuration`` split
            the CPU).
        devices: Device names, e.g. ``["/cpu:0", "/cpu:1"]``.

    A process gets one mirrored strategy per set of devices: a second call
    returns the first's, so that several mirrored runs in one process (a
    notebook) do not mix up their all-reduces.

    Raises:
        ValueError: For an unknown name.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise KdRlError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if devices is None:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = devices or [d.name for d in tf.config.list_logical_devices("CPU")]
    # One strategy per set of devices for the whole process: two MirroredStrategy objects over the same
    # devices number their collective all-reduces alike, and the second run's all-reduce then meets the
    # first's (a "Shape mismatch in the collective instance" error on any second mirrored run).
    # Names spelled differently ("/cpu:0", "/job:localhost/replica:0/task:0/device:CPU:0") are one device.
    local = tf.DeviceSpec(job="localhost", replica=0, task=0)
    key = tuple(sorted(local.make_merged_spec(tf.DeviceSpec.from_string(d)).to_string() for d in devices))
    if key not in _MIRRORED:
        _MIRRORED[key] = tf.distribute.MirroredStrategy(devices=list(devices))
    return _MIRRORED[key]


#: `make_strategy`'s mirrored strategies, by their devices.
_MIRRORED: dict = {}
