"""Every distillation setting, once: its name, type, default, allowed values and help.

`DistillConfig` is the one config of a distillation run, for one task or
several: ``env_id`` is one Gymnasium id (a single-task run, `kd_rl.distill.distill_policy`)
or a tuple of them (a multi-task run, one teacher per task,
`kd_rl.multitask.distill_multitask`; a tuple of one is a multi-task student of
one task). It checks each setting when it is built. Each field's metadata says
how the command line offers it: the flag, the kind of value, the help text,
whether it applies to single-task runs, multi-task runs or both, and, where a
multi-task run's default differs, that default. `kd_rl.cli` builds ``kd-rl
distill``'s options from it (`cli_settings`), and the docs' option table is
generated from it (`options_markdown`), so a setting is declared here and
nowhere else. `MultiTaskConfig` is kept as a way to write a multi-task
`DistillConfig` with kd_rl 0.2's names.

This module imports neither TensorFlow nor Keras, so that ``kd-rl --help``
stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import KW_ONLY, MISSING, asdict, dataclass, field, fields

import numpy as np

from kd_rl._validate import (
    check_activation,
    check_float,
    check_int,
    check_noise,
    check_seed,
    check_temperature,
    normalise_conv_layers,
    normalise_hidden_units,
    normalise_observation_indices,
)
from kd_rl.errors import KdRlError

__all__ = [
    "COLLECT_MODES",
    "GAUSSIAN_KL_FORMS",
    "LONG_RUN_STEPS",
    "LOSS_NAMES",
    "STRATEGIES",
    "RECURRENT_CELLS",
    "ALGORITHMS",
    "EXPORT_FORMATS",
    "KICKSTART_SCHEDULES",
    "CliSetting",
    "DistillConfig",
    "MultiTaskConfig",
    "TeacherConfig",
    "checkpoint_interval",
    "cli_settings",
    "options_markdown",
]

#: The distillation losses, by name (`kd_rl.losses.get_loss`).
LOSS_NAMES = ("kl", "mse", "nll")
#: The forms of the Gaussian KL a continuous student can minimise (`kd_rl.losses.gaussian_kl_loss`).
GAUSSIAN_KL_FORMS = ("decoupled", "exact")
#: Who acts while states are collected (`kd_rl.data.Collector`).
COLLECT_MODES = ("teacher", "student", "mixed")
#: The learner's ``tf.distribute`` strategies (`kd_rl.distributed.make_strategy`).
STRATEGIES = ("default", "mirrored")
#: The recurrent cells a recurrent student can have (`kd_rl.models.RecurrentStudent`).
RECURRENT_CELLS = ("gru", "lstm")
#: A student's export formats (`kd_rl.export.export_model`, ``kd-rl export --format``).
EXPORT_FORMATS = ("tflite", "tflite-int8", "numpy", "onnx", "tflm", "tflm-float", "c")
#: The teacher-training algorithms (`kd_rl.teachers.train_teacher`).
ALGORITHMS = ("dqn", "ppo", "sac")
#: How a kickstarting weight λ decays over env steps (`kd_rl.teachers.kickstart.Kickstart`).
KICKSTART_SCHEDULES = ("constant", "linear", "exponential")
#: Runs of at least this many steps checkpoint every 10% of them unless told otherwise.
LONG_RUN_STEPS = 50_000


def checkpoint_interval(checkpoint_every: int | None, steps: int) -> int:
    """Env steps between a distillation run's checkpoints (0: none): ``checkpoint_every``, or by default
    every 10% of ``steps`` for runs of at least `LONG_RUN_STEPS` steps and none for shorter ones."""
    if checkpoint_every is not None:
        return checkpoint_every
    return steps // 10 if steps >= LONG_RUN_STEPS else 0


#: A run's learning curve has at most this many periodic points unless told otherwise.
CURVE_POINTS = 10


def default_eval_every(base: int, steps) -> int:
    """A distillation's default ``eval_every``: ``base`` (2,000; multi-task 5,000), or ``steps / CURVE_POINTS``
    rounded up to a thousand where that is larger.

    Each curve point plays ``curve_episodes`` fresh episodes with the student,
    which costs as much environment as collecting a few thousand states; a long
    run (300,000 BipedalWalker states) would otherwise spend more time on its
    curve than on learning. Runs of up to ``CURVE_POINTS · base`` steps keep ``base``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps <= 0:
        return base  # a bad value of steps is reported by its own check
    return max(base, -(-int(steps) // (CURVE_POINTS * 1000)) * 1000)


def _setting(
    default,
    help: str,
    flag: str | None = None,
    kind: str = "str",
    scope: str = "both",
    metavar=None,
    multi=MISSING,
    shown: str | None = None,
):
    """A config field with how the CLI offers it.

    ``kind``: ``positive_int``, ``nonnegative_int``, ``seed``, ``positive_float``,
    ``fraction`` (in [0, 1]), ``hidden`` (``50`` or ``64,64``), ``choice``
    (the allowed values are the module's constant for the field), ``flag``
    (on when given), ``negated_flag`` (off when given), ``json`` or ``str``.
    ``scope``: ``"single"``, ``"multi"`` or ``"both"`` (runs it applies to).
    ``multi``: a multi-task run's default where it differs from ``default``
    (the field is then None until `DistillConfig` fills it in by the kind of run).
    ``shown``: the default as the docs' table words it, where the value alone
    (None) would not say it (``"from the file"``).
    """
    metadata = {"help": help, "flag": flag, "kind": kind, "scope": scope, "metavar": metavar, "shown": shown}
    if multi is MISSING:
        return field(default=default, metadata=metadata)
    return field(default=None, metadata={**metadata, "single_default": default, "multi_default": multi})


_CHOICES = {
    "loss": LOSS_NAMES,
    "collect": COLLECT_MODES,
    "gaussian_kl": GAUSSIAN_KL_FORMS,
    "strategy": STRATEGIES,
    "student_cell": RECURRENT_CELLS,
    "algo": ALGORITHMS,
    "kickstart_schedule": KICKSTART_SCHEDULES,
}


@dataclass
class DistillConfig:
    """Every setting of a live distillation run, one task or several (all recorded in metrics.json).

    A multi-task run (``env_id`` a tuple) gives every task ``steps`` labelled
    states, a buffer of ``buffer_size`` and ``batch_size`` states in every
    update; settings marked single-task are refused for it, and
    ``adapter_units`` for a single-task run. Three defaults differ by the kind
    of run: ``hidden_units`` (50; multi-task 64), ``batch_size`` (128;
    multi-task 64 per task) and ``eval_every`` (2,000; multi-task 5,000;
    `default_eval_every`: longer runs evaluate less often).
    They are filled in when the config is built, so ``dataclasses.replace``
    keeps them: to change the kind of run, build a new config. Every setting
    but ``env_id`` is keyword-only.

    Attributes:
        env_id: Gymnasium environment id; a tuple of them for a multi-task run
            (`env_ids` is always the tuple).
        hidden_units: Student hidden layer width(s); multi-task: the shared trunk's.
        adapter_units: Multi-task: the width of each task's input adapter.
        activation: The new student's hidden-layer activation, a Keras name
            (``"relu"``, the article's; ``"tanh"`` matches a PPO teacher's).
        inherit_normalizer: The new student starts with the teacher's fixed
            observation normalisation (PPO's running mean, std and clip,
            baked into its ``TeacherModel``): the same inputs the teacher
            sees, at no parameter cost. A teacher without one (DQN, SAC)
            leaves the student without one.
        student_obs: Single-task: the features the new student sees (indices,
            or a string of ranges such as ``"0:5,8"``; `kd_rl.models.PolicyModel`'s
            ``observation_indices``); None: all. The teacher always acts and
            labels from the whole observation.
        student_obs_noise: Single-task: the standard deviation of the Gaussian
            sensor noise on the new student's observation (``observation_noise``:
            in the units of its normalised observation), added wherever it
            plays and to its training batches (`kd_rl.models.sensor_noise_std`).
        student_history: Single-task: the new student sees its last K
            readings (`kd_rl.models.PolicyModel`'s ``history``); 1: the current one.
        student_recurrent: Single-task: the units of the new student's
            recurrent cell (`kd_rl.models.RecurrentStudent`), whose state it
            carries through each episode; 0: a memoryless student.
        student_cell: The recurrent cell, ``"gru"`` or ``"lstm"``.
        sequence_length: A recurrent student learns from sequences of this
            many consecutive states (burn-in included), drawn from each
            environment's stream (`kd_rl.data.SequenceBuffer`).
        burn_in: The first states of each sequence only warm the student's
            state up (no loss on them), except those after an episode's start,
            where the state is known to be zero.
        loss: ``"kl"``, ``"mse"`` or ``"nll"``.
        temperature: Softmax temperature for ``"kl"``; None (the default):
            by what the teacher outputs (`kd_rl.losses.default_temperature`):
            0.01 for a DQN's Q-values, which differ by little between actions
            (Rusu et al. 2016 sharpen them so), and 1 for a policy's logits,
            whose distribution is the target (T > 1 softens it, as in
            Hinton et al. 2015). The value used is recorded in metrics.json.
        collect: ``"teacher"``, ``"student"`` (DAgger) or ``"mixed"``.
        steps: Teacher-labelled environment steps (the data budget), per task.
        seed: Seeds TensorFlow, the sampler and the environments.
        learning_rate: Adam learning rate.
        batch_size: States per update.
        buffer_size: Replay buffer capacity.
        num_envs: Environments stepped together while collecting.
        collect_per_round: Env steps collected between rounds of updates.
        updates_per_round: Gradient updates after each collection round.
        epsilon: Random-action probability while collecting.
        beta_start, beta_end: β schedule for ``mixed`` collection.
        eval_every: Env steps between the evaluations that make the curve (0:
            none); None (the default): `default_eval_every`.
        curve_episodes: Episodes of each of those evaluations.
        eval_episodes: Episodes of the final evaluation of both policies.
        eval_cache: Serve the teacher's and the random policy's final
            evaluation from `kd_rl.eval_cache` when it holds them (False: ``--no-cache``).
        checkpoint_every: Env steps between checkpoints (0: none); None (the
            default): every 10% of ``steps`` for runs of at least
            `LONG_RUN_STEPS` steps, none for shorter ones.
        sample_actions: Continuous actions: whoever acts while collecting
            executes an action sampled from its Gaussian, not its
            deterministic action.
        state_dependent_std: Continuous actions: the new student's
            ``log_std`` comes from a Dense head (True) or is one learned value
            per action dimension (False).
        gaussian_kl: Continuous actions, ``loss="kl"``: minimise the
            Gaussian KL in its ``"decoupled"`` form (the default: the means
            pulled at the teacher's standard deviation, see
            `kd_rl.losses.gaussian_kl_loss`) or the ``"exact"`` KL.
        env_kwargs: Passed to ``gymnasium.make`` for every environment of the
            run (collection and evaluations), e.g. ``{"continuous": True}``.
        actors: Ray actors that collect and label in parallel (0: collect in
            this process). Needs ``pip install "kd_rl[distributed]"``; see
            `kd_rl.distributed` and docs/scaling.md.
        ray_address: With ``actors``: a running Ray cluster (``host:port``,
            ``ray://host:port`` or ``"auto"``); None: start a local Ray
            instance with this machine's cores.
        strategy: The learner's ``tf.distribute`` strategy: ``"default"``
            (one device) or ``"mirrored"`` (a ``MirroredStrategy`` over every
            GPU, every task's batch split across them; `kd_rl.distributed.make_strategy`).
    """

    env_id: str | tuple[str, ...] = "CartPole-v1"
    _: KW_ONLY  # every other setting by name
    hidden_units: int | tuple[int, ...] = _setting(
        50, "student hidden layer widths: 50 or 64,64 (multi-task: the shared trunk's)", "--hidden", "hidden",
        multi=(64,),
    )  # fmt: skip
    conv_layers: tuple[tuple[int, int, int], ...] | None = _setting(
        None, "the new student's convolutions for image observations, FILTERS:KERNEL:STRIDE,... (16:3:1); "
        "none: an MLP on the flattened image; multi-task: the first is each game's own", "--conv", "conv",
        shown="the teacher's, for convolutional teachers",
    )  # fmt: skip
    adapter_units: int | None = _setting(
        None, "multi-task: each task's input adapter width", "--adapter", "positive_int", "multi", multi=64
    )
    activation: str = _setting(
        "relu", "the new student's hidden-layer activation, a Keras name (tanh: a PPO teacher's)", "--activation",
        metavar="NAME",
    )  # fmt: skip
    inherit_normalizer: bool = _setting(
        False, "the new student starts with the teacher's fixed observation normalisation (PPO teachers have one; "
        "a new image student divides frames by their largest value without it)",
        "--inherit-normalizer", "flag", "single",
    )  # fmt: skip
    student_obs: tuple[int, ...] | None = _setting(
        None, "the features of the observation the new student sees, indices and start:stop ranges such as 0:5,8 "
        "(it still takes the whole observation and keeps these; the teacher sees all)", "--student-obs", "str",
        "single", metavar="RANGES", shown="all",
    )  # fmt: skip
    student_obs_noise: float = _setting(
        0.0, "Gaussian sensor noise on what the new student sees while it collects, learns and is evaluated: its "
        "standard deviation in the units of the student's normalised observation (times each feature's "
        "observation_std, which --inherit-normalizer gives it; raw units without a normaliser)",
        "--student-obs-noise", "nonnegative_float", "single", metavar="SIGMA",
    )  # fmt: skip
    student_history: int = _setting(
        1, "the new student sees its last K readings of the observation (the features --student-obs keeps, "
        "with the noise of --student-obs-noise), oldest first, zeros before an episode's first: it can estimate "
        "what one reading lacks, such as velocities", "--student-history", "positive_int", "single", metavar="K",
    )  # fmt: skip
    student_recurrent: int = _setting(
        0, "the new student carries a recurrent state of this many units through each episode (a GRU or LSTM "
        "cell between its observation and its Dense layers), learnt on sequences of states; 0: no memory",
        "--student-recurrent", "nonnegative_int", "single", metavar="UNITS",
    )  # fmt: skip
    student_cell: str = _setting(
        "gru", "the recurrent student's cell", "--student-cell", "choice", "single",
    )  # fmt: skip
    sequence_length: int = _setting(
        32, "a recurrent student learns from sequences of this many consecutive states of one environment "
        "(burn-in included); each update learns from about batch-size of their states (those after the burn-in)",
        "--sequence-length", "positive_int", "single", metavar="N",
    )  # fmt: skip
    burn_in: int = _setting(
        8, "the first states of each sequence only warm the recurrent student's state up (no loss on them, "
        "except after an episode's start)", "--burn-in", "nonnegative_int", "single", metavar="N",
    )  # fmt: skip
    loss: str = _setting("kl", "distillation loss", "--loss", "choice")
    temperature: float | None = _setting(
        None, "temperature for kl (> 0); default by the teacher's outputs: 0.01 for Q-values, 1 for logits and "
        "Gaussians (for a Gaussian it scales the teacher's standard deviation)", "--temperature", "positive_float",
        metavar="T",
    )  # fmt: skip
    collect: str = _setting("student", "who acts while states are collected", "--collect", "choice")
    steps: int = _setting(10_000, "teacher-labelled env steps (per task)", "--steps", "positive_int")
    seed: int = _setting(0, "seeds TensorFlow, the sampler, the environments and the evaluations", "--seed", "seed")
    learning_rate: float = _setting(1e-3, "Adam learning rate", "--lr", "positive_float")
    batch_size: int = _setting(
        128, "states per update (per task)", "--batch-size", "positive_int", metavar="N", multi=64
    )
    buffer_size: int = _setting(
        50_000, "replay buffer capacity (per task)", "--buffer-size", "positive_int", metavar="N"
    )
    num_envs: int = _setting(
        8, "environments stepped together while collecting", "--num-envs", "positive_int", metavar="N"
    )
    collect_per_round: int = _setting(
        500, "env steps collected between rounds of updates", "--collect-per-round", "positive_int", metavar="N"
    )
    updates_per_round: int = _setting(
        100, "gradient updates after each collection round", "--updates-per-round", "positive_int", metavar="N"
    )
    epsilon: float = _setting(0.0, "random-action probability while collecting", "--epsilon", "fraction")
    beta_start: float = _setting(1.0, "mixed collection: the teacher's share at the start", "--beta-start", "fraction")
    beta_end: float = _setting(0.0, "mixed collection: the teacher's share at the end", "--beta-end", "fraction")
    eval_every: int = _setting(
        2_000, "env steps between the evaluations of the learning curve (0: none); by default this, or --steps / 10 "
        "rounded up to a thousand where that is larger (at most 10 points)", "--eval-every", "nonnegative_int",
        metavar="N", multi=5_000,
    )  # fmt: skip
    curve_episodes: int = _setting(
        10, "episodes of each curve evaluation", "--curve-episodes", "positive_int", metavar="N"
    )
    eval_episodes: int = _setting(
        100, "episodes of the final evaluation of teacher, student and a random policy", "--eval-episodes",
        "positive_int", metavar="N",
    )  # fmt: skip
    eval_cache: bool = _setting(
        True, "reuse the teacher's and the random policy's final-evaluation returns from the evaluation cache "
        "(kd_rl.eval_cache; keyed by the teacher's content, the environment and the episodes)", "--no-cache",
        "negated_flag",
    )  # fmt: skip
    checkpoint_every: int | None = _setting(
        None, f"env steps between checkpoints (0: none); default every 10%% of --steps from {LONG_RUN_STEPS:,} steps, "
        "else none", "--checkpoint-every", "nonnegative_int", metavar="N",
    )  # fmt: skip
    sample_actions: bool = _setting(
        False, "continuous actions: execute actions sampled from the acting policy's Gaussian while collecting",
        "--sample-actions", "flag", "single",
    )  # fmt: skip
    state_dependent_std: bool = _setting(
        True, "continuous actions: the student's log-std is one learned value per action dimension",
        "--constant-std", "negated_flag",
    )  # fmt: skip
    gaussian_kl: str = _setting(
        "decoupled", "continuous actions, --loss kl: the Gaussian KL in its decoupled form (the means pulled at the "
        "teacher's standard deviation) or the exact KL", "--gaussian-kl", "choice",
    )  # fmt: skip
    env_kwargs: dict | None = _setting(
        None, "arguments for gymnasium.make, a JSON object, e.g. '{\"continuous\": true}'", "--env-kwargs", "json",
        "single", metavar="JSON",
    )  # fmt: skip
    actors: int = _setting(
        0, "Ray actors that collect and label in parallel (0: this process); needs kd_rl[distributed]", "--actors",
        "nonnegative_int", "single", metavar="N",
    )  # fmt: skip
    ray_address: str | None = _setting(
        None, "with --actors: a running Ray cluster, host:port as `ray start --head` prints it (default: a local one)",
        "--ray-address", scope="single",
    )  # fmt: skip
    strategy: str = _setting(
        "default", "the learner's tf.distribute strategy: default (one device) or mirrored (every GPU of this host, "
        "else every logical CPU device)",
        "--strategy", "choice",
    )  # fmt: skip

    def __post_init__(self):
        self._check_tasks()
        multi = self.is_multitask
        for f in fields(self):  # the defaults that differ by the kind of run
            if "multi_default" in f.metadata and getattr(self, f.name) is None:
                default = f.metadata["multi_default" if multi else "single_default"]
                if f.name == "eval_every":
                    default = default_eval_every(default, self.steps)
                setattr(self, f.name, default)
        self.hidden_units = normalise_hidden_units(self.hidden_units)
        if self.conv_layers is not None:
            self.conv_layers = normalise_conv_layers(self.conv_layers)
        self.activation = check_activation(self.activation)
        self.inherit_normalizer = bool(self.inherit_normalizer)
        self.student_obs = normalise_observation_indices(self.student_obs)
        self.student_obs_noise = check_noise("student_obs_noise", self.student_obs_noise)
        self.student_history = check_int("student_history", self.student_history)
        self.student_recurrent = check_int("student_recurrent", self.student_recurrent, minimum=0)
        self.sequence_length = check_int("sequence_length", self.sequence_length)
        self.burn_in = check_int("burn_in", self.burn_in, minimum=0)
        if self.student_recurrent and self.student_history > 1:
            raise KdRlError(
                f"student_history={self.student_history} with student_recurrent={self.student_recurrent}: a "
                "recurrent student remembers through its state; give a history or a recurrent student, not both"
            )
        if self.student_cell != "gru" and not self.student_recurrent:
            raise KdRlError(
                f"student_cell={self.student_cell!r} is the cell of a recurrent student: give student_recurrent "
                "(--student-recurrent UNITS) too"
            )
        if self.student_recurrent and self.burn_in >= self.sequence_length:
            raise KdRlError(
                f"burn_in={self.burn_in} must be below sequence_length={self.sequence_length}: the steps after "
                "the burn-in are the ones learnt from"
            )
        if self.temperature is not None:
            self.temperature = check_temperature(self.temperature)
        for name in ("loss", "collect", "gaussian_kl", "strategy", "student_cell"):
            allowed = _CHOICES[name]
            if getattr(self, name) not in allowed:
                raise KdRlError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in (
            "steps", "batch_size", "buffer_size", "num_envs", "collect_per_round", "updates_per_round",
            "curve_episodes", "eval_episodes",
        ):  # fmt: skip
            setattr(self, name, check_int(name, getattr(self, name)))
        self.eval_every = check_int("eval_every", self.eval_every, minimum=0)
        self.seed = check_seed(self.seed)
        self.checkpoint_every = check_int("checkpoint_every", self.checkpoint_every, minimum=0, allow_none=True)
        self.actors = check_int("actors", self.actors, minimum=0)
        self.adapter_units = check_int("adapter_units", self.adapter_units, allow_none=not multi)
        for name in ("learning_rate", "epsilon", "beta_start", "beta_end"):
            setattr(self, name, check_float(name, getattr(self, name)))
        if self.learning_rate <= 0:
            raise KdRlError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        for name in ("epsilon", "beta_start", "beta_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise KdRlError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("sample_actions", "state_dependent_std"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise KdRlError(f"{name} must be True or False, got {getattr(self, name)!r}")
            setattr(self, name, bool(getattr(self, name)))
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise KdRlError(f"env_kwargs must be a dict of gymnasium.make arguments or None, got {self.env_kwargs!r}")
        if self.ray_address is not None and not self.actors:
            raise KdRlError(f"ray_address={self.ray_address!r} needs actors >= 1 (collection on a Ray cluster)")
        self._check_scope()

    def _check_tasks(self) -> None:
        if isinstance(self.env_id, str):
            if not self.env_id:
                raise KdRlError("env_id must be an environment id, got ''")
            return
        if isinstance(self.env_id, list | tuple):
            self.env_id = tuple(self.env_id)
        if (
            not isinstance(self.env_id, tuple)
            or not self.env_id
            or not all(isinstance(e, str) and e for e in self.env_id)
        ):
            raise KdRlError(f"env_id must be an environment id or a tuple of them (multi-task), got {self.env_id!r}")
        repeated = sorted({e for e in self.env_id if self.env_id.count(e) > 1})
        if repeated:
            raise KdRlError(f"each environment may be given once; repeated: {repeated}")

    def _check_scope(self) -> None:
        """Refuse a setting given for the other kind of run (single-task settings keep their defaults otherwise)."""
        kind = "multi" if self.is_multitask else "single"
        for f in fields(self):
            scope = f.metadata.get("scope", "both")
            if scope in ("both", kind):
                continue
            if kind == "single" and getattr(self, f.name) is not None:
                raise KdRlError(
                    f"{f.name}={getattr(self, f.name)!r} is for multi-task runs (env_id a tuple of environment ids); "
                    f"a single-task config leaves it None"
                )
            if kind == "multi" and getattr(self, f.name) != f.default:
                raise KdRlError(f"{f.name} is for single-task runs, not multi-task ones (env_id {self.env_id!r})")

    @property
    def is_multitask(self) -> bool:
        """Whether this is a multi-task run: ``env_id`` a tuple of ids (even of one)."""
        return not isinstance(self.env_id, str)

    @property
    def env_ids(self) -> tuple[str, ...]:
        """The run's environment ids, as a tuple (of one for a single-task run)."""
        return self.env_id if self.is_multitask else (self.env_id,)

    @property
    def trunk_units(self) -> tuple[int, ...]:
        """A multi-task student's shared trunk: ``hidden_units``."""
        return self.hidden_units

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints: ``checkpoint_every``, or its default when None."""
        return checkpoint_interval(self.checkpoint_every, self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        if self.conv_layers is not None:
            d["conv_layers"] = [list(c) for c in self.conv_layers]
        if self.student_obs is not None:
            d["student_obs"] = list(self.student_obs)
        if self.is_multitask:
            d["env_id"] = list(self.env_id)
        return d


def MultiTaskConfig(  # noqa: N802 (kd_rl 0.2's class, now a way to write a multi-task DistillConfig)
    env_ids: str | tuple[str, ...] = ("CartPole-v1", "LunarLander-v3"), trunk_units=None, **settings
) -> DistillConfig:
    """A multi-task `DistillConfig`: ``env_ids`` (a tuple, even of one) and ``trunk_units`` are kd_rl 0.2's names
    for ``env_id`` and ``hidden_units``; other settings as in `DistillConfig`, with a multi-task run's defaults."""
    if trunk_units is not None:
        settings["hidden_units"] = trunk_units
    return DistillConfig(env_id=(env_ids,) if isinstance(env_ids, str) else tuple(env_ids), **settings)


@dataclass
class TeacherConfig:
    """Every setting of a teacher-training run (`kd_rl.teachers.train_teacher`, ``kd-rl train-teacher``).

    The hyperparameters themselves are data: ``kd_rl/hyperparams/{algo}.yml``
    (RL-Zoo's, per environment), which ``hidden_units``, ``overrides`` and
    ``hyperparams_file`` override; these are the run's settings around them.
    ``kickstart`` is a zoo name or a ``.keras`` path (in Python also a Keras 3
    kd_rl policy). Checked when built; what needs the hyperparameter file or
    the environment is checked by `train_teacher` before anything is written.
    """

    env_id: str = "CartPole-v1"
    algo: str | None = _setting(
        None, "dqn: Discrete actions; sac: Box actions; ppo: either (default: the best for --env in "
        "kd_rl/hyperparams/best.yml, else dqn for Discrete and sac for Box actions)", "--algo", "choice",
        shown="see meaning",
    )  # fmt: skip
    _: KW_ONLY  # every setting after env_id and algo by name
    hyperparams_file: str | None = _setting(
        None, "your own YAML file in the form of kd_rl/hyperparams/ALGO.yml: its entry for --env (else its "
        "'default') replaces the shipped values key by key", "--hyperparams", metavar="FILE",
    )  # fmt: skip
    steps: int | None = _setting(
        None, "environment steps (PPO rounds up to whole rollouts)", "--steps", "positive_int", metavar="STEPS",
        shown="from the file",
    )  # fmt: skip
    seed: int = _setting(0, "seeds TensorFlow, NumPy, the environments and the evaluations", "--seed", "seed")
    hidden_units: int | tuple[int, ...] | None = _setting(
        None, "hidden layer widths: 100 or 256,256", "--hidden", "hidden", shown="from the file"
    )
    overrides: dict | None = _setting(
        None, "other hyperparameters to override, a JSON object, e.g. '{\"learning_rate\": 0.0005}'", "--overrides",
        "json", metavar="JSON",
    )  # fmt: skip
    eval_every: int | None = _setting(
        None, "environment steps between periodic evaluations", "--eval-every", "positive_int", metavar="N",
        shown="from the file",
    )  # fmt: skip
    eval_episodes: int = _setting(
        100, "episodes of the final evaluation of the exported teacher", "--eval-episodes", "positive_int", metavar="N"
    )
    checkpoint_every: int | None = _setting(
        None, "environment steps between checkpoints (none: no checkpoints)", "--checkpoint-every", "positive_int",
        metavar="N",
    )  # fmt: skip
    env_kwargs: dict | None = _setting(
        None, "arguments for gymnasium.make, a JSON object, e.g. '{\"continuous\": true}', used for training and "
        "every evaluation", "--env-kwargs", "json", metavar="JSON",
    )  # fmt: skip
    stop_return: float | None = _setting(
        None, "stop at the first periodic evaluation whose mean return reaches R (e.g. the environment's reward "
        "threshold, as Stable-Baselines3's StopTrainingOnRewardThreshold)", "--stop-return", "float", metavar="R",
    )  # fmt: skip
    kickstart: object = _setting(
        None, "also learn from this teacher (zoo name or .keras file): the loss gains λ·KL(teacher ‖ agent)",
        "--kickstart", metavar="TEACHER",
    )  # fmt: skip
    kickstart_weight: float | None = _setting(
        None, "the distillation weight λ0 at step 0 (>= 0)", "--kickstart-weight", "nonnegative_float",
        metavar="λ0", shown="1",
    )  # fmt: skip
    kickstart_schedule: str | None = _setting(
        None, "how λ decays over env steps", "--kickstart-schedule", "choice", shown="linear"
    )
    kickstart_until: int | None = _setting(
        None, "env steps at which linear λ reaches 0, exponential 1%% of λ0", "--kickstart-until", "positive_int",
        metavar="STEPS", shown="half of --steps",
    )  # fmt: skip
    kickstart_temperature: float | None = _setting(
        None, "the kickstarting teacher's temperature", "--kickstart-temperature", "positive_float", metavar="T",
        shown="by its outputs: 0.01 for Q-values, 1 for logits and Gaussians",
    )  # fmt: skip

    def __post_init__(self):
        if not isinstance(self.env_id, str) or not self.env_id:
            raise KdRlError(f"env_id must be a non-empty string, got {self.env_id!r}")
        for name in ("algo", "kickstart_schedule"):
            value = getattr(self, name)
            if value is not None and value not in _CHOICES[name]:
                raise KdRlError(f"{name} must be one of {list(_CHOICES[name])}, got {value!r}")
        if self.hidden_units is not None:
            self.hidden_units = normalise_hidden_units(self.hidden_units)
        for name in ("steps", "eval_every", "checkpoint_every", "kickstart_until"):  # None: by the file or default
            if getattr(self, name) is not None:
                setattr(self, name, check_int(name, getattr(self, name)))
        self.eval_episodes = check_int("eval_episodes", self.eval_episodes)
        self.seed = check_seed(self.seed)
        for name in ("overrides", "env_kwargs"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Mapping):
                raise KdRlError(f"{name} must be a mapping (a JSON object), got {value!r}")
            setattr(self, name, None if value is None else dict(value))
        if self.stop_return is not None:
            self.stop_return = check_float("stop_return", self.stop_return)
        if self.kickstart_weight is not None:
            self.kickstart_weight = check_float("kickstart_weight", self.kickstart_weight)
            if self.kickstart_weight < 0:
                raise KdRlError(f"kickstart_weight must be a finite number >= 0, got {self.kickstart_weight!r}")
        if self.kickstart_temperature is not None:
            self.kickstart_temperature = check_temperature(self.kickstart_temperature)
        given = [n for n in ("kickstart_weight", "kickstart_schedule", "kickstart_until", "kickstart_temperature")
                 if getattr(self, n) is not None]  # fmt: skip
        if given and self.kickstart is None:
            raise KdRlError(f"kickstart settings {given} need a kickstart teacher (kickstart=..., --kickstart)")

    def kickstart_options(self) -> dict:
        """The kickstart settings given (`kd_rl.teachers.kickstart.Kickstart`'s keywords)."""
        names = {"weight": self.kickstart_weight, "schedule": self.kickstart_schedule,
                 "until": self.kickstart_until, "temperature": self.kickstart_temperature}  # fmt: skip
        return {k: v for k, v in names.items() if v is not None}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.hidden_units is not None:
            d["hidden_units"] = list(self.hidden_units)
        if d["hyperparams_file"] is not None:
            d["hyperparams_file"] = str(d["hyperparams_file"])
        if isinstance(d["kickstart"], os.PathLike):
            d["kickstart"] = str(d["kickstart"])
        elif d["kickstart"] is not None and not isinstance(d["kickstart"], str):
            d["kickstart"] = getattr(d["kickstart"], "name", repr(d["kickstart"]))  # a model object: its name
        return d


@dataclass(frozen=True)
class CliSetting:
    """A config setting as ``kd-rl distill`` offers it (from its field's metadata)."""

    name: str
    flag: str
    kind: str
    help: str
    scope: str
    metavar: str | None
    single_default: object
    multi_default: object
    choices: tuple | None
    shown: str | None = None


def cli_settings(config_class: type = None) -> list[CliSetting]:
    """Every setting a command offers, in the order of its config's fields.

    ``config_class``: `DistillConfig` (``kd-rl distill``, the default) or
    `TeacherConfig` (``kd-rl train-teacher``).
    """
    out = []
    for f in fields(config_class or DistillConfig):
        meta = f.metadata
        if not meta.get("flag"):
            continue
        single = meta.get("single_default", f.default)
        multi = meta.get("multi_default", f.default)
        out.append(
            CliSetting(
                name=f.name, flag=meta["flag"], kind=meta["kind"], help=meta["help"], scope=meta["scope"],
                metavar=meta["metavar"], single_default=MISSING if meta["scope"] == "multi" else single,
                multi_default=MISSING if meta["scope"] == "single" else multi, choices=_CHOICES.get(f.name),
                shown=meta.get("shown"),
            )
        )  # fmt: skip
    return out


def _shown(value) -> str:
    if value is MISSING:
        return "—"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _option(s: CliSetting) -> str:
    if s.kind in ("flag", "negated_flag"):
        return f"`{s.flag}`"
    value = "{" + ",".join(s.choices) + "}" if s.choices else (s.metavar or s.name.upper())
    return f"`{s.flag} {value}`"


def options_markdown(config_class: type = None) -> str:
    """The Markdown table of a command's config options (docs/cli.md holds it; `scripts/options_table.py`).

    `DistillConfig` (the default): option, default, multi-task default and
    meaning; `TeacherConfig`: option, default and meaning.
    """
    config_class = config_class or DistillConfig
    settings = cli_settings(config_class)
    if config_class is not DistillConfig:
        rows = ["| option | default | meaning |", "|---|---|---|"]
        for s in settings:
            default = "off" if s.kind in ("flag", "negated_flag") else (s.shown or _shown(s.single_default))
            default = default if s.shown else f"`{default}`"
            rows.append(f"| {_option(s)} | {default} | {s.help.replace('%%', '%')} |")
        return "\n".join(rows)
    rows = ["| option | default | multi-task default | meaning |", "|---|---|---|---|"]
    for s in settings:
        if s.kind in ("flag", "negated_flag"):
            default, multi = "off", "off" if s.scope != "single" else "—"
        else:
            default = _shown(s.single_default) if s.scope != "multi" else "—"
            multi = _shown(s.multi_default) if s.scope != "single" else "—"
        meaning = s.help.replace("%%", "%") + {"single": " (single-task runs)", "multi": "", "both": ""}[s.scope]
        default, multi = (f"`{value}`" if value != "—" else value for value in (default, multi))
        if s.shown:  # words, not a value: shown without code marks
            default, multi = (s.shown if value != "—" else value for value in (default, multi))
        rows.append(f"| {_option(s)} | {default} | {multi} | {meaning} |")
    return "\n".join(rows)
