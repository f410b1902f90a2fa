"""Every distillation setting, once: its name, type, default, allowed values and help.

`DistillConfig` (one teacher, one environment) and `MultiTaskConfig` (one
teacher per environment, one student) check each setting when they are built.
Each field's metadata says how the command line offers it: the flag, the kind
of value, the help text and whether it applies to single-task runs, multi-task
runs or both. `kd_rl.cli` builds ``kd-rl distill``'s options from it
(`cli_settings`), and the docs' option table is generated from it
(`options_markdown`), so a setting is declared here and nowhere else.

This module imports neither TensorFlow nor Keras, so that ``kd-rl --help``
stays fast.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from kd_rl._validate import check_activation, check_int, check_seed, check_temperature, normalise_hidden_units
from kd_rl.errors import KdRlError

__all__ = [
    "COLLECT_MODES",
    "GAUSSIAN_KL_FORMS",
    "LONG_RUN_STEPS",
    "LOSS_NAMES",
    "STRATEGIES",
    "CliSetting",
    "DistillConfig",
    "MultiTaskConfig",
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
#: Runs of at least this many steps checkpoint every 10% of them unless told otherwise.
LONG_RUN_STEPS = 50_000


def checkpoint_interval(checkpoint_every: int | None, steps: int) -> int:
    """Env steps between a distillation run's checkpoints (0: none): ``checkpoint_every``, or by default
    every 10% of ``steps`` for runs of at least `LONG_RUN_STEPS` steps and none for shorter ones."""
    if checkpoint_every is not None:
        return checkpoint_every
    return steps // 10 if steps >= LONG_RUN_STEPS else 0


def _setting(default, help: str, flag: str | None = None, kind: str = "str", scope: str = "both", metavar=None):
    """A config field with how the CLI offers it.

    ``kind``: ``positive_int``, ``nonnegative_int``, ``seed``, ``positive_float``,
    ``fraction`` (in [0, 1]), ``hidden`` (``50`` or ``64,64``), ``choice``
    (the allowed values are the module's constant for the field), ``flag``
    (on when given), ``negated_flag`` (off when given), ``json`` or ``str``.
    ``scope``: ``"single"``, ``"multi"`` or ``"both"`` (runs it applies to).
    """
    return field(
        default=default, metadata={"help": help, "flag": flag, "kind": kind, "scope": scope, "metavar": metavar}
    )


_CHOICES = {"loss": LOSS_NAMES, "collect": COLLECT_MODES, "gaussian_kl": GAUSSIAN_KL_FORMS, "strategy": STRATEGIES}


@dataclass
class DistillConfig:
    """Every setting of a live distillation run (all recorded in metrics.json).

    Attributes:
        env_id: Gymnasium environment id.
        hidden_units: Student hidden layer width(s).
        activation: The new student's hidden-layer activation, a Keras name
            (``"relu"``, the article's; ``"tanh"`` matches a PPO teacher's).
        inherit_normalizer: The new student starts with the teacher's fixed
            observation normalisation (PPO's running mean, std and clip,
            baked into its ``TeacherModel``): the same inputs the teacher
            sees, at no parameter cost. A teacher without one (DQN, SAC)
            leaves the student without one.
        loss: ``"kl"``, ``"mse"`` or ``"nll"``.
        temperature: Softmax temperature for ``"kl"``; None (the default):
            by what the teacher outputs (`kd_rl.losses.default_temperature`):
            0.01 for a DQN's Q-values, which differ by little between actions
            (Rusu et al. 2016 sharpen them so), and 1 for a policy's logits,
            whose distribution is the target (T > 1 softens it, as in
            Hinton et al. 2015). The value used is recorded in metrics.json.
        collect: ``"teacher"``, ``"student"`` (DAgger) or ``"mixed"``.
        steps: Teacher-labelled environment steps (the data budget).
        seed: Seeds TensorFlow, the sampler and the environments.
        learning_rate: Adam learning rate.
        batch_size: States per update.
        buffer_size: Replay buffer capacity.
        num_envs: Environments stepped together while collecting.
        collect_per_round: Env steps collected between rounds of updates.
        updates_per_round: Gradient updates after each collection round.
        epsilon: Random-action probability while collecting.
        beta_start, beta_end: β schedule for ``mixed`` collection.
        eval_every: Env steps between the evaluations that make the curve (0: none).
        curve_episodes: Episodes of each of those evaluations.
        eval_episodes: Episodes of the final evaluation of both policies.
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
            GPU, the batch split across them; `kd_rl.distributed.make_strategy`).
    """

    env_id: str = "CartPole-v1"
    hidden_units: int | tuple[int, ...] = _setting(
        50, "student hidden layer widths: 50 or 64,64 (multi-task: the shared trunk's)", "--hidden", "hidden"
    )
    activation: str = _setting(
        "relu", "the new student's hidden-layer activation, a Keras name (tanh: a PPO teacher's)", "--activation",
        scope="single", metavar="NAME",
    )  # fmt: skip
    inherit_normalizer: bool = _setting(
        False, "the new student starts with the teacher's fixed observation normalisation (PPO teachers have one)",
        "--inherit-normalizer", "flag", "single",
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
    batch_size: int = _setting(128, "states per update (per task)", "--batch-size", "positive_int", metavar="N")
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
        2_000, "env steps between the evaluations of the learning curve (0: none)", "--eval-every", "nonnegative_int",
        metavar="N",
    )  # fmt: skip
    curve_episodes: int = _setting(
        10, "episodes of each curve evaluation", "--curve-episodes", "positive_int", metavar="N"
    )
    eval_episodes: int = _setting(
        100, "episodes of the final evaluation of teacher, student and a random policy", "--eval-episodes",
        "positive_int", metavar="N",
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
        "single",
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
        "default", "the learner's tf.distribute strategy: default (one device) or mirrored (every GPU of this host)",
        "--strategy", "choice", "single",
    )  # fmt: skip

    def __post_init__(self):
        self.hidden_units = normalise_hidden_units(self.hidden_units)
        self.activation = check_activation(self.activation)
        self.inherit_normalizer = bool(self.inherit_normalizer)
        _check_shared(self)
        self.actors = check_int("actors", self.actors, minimum=0)
        for name in ("sample_actions", "state_dependent_std"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise KdRlError(f"{name} must be True or False, got {getattr(self, name)!r}")
            setattr(self, name, bool(getattr(self, name)))
        if self.env_kwargs is not None and not isinstance(self.env_kwargs, dict):
            raise KdRlError(f"env_kwargs must be a dict of gymnasium.make arguments or None, got {self.env_kwargs!r}")
        if self.ray_address is not None and not self.actors:
            raise KdRlError(f"ray_address={self.ray_address!r} needs actors >= 1 (collection on a Ray cluster)")

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints: ``checkpoint_every``, or its default when None."""
        return checkpoint_interval(self.checkpoint_every, self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden_units"] = list(self.hidden_units)
        return d


def _check_shared(config) -> None:
    """Check (and normalise) the settings `DistillConfig` and `MultiTaskConfig` share."""
    if config.temperature is not None:
        config.temperature = check_temperature(config.temperature)
    for name, allowed in _CHOICES.items():
        if hasattr(config, name) and getattr(config, name) not in allowed:
            raise KdRlError(f"{name} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")
    for name in (
        "steps", "batch_size", "buffer_size", "num_envs", "collect_per_round", "updates_per_round",
        "curve_episodes", "eval_episodes",
    ):  # fmt: skip
        setattr(config, name, check_int(name, getattr(config, name)))
    config.eval_every = check_int("eval_every", config.eval_every, minimum=0)
    config.seed = check_seed(config.seed)
    config.checkpoint_every = check_int("checkpoint_every", config.checkpoint_every, minimum=0, allow_none=True)
    if not (config.learning_rate > 0 and np.isfinite(config.learning_rate)):
        raise KdRlError(f"learning_rate must be > 0, got {config.learning_rate!r}")
    for name in ("epsilon", "beta_start", "beta_end"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise KdRlError(f"{name} must be in [0, 1], got {getattr(config, name)!r}")


@dataclass
class MultiTaskConfig:
    """Settings of a multi-task distillation run (all recorded in metrics.json).

    Per-task budgets: every task gets ``steps`` labelled states, a buffer of
    ``buffer_size`` and ``batch_size`` states in every update. The settings it
    shares with `DistillConfig` mean the same (the defaults of ``batch_size``,
    ``eval_every`` and the widths differ).

    Attributes:
        env_ids: The tasks, one Gymnasium id per teacher, in order.
        trunk_units: Shared layers' widths (``--hidden``).
        adapter_units: Width of each task's input adapter.
        loss: ``"kl"``, ``"mse"`` or ``"nll"`` (each task's Gaussian form for continuous tasks).
        temperature: One temperature for every task; None: each teacher's
            default (`kd_rl.losses.default_temperature`).
        collect: ``"teacher"``, ``"student"`` or ``"mixed"``.
        steps: Teacher-labelled environment steps per task.
        checkpoint_every: Env steps (per task) between checkpoints (0: none);
            None: every 10% of ``steps`` for runs of at least `LONG_RUN_STEPS` steps.
        Others: as in `DistillConfig`.
    """

    env_ids: tuple[str, ...] = ("CartPole-v1", "LunarLander-v3")
    trunk_units: int | tuple[int, ...] = (64,)
    adapter_units: int = _setting(
        64, "multi-task: each task's input adapter width", "--adapter", "positive_int", "multi"
    )
    loss: str = "kl"
    temperature: float | None = None
    collect: str = "student"
    steps: int = 10_000
    seed: int = 0
    learning_rate: float = 1e-3
    batch_size: int = 64
    buffer_size: int = 50_000
    num_envs: int = 8
    collect_per_round: int = 500
    updates_per_round: int = 100
    epsilon: float = 0.0
    beta_start: float = 1.0
    beta_end: float = 0.0
    eval_every: int = 5_000
    curve_episodes: int = 10
    eval_episodes: int = 100
    state_dependent_std: bool = True
    gaussian_kl: str = "decoupled"
    checkpoint_every: int | None = None

    def __post_init__(self):
        if isinstance(self.env_ids, str):
            self.env_ids = (self.env_ids,)
        self.env_ids = tuple(self.env_ids)
        if not self.env_ids or not all(isinstance(e, str) and e for e in self.env_ids):
            raise KdRlError(f"env_ids must be one or more environment ids, got {self.env_ids!r}")
        repeated = sorted({e for e in self.env_ids if self.env_ids.count(e) > 1})
        if repeated:
            raise KdRlError(f"each environment may be given once; repeated: {repeated}")
        self.trunk_units = normalise_hidden_units(self.trunk_units)
        self.adapter_units = check_int("adapter_units", self.adapter_units)
        _check_shared(self)

    @property
    def checkpoint_interval(self) -> int:
        """Env steps between checkpoints: ``checkpoint_every``, or its default when None."""
        return checkpoint_interval(self.checkpoint_every, self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["env_ids"], d["trunk_units"] = list(self.env_ids), list(self.trunk_units)
        return d


#: Multi-task names of `DistillConfig` settings that `MultiTaskConfig` calls otherwise.
MULTITASK_NAMES = {"hidden_units": "trunk_units"}


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


def _default(config_class, name: str):
    found = {f.name: f for f in fields(config_class)}.get(name)
    if found is None:
        return MISSING
    return found.default if found.default is not MISSING else found.default_factory()


def cli_settings() -> list[CliSetting]:
    """Every setting ``kd-rl distill`` offers, in the order of the config's fields."""
    out = []
    for config_class in (DistillConfig, MultiTaskConfig):
        for f in fields(config_class):
            meta = f.metadata
            if not meta.get("flag") or any(s.name == f.name for s in out):
                continue
            multi_name = MULTITASK_NAMES.get(f.name, f.name)
            out.append(
                CliSetting(
                    name=f.name, flag=meta["flag"], kind=meta["kind"], help=meta["help"], scope=meta["scope"],
                    metavar=meta["metavar"], single_default=_default(DistillConfig, f.name),
                    multi_default=_default(MultiTaskConfig, multi_name), choices=_CHOICES.get(f.name),
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


def options_markdown() -> str:
    """The Markdown table of ``kd-rl distill``'s config options (docs/cli.md includes it at build time)."""
    rows = ["| option | default | multi-task default | meaning |", "|---|---|---|---|"]
    for s in cli_settings():
        if s.kind in ("flag", "negated_flag"):
            option, default = f"`{s.flag}`", "off"
            multi = "off" if s.scope != "single" else "—"
        else:
            value = "{" + ",".join(s.choices) + "}" if s.choices else (s.metavar or s.name.upper())
            option = f"`{s.flag} {value}`"
            default = _shown(s.single_default) if s.scope != "multi" else "—"
            multi = _shown(s.multi_default) if s.scope != "single" else "—"
        meaning = s.help.replace("%%", "%") + {"single": " (single-task runs)", "multi": "", "both": ""}[s.scope]
        rows.append(f"| {option} | `{default}` | `{multi}` | {meaning} |".replace("`—`", "—"))
    return "\n".join(rows)
