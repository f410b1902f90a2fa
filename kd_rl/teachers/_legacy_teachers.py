"""Train DQN and PPO teachers with TF-Agents and export them as Keras models.

`train_teacher` is the whole pipeline: read the per-environment
hyperparameters (``kd_rl/hyperparams/{dqn,ppo}.yml``), train, evaluate
periodically, checkpoint, and finally export a `kd_rl.models.TeacherModel`
whose logits are

* a DQN teacher's Q-values (`export_dqn_teacher`), or
* a PPO teacher's actor logits, with PPO's observation normaliser baked in
  (`export_ppo_teacher`),

so that ``argmax(teacher(observations))`` is the TF-Agents greedy action.

Speed on a small CPU comes from keeping Python out of the inner loops: DQN acts
with a NumPy copy of the Q-network (refreshed after every training round) and
samples a NumPy replay buffer; PPO collects from several environments at once
in a ``tf.function``; both train through ``common.function(agent.train)``.

Example:
    >>> metrics = train_teacher("CartPole-v1", "dqn", "runs/cartpole-dqn")  # doctest: +SKIP
    >>> metrics["mean_return"]  # doctest: +SKIP
    500.0
"""

from __future__ import annotations

import inspect
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

import kd_rl._quiet  # noqa: F401  (before tf_agents: silences gym's notice)

# isort: split
from tf_agents.agents.dqn import dqn_agent
from tf_agents.agents.ppo import ppo_agent, ppo_clip_agent
from tf_agents.environments import tf_py_environment
from tf_agents.networks import actor_distribution_network, q_network, value_network
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step, trajectory
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl import _io
from kd_rl._io import cleanup_on_failure as _cleanup_on_failure
from kd_rl._validate import check_int
from kd_rl.envs import (
    make_batched_env,
    make_env,
)
from kd_rl.evaluate import run_episodes
from kd_rl.export import NumpyPolicy
from kd_rl.models import TeacherModel, _normalise_hidden_units, count_params

__all__ = [
    "ALGORITHMS",
    "evaluate_policy",
    "export_dqn_teacher",
    "export_ppo_teacher",
    "load_hyperparameters",
    "make_dqn_agent",
    "make_ppo_agent",
    "train_teacher",
]

ALGORITHMS = ("dqn", "ppo")

#: Columns of a teacher run's curve.csv: one row per periodic evaluation.
CURVE_COLUMNS = ("env_steps", "mean_return", "wall_seconds")

_HYPERPARAMS_DIR = Path(__file__).resolve().parent / "hyperparams"

# Periodic evaluations use other seeds than the final one, so picking the best
# weights does not peek at the episodes that score the exported teacher.
_PERIODIC_EVAL_SEED_OFFSET = 10_000


# --------------------------------------------------------------------------
# Hyperparameters
# --------------------------------------------------------------------------


def _check_algo(algo) -> str:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo must be one of {list(ALGORITHMS)}, got {algo!r}")
    return algo


def load_hyperparameters(env_id: str, algo: str, overrides: Mapping | None = None) -> tuple[str, dict]:
    """Hyperparameters for ``env_id`` from ``kd_rl/hyperparams/{algo}.yml``.

    Keys missing from the environment's entry (or every key, for an
    environment without one) come from the file's ``default`` entry. An entry
    may be an alias whose ``env_id`` key names the Gymnasium id to train on
    (``CartPole-v1-large`` is CartPole-v1 with a larger network).

    Args:
        env_id: A Gymnasium id or an alias defined in the file.
        algo: ``"dqn"`` or ``"ppo"``.
        overrides: Keys to replace; each must be a key of ``default``.

    Returns:
        ``(gymnasium_id, hyperparameters)``; ``hyperparameters["hidden_units"]``
        is a tuple of ints.

    Raises:
        ValueError: For an unknown ``algo`` or an override key that is not a
            hyperparameter.
    """
    _check_algo(algo)
    with open(_HYPERPARAMS_DIR / f"{algo}.yml", encoding="utf-8") as f:
        table = yaml.safe_load(f)
    params = dict(table["default"])
    entry = table.get(env_id, {}) if env_id != "default" else {}
    gym_id = entry.get("env_id", env_id)
    params.update({k: v for k, v in entry.items() if k != "env_id"})
    if overrides:
        unknown = sorted(set(overrides) - set(table["default"]))
        if unknown:
            raise ValueError(
                f"overrides has unknown {algo} hyperparameters {unknown}; allowed: {sorted(table['default'])}"
            )
        params.update(overrides)
    params["hidden_units"] = _normalise_hidden_units(params["hidden_units"])
    if "value_hidden_units" in params:
        params["value_hidden_units"] = _normalise_hidden_units(params["value_hidden_units"])
    return gym_id, params


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def evaluate_policy(
    model_or_callable: tf.keras.Model | Callable[[np.ndarray], np.ndarray],
    env_id: str,
    episodes: int = 100,
    seed: int = 0,
) -> dict:
    """Greedy returns of a policy over seeded episodes (see `kd_rl.evaluate.run_episodes`).

    Episode ``i`` starts from ``reset(seed=seed + i)``; all episodes run in
    lockstep, so the policy sees one batch per step.

    Args:
        model_or_callable: Maps ``float32 [batch, obs_dim]`` to logits (or
            Q-values) ``[batch, num_actions]``, of which the argmax is taken,
            or directly to actions ``int [batch]``. A Keras model qualifies.
        env_id: Gymnasium id.
        episodes: Number of episodes (>= 1).
        seed: Seed of the first episode.

    Returns:
        ``dict(mean_return, std_return, min_return, max_return, returns,
        lengths)``; ``returns`` and ``lengths`` are lists, one per episode.

    Raises:
        ValueError: If ``episodes`` is not a positive int, or the environment
            is unknown or unusable.
    """
    stats = run_episodes(model_or_callable, env_id, episodes=episodes, seed=int(seed))
    summary = stats.summary()
    return {
        **{k: summary[k] for k in ("mean_return", "std_return", "min_return", "max_return")},
        "returns": stats.returns,
        "lengths": stats.lengths,
    }


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------


def _encoder_dense_layers(encoder) -> list:
    if getattr(encoder, "_preprocessing_layers", None) is not None or getattr(encoder, "_preprocessing_combiner", None):
        raise ValueError("cannot export a network with preprocessing layers to a TeacherModel")
    dense = []
    for layer in encoder._postprocessing_layers:
        if isinstance(layer, tf.keras.layers.Dense):
            dense.append(layer)
        elif not isinstance(layer, tf.keras.layers.Flatten):
            # A Flatten of a 1-D observation is the identity; anything else
            # (conv, dropout, batch norm) has no place in a TeacherModel.
            raise ValueError(f"cannot export layer {layer.name} ({type(layer).__name__}) to a TeacherModel")
    return dense


def _activation_name(layers) -> str:
    names = {tf.keras.activations.serialize(layer.activation) for layer in layers}
    if len(names) != 1:
        raise ValueError(f"hidden layers must share one activation to export, got {sorted(names)}")
    return names.pop()


def _copy_into_teacher(
    dense_layers, obs_dim: int, num_actions: int, hidden_units, normaliser=(None, None, None)
) -> TeacherModel:
    hidden, output = dense_layers[:-1], dense_layers[-1]
    found_units = tuple(int(layer.units) for layer in hidden)
    if hidden_units is not None and _normalise_hidden_units(hidden_units) != found_units:
        raise ValueError(f"hidden_units={hidden_units!r} does not match the network's hidden layers {found_units}")
    if not found_units:
        raise ValueError("cannot export a network without hidden layers to a TeacherModel")
    if int(output.units) != num_actions:
        raise ValueError(f"num_actions={num_actions} does not match the network's {output.units} outputs")
    kernel_in = int(dense_layers[0].kernel.shape[0])
    if kernel_in != obs_dim:
        raise ValueError(f"obs_dim={obs_dim} does not match the network's input size {kernel_in}")
    if tf.keras.activations.serialize(output.activation) != "linear":
        raise ValueError("the network's output layer must be linear to export its outputs as logits")
    mean, std, clip = normaliser
    teacher = TeacherModel(
        num_actions=num_actions,
        hidden_units=found_units,
        activation=_activation_name(hidden),
        observation_dim=obs_dim,
        observation_mean=mean,
        observation_std=std,
        observation_clip=clip,
    )
    for source, target in zip(dense_layers, [*teacher.hidden_layers, teacher.logits_layer]):
        target.set_weights([source.kernel.numpy(), source.bias.numpy()])
    return teacher


def _q_network_of(agent_or_qnetwork):
    if isinstance(agent_or_qnetwork, dqn_agent.DqnAgent):
        return agent_or_qnetwork._q_network
    if isinstance(agent_or_qnetwork, q_network.QNetwork):
        return agent_or_qnetwork
    raise ValueError(f"expected a DqnAgent or a QNetwork, got {type(agent_or_qnetwork).__name__}")


def _q_dense_layers(agent_or_qnetwork) -> list:
    net = _q_network_of(agent_or_qnetwork)
    return [*_encoder_dense_layers(net._encoder), net._q_value_layer]


def export_dqn_teacher(
    agent_or_qnetwork, obs_dim: int, num_actions: int, hidden_units: int | Sequence[int] | None = None
) -> TeacherModel:
    """A TeacherModel whose logits are exactly the DQN's Q-values.

    The kernels and biases of the QNetwork's encoder layers and its
    ``q_value_layer`` are copied into the teacher's ``hidden_layers`` and
    ``logits_layer``.

    Args:
        agent_or_qnetwork: A TF-Agents ``DqnAgent`` (or ``DdqnAgent``) or ``QNetwork``.
        obs_dim: Observation size.
        num_actions: Number of actions.
        hidden_units: If given, must equal the network's hidden layer widths.

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> Q [batch, num_actions]``.

    Raises:
        ValueError: If the network does not match the sizes or is not a plain MLP.
    """
    return _copy_into_teacher(_q_dense_layers(agent_or_qnetwork), obs_dim, num_actions, hidden_units)


def _ppo_normaliser(agent) -> tuple:
    """``(mean, std, clip)`` reproducing ``agent``'s observation normaliser.

    TF-Agents' PPO policies call ``normalizer.normalize(observation)`` with the
    method's defaults (clip_value=5.0, center_mean=True, variance_epsilon=1e-3
    in 0.19), i.e. ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` with
    ``var = m2 / count``. The defaults are read from the installed TF-Agents so
    that the export follows it.
    """
    normaliser = agent._observation_normalizer
    if normaliser is None:
        return None, None, None
    defaults = inspect.signature(type(normaliser).normalize).parameters
    clip_value = float(defaults["clip_value"].default)
    center_mean = bool(defaults["center_mean"].default)
    epsilon = np.float32(defaults["variance_epsilon"].default)
    means, variances = normaliser._get_mean_var_estimates()
    (mean,), (variance,) = tf.nest.flatten(means), tf.nest.flatten(variances)
    std = np.sqrt(variance.numpy().astype(np.float32) + epsilon)
    return (
        mean.numpy().astype(np.float32) if center_mean else None,
        std,
        clip_value if clip_value > 0 else None,
    )


def _ppo_dense_layers(agent) -> list:
    if not isinstance(agent, ppo_agent.PPOAgent):
        raise ValueError(f"expected a TF-Agents PPOAgent, got {type(agent).__name__}")
    actor = agent.actor_net
    projection = actor._projection_networks
    if not hasattr(projection, "_projection_layer"):
        raise ValueError("the PPO actor must have one categorical projection (a Discrete action space)")
    return [*_encoder_dense_layers(actor._encoder), projection._projection_layer]


def export_ppo_teacher(
    agent, obs_dim: int, num_actions: int, hidden_units: int | Sequence[int] | None = None
) -> TeacherModel:
    """A TeacherModel whose logits are the PPO actor's categorical logits.

    The agent's observation normaliser becomes the teacher's fixed
    ``observation_mean``, ``observation_std = sqrt(var + eps)`` and
    ``observation_clip``, so ``teacher(raw_observations)`` sees what the actor saw.

    Args:
        agent: A TF-Agents ``PPOAgent`` (e.g. ``PPOClipAgent``) over a Discrete action.
        obs_dim: Observation size.
        num_actions: Number of actions.
        hidden_units: If given, must equal the actor's hidden layer widths.

    Returns:
        A built ``TeacherModel``: ``float32 [batch, obs_dim] -> logits [batch, num_actions]``.

    Raises:
        ValueError: If the actor does not match the sizes or is not a plain MLP.
    """
    return _copy_into_teacher(
        _ppo_dense_layers(agent), obs_dim, num_actions, hidden_units, normaliser=_ppo_normaliser(agent)
    )


def _numpy_policy(dense_layers, normaliser=(None, None, None)) -> NumpyPolicy:
    # A TF call costs ~0.3 ms whatever its size; the NumPy forward pass costs
    # ~10 us for one CartPole observation, which makes per-step acting cheap.
    weights = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in dense_layers]
    return NumpyPolicy(weights, _activation_name(dense_layers[:-1]), *normaliser)


# --------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------


def _activation(name: str):
    try:
        return tf.keras.activations.get(name)
    except ValueError:
        raise ValueError(f"activation must be a Keras activation name, got {name!r}") from None


def _learning_rate(hyperparameters: Mapping, gradient_steps: int | None):
    """The Adam learning rate: a constant, or linear decay to 0 over ``gradient_steps``."""
    rate, schedule = float(hyperparameters["learning_rate"]), hyperparameters["lr_schedule"]
    if schedule == "constant":
        return rate
    if schedule == "linear":
        if not gradient_steps:
            raise ValueError("lr_schedule='linear' needs the run's number of gradient steps")
        # Annealing the step size stops the late oscillations that DQN in
        # particular shows on CartPole, so the last weights are good ones.
        return tf.keras.optimizers.schedules.PolynomialDecay(rate, int(gradient_steps), end_learning_rate=0.0)
    raise ValueError(f"lr_schedule must be 'constant' or 'linear', got {schedule!r}")


def make_dqn_agent(
    time_step_spec: ts.TimeStep, action_spec, hyperparameters: Mapping, gradient_steps: int | None = None
) -> dqn_agent.DqnAgent:
    """A TF-Agents ``DqnAgent`` (``DdqnAgent`` if ``double_dqn``) over a ``QNetwork``.

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action.
        hyperparameters: As from `load_hyperparameters` for ``"dqn"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).

    Returns:
        An initialised agent whose optimizer variables already exist (so a
        checkpoint restores them in a fixed order).
    """
    p = hyperparameters
    if p["loss"] not in ("huber", "mse"):
        raise ValueError(f"loss must be 'huber' or 'mse', got {p['loss']!r}")
    net = q_network.QNetwork(
        time_step_spec.observation,
        action_spec,
        fc_layer_params=tuple(p["hidden_units"]),
        activation_fn=_activation(p["activation"]),
    )
    optimizer = tf.keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps))
    agent_class = dqn_agent.DdqnAgent if p["double_dqn"] else dqn_agent.DqnAgent
    agent = agent_class(
        time_step_spec,
        action_spec,
        q_network=net,
        optimizer=optimizer,
        # Only used by agent.collect_policy; train_teacher explores itself.
        epsilon_greedy=float(p["exploration_final_eps"]),
        target_update_tau=float(p["target_update_tau"]),
        target_update_period=int(p["target_update_interval"]),
        td_errors_loss_fn=(
            common.element_wise_huber_loss if p["loss"] == "huber" else common.element_wise_squared_loss
        ),
        gamma=float(p["gamma"]),
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
    )
    agent.initialize()
    optimizer.build(net.trainable_variables)
    return agent


def make_ppo_agent(
    time_step_spec: ts.TimeStep, action_spec, hyperparameters: Mapping, gradient_steps: int | None = None
) -> ppo_clip_agent.PPOClipAgent:
    """A TF-Agents ``PPOClipAgent`` with an ``ActorDistributionNetwork`` and a ``ValueNetwork``.

    Observations are normalised (``normalize_observations=True``); GAE
    advantages and TD(lambda) returns.

    Args:
        time_step_spec: Tensor time-step spec of the environment.
        action_spec: Scalar ``BoundedTensorSpec`` of the discrete action.
        hyperparameters: As from `load_hyperparameters` for ``"ppo"``.
        gradient_steps: Gradient steps of the whole run (for ``lr_schedule: linear``).

    Returns:
        An initialised agent whose optimizer variables already exist.
    """
    p = hyperparameters
    activation = _activation(p["activation"])
    actor = actor_distribution_network.ActorDistributionNetwork(
        time_step_spec.observation, action_spec, fc_layer_params=tuple(p["hidden_units"]), activation_fn=activation
    )
    value = value_network.ValueNetwork(
        time_step_spec.observation, fc_layer_params=tuple(p["value_hidden_units"]), activation_fn=activation
    )
    optimizer = tf.keras.optimizers.Adam(learning_rate=_learning_rate(p, gradient_steps), epsilon=1e-5)
    agent = ppo_clip_agent.PPOClipAgent(
        time_step_spec,
        action_spec,
        optimizer=optimizer,
        actor_net=actor,
        value_net=value,
        greedy_eval=True,
        importance_ratio_clipping=float(p["clip_range"]),
        lambda_value=float(p["gae_lambda"]),
        discount_factor=float(p["gamma"]),
        entropy_regularization=float(p["ent_coef"]),
        value_pred_loss_coef=float(p["vf_coef"]),
        num_epochs=int(p["n_epochs"]),
        use_gae=True,
        use_td_lambda_return=True,
        normalize_rewards=bool(p["normalize_rewards"]),
        normalize_observations=True,
        gradient_clipping=None if p["max_grad_norm"] is None else float(p["max_grad_norm"]),
        train_step_counter=tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step"),
    )
    agent.initialize()
    actor.create_variables()
    value.create_variables()
    optimizer.build(actor.trainable_variables + value.trainable_variables)
    return agent


# --------------------------------------------------------------------------
# Replay buffer
# --------------------------------------------------------------------------


class _ReplayBuffer(tf.Module):
    """A uniform ring buffer of transitions in NumPy, checkpointable.

    TF-Agents' ``TFUniformReplayBuffer`` costs ~1 ms per ``add_batch`` in eager
    mode, more than a CartPole step and a Q-network forward together. Here
    adding is a NumPy row write; the arrays are copied into ``tf.Variable``s
    only when a checkpoint is saved (`sync_to_variables`).
    """

    def __init__(self, capacity: int, obs_dim: int):
        super().__init__(name="replay_buffer")
        self.capacity = int(capacity)
        self._arrays = {
            "observation": np.zeros((capacity, obs_dim), np.float32),
            "action": np.zeros(capacity, np.int64),
            "reward": np.zeros(capacity, np.float32),
            "discount": np.zeros(capacity, np.float32),
            "next_observation": np.zeros((capacity, obs_dim), np.float32),
        }
        self.size = 0
        self.position = 0
        self.storage = {k: tf.Variable(v, trainable=False, name=k) for k, v in self._arrays.items()}
        self.counters = tf.Variable([0, 0], dtype=tf.int64, trainable=False, name="size_position")

    def add(self, observation, action, reward, discount, next_observation) -> None:
        i = self.position
        a = self._arrays
        a["observation"][i] = observation
        a["action"][i] = action
        a["reward"][i] = reward
        a["discount"][i] = discount
        a["next_observation"][i] = next_observation
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, batch_size: int) -> trajectory.Transition:
        """A batch of transitions ``[batch_size, ...]`` in TF-Agents' ``Transition`` form."""
        i = rng.integers(0, self.size, size=batch_size)
        a = self._arrays
        mid = np.full(batch_size, ts.StepType.MID, np.int32)
        zeros = np.zeros(batch_size, np.float32)
        return trajectory.Transition(
            # Stored transitions never start at a LAST step, so MID is right for
            # the DQN loss (it masks out transitions that start at LAST).
            time_step=ts.TimeStep(mid, zeros, zeros, a["observation"][i]),
            action_step=policy_step.PolicyStep(a["action"][i], (), ()),
            next_time_step=ts.TimeStep(
                np.where(a["discount"][i] == 0.0, np.int32(ts.StepType.LAST), mid),
                a["reward"][i],
                a["discount"][i],
                a["next_observation"][i],
            ),
        )

    def sync_to_variables(self) -> None:
        for key, variable in self.storage.items():
            variable.assign(self._arrays[key])
        self.counters.assign([self.size, self.position])

    def sync_from_variables(self) -> None:
        for key, variable in self.storage.items():
            self._arrays[key][...] = variable.numpy()
        self.size, self.position = (int(x) for x in self.counters.numpy())


# --------------------------------------------------------------------------
# Shared run bookkeeping: evaluation, curve, best weights, checkpoints, logs
# --------------------------------------------------------------------------


class _Run:
    """Everything a training run records, whatever the algorithm."""

    def __init__(self, out_dir: Path, env_id: str, seed: int, steps: int, params: dict, options: dict):
        self.out_dir = out_dir
        self.env_id = env_id
        self.seed = seed
        self.steps = steps
        self.params = params
        self.eval_every = options["eval_every"]
        self.periodic_episodes = int(params["periodic_eval_episodes"])
        self.checkpoint_every = options["checkpoint_every"]
        self.keep_best = bool(params["keep_best"])
        self.curve: list[tuple[int, float, float]] = []  # (env_steps, mean_return, wall_seconds)
        self.best_score = -math.inf
        self.best_step = -1
        self.prior_wall_seconds = 0.0
        self.start_time = time.perf_counter()
        self.start_steps = 0
        self.env_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="env_steps")
        # Python-side state (curve, best score, RNG) travels in the checkpoint as JSON.
        self.state = tf.Variable("", dtype=tf.string, trainable=False, name="run_state")
        self.checkpointer = None
        self.rng = np.random.default_rng(seed)
        self.writer = tf.summary.create_file_writer(str(out_dir / "tensorboard"))
        from tqdm import tqdm

        self.bar = tqdm(
            total=steps,
            disable=not options["progress"],
            desc=f"{options['algo']} {env_id}",
            unit="step",
            mininterval=1.0,
            dynamic_ncols=True,
        )

    def attach(self, snapshot_variables: list, resume: bool, **trackables) -> int:
        """Create the checkpointer and, if resuming, restore; return the env step reached."""
        self.snapshot_variables = snapshot_variables
        self.best = tf.Module(name="best")
        self.best.variables_ = [tf.Variable(v, trainable=False) for v in snapshot_variables]
        ckpt_dir = self.out_dir / "checkpoints"
        if not resume and ckpt_dir.exists():
            # A fresh run must not pick up an old run's checkpoint.
            shutil.rmtree(ckpt_dir)
        self.checkpointer = common.Checkpointer(
            str(ckpt_dir),
            max_to_keep=1,
            env_steps=self.env_steps,
            run_state=self.state,
            best=self.best,
            **trackables,
        )
        if resume and self.checkpointer.checkpoint_exists:
            self.checkpointer.initialize_or_restore()
            state = json.loads(self.state.numpy().decode())
            self.curve = [tuple(row) for row in state["curve"]]
            self.best_score, self.best_step = state["best_score"], state["best_step"]
            self.prior_wall_seconds = state["wall_seconds"]
            self.rng.bit_generator.state = state["rng"]
        self.start_steps = int(self.env_steps.numpy())
        self.bar.update(self.start_steps)
        return self.start_steps

    @property
    def wall_seconds(self) -> float:
        return self.prior_wall_seconds + time.perf_counter() - self.start_time

    def steps_per_second(self, env_steps: int) -> float:
        return (env_steps - self.start_steps) / max(time.perf_counter() - self.start_time, 1e-9)

    def due(self, every: int | None, before: int, after: int) -> bool:
        """Whether a multiple of ``every`` lies in ``(before, after]``."""
        return every is not None and after // every > before // every

    def evaluate(self, env_steps: int, policy: Callable) -> float:
        result = evaluate_policy(policy, self.env_id, self.periodic_episodes, self.seed + _PERIODIC_EVAL_SEED_OFFSET)
        score = result["mean_return"]
        self.curve = [row for row in self.curve if row[0] < env_steps] + [
            (env_steps, score, round(self.wall_seconds, 2))
        ]
        # Ties go to the later weights: equally good and trained longer.
        if score >= self.best_score:
            self.best_score, self.best_step = score, env_steps
            for target, source in zip(self.best.variables_, self.snapshot_variables):
                target.assign(source)
        _io.write_csv(self.out_dir / "curve.csv", CURVE_COLUMNS, self.curve)
        with self.writer.as_default(step=env_steps):
            tf.summary.scalar("eval/mean_return", score)
            tf.summary.scalar("eval/std_return", result["std_return"])
        self.bar.set_postfix(eval=f"{score:.1f}", best=f"{self.best_score:.1f}")
        return score

    def log_training(self, env_steps: int, episode_returns: list, **scalars) -> None:
        with self.writer.as_default(step=env_steps):
            if episode_returns:
                tf.summary.scalar("train/episode_return", float(np.mean(episode_returns)))
            tf.summary.scalar("train/steps_per_second", self.steps_per_second(env_steps))
            for name, value in scalars.items():
                tf.summary.scalar(f"train/{name}", float(value))

    def save_checkpoint(self, env_steps: int) -> None:
        self.env_steps.assign(env_steps)
        state = {
            "curve": self.curve,
            "best_score": self.best_score,
            "best_step": self.best_step,
            "wall_seconds": self.wall_seconds,
            "rng": self.rng.bit_generator.state,
        }
        self.state.assign(json.dumps(state))
        self.checkpointer.save(global_step=env_steps)

    def restore_best(self) -> None:
        """Put the best evaluated weights back, if ``keep_best`` and there are any."""
        if self.keep_best and self.best_step >= 0:
            for target, source in zip(self.snapshot_variables, self.best.variables_):
                target.assign(source)

    def close(self) -> None:
        self.bar.close()
        self.writer.flush()
        self.writer.close()


# --------------------------------------------------------------------------
# DQN
# --------------------------------------------------------------------------


def _train_dqn(run: _Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    p = run.params
    env = make_env(gym_id, seed=run.seed)
    time_step_spec = tensor_spec.from_spec(env.time_step_spec())
    action_spec = tensor_spec.from_spec(env.action_spec())
    obs_dim = int(env.observation_spec().shape[0])
    num_actions = int(env.action_spec().maximum) + 1
    rounds = max((run.steps - int(p["learning_starts"])) // int(p["train_freq"]), 1)
    agent = make_dqn_agent(time_step_spec, action_spec, p, gradient_steps=rounds * int(p["gradient_steps"]))
    dense = _q_dense_layers(agent)
    buffer = _ReplayBuffer(min(int(p["buffer_size"]), run.steps), obs_dim)
    env_steps = run.attach(agent._q_network.variables, resume, agent=agent, replay_buffer=buffer)
    if env_steps > 0:
        buffer.sync_from_variables()
        # The environment's state is not checkpointed: start a new episode,
        # seeded from the step reached so a resumed run is reproducible too.
        env.seed(run.seed + env_steps)

    train = common.function(agent.train)
    batch_size, train_freq = int(p["batch_size"]), int(p["train_freq"])
    gradient_steps, learning_starts = int(p["gradient_steps"]), int(p["learning_starts"])
    eps_start, eps_end = float(p["exploration_initial_eps"]), float(p["exploration_final_eps"])
    eps_steps = max(float(p["exploration_fraction"]) * run.steps, 1.0)
    rng = run.rng
    act = _numpy_policy(dense)
    observation = env.reset().observation
    episode_return, finished, losses, last_log = 0.0, [], [], env_steps

    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < run.steps:
            epsilon = eps_start + (eps_end - eps_start) * min(1.0, env_steps / eps_steps)
            if rng.random() < epsilon:
                action = int(rng.integers(num_actions))
            else:
                action = int(np.argmax(act(observation[None])[0]))
            step = env.step(np.int64(action))
            buffer.add(observation, action, step.reward, step.discount, step.observation)
            env_steps += 1
            episode_return += float(step.reward)
            if int(step.step_type) == ts.StepType.LAST:
                finished.append(episode_return)
                episode_return = 0.0
                observation = env.reset().observation
            else:
                observation = step.observation

            if env_steps > learning_starts and env_steps % train_freq == 0:
                for _ in range(gradient_steps):
                    losses.append(train(buffer.sample(rng, batch_size)).loss)
                act = _numpy_policy(dense)

            if env_steps - last_log >= 1000 or env_steps == run.steps:
                run.bar.update(env_steps - last_log)
                run.log_training(
                    env_steps,
                    finished,
                    epsilon=epsilon,
                    **({"loss": float(np.mean([float(x) for x in losses]))} if losses else {}),
                )
                finished, losses, last_log = [], [], env_steps
            if run.due(run.eval_every, env_steps - 1, env_steps) or env_steps == run.steps:
                run.evaluate(env_steps, act)
            if run.due(run.checkpoint_every, env_steps - 1, env_steps) or (
                run.checkpoint_every and env_steps == run.steps
            ):
                buffer.sync_to_variables()
                run.save_checkpoint(env_steps)
    env.close()
    run.restore_best()
    run.agent = agent
    return export_dqn_teacher(agent, obs_dim, num_actions), env_steps


# --------------------------------------------------------------------------
# PPO
# --------------------------------------------------------------------------


def _train_ppo(run: _Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    p = run.params
    n_envs, n_steps = int(p["n_envs"]), int(p["n_steps"])
    rollout = n_envs * n_steps
    # Whole rollouts only: the step count is rounded up to a multiple of one.
    total_steps = math.ceil(run.steps / rollout) * rollout
    py_env = make_batched_env(gym_id, n_envs, seed=run.seed)
    tf_env = tf_py_environment.TFPyEnvironment(py_env)
    obs_dim = int(py_env.observation_spec().shape[0])
    num_actions = int(py_env.action_spec().maximum) + 1
    agent = make_ppo_agent(
        tf_env.time_step_spec(), tf_env.action_spec(), p, gradient_steps=total_steps // rollout * int(p["n_epochs"])
    )
    dense = _ppo_dense_layers(agent)
    normaliser_variables = list(agent._observation_normalizer.variables)
    env_steps = run.attach([*agent.actor_net.variables, *normaliser_variables], resume, agent=agent)
    if env_steps > 0:
        for i, env in enumerate(py_env.envs):
            env.seed(run.seed + env_steps + i)

    replay = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=n_envs, max_length=n_steps
    )
    collect_policy = agent.collect_policy

    @common.function(autograph=True)
    def collect(time_step):
        for _ in tf.range(n_steps):
            action_step = collect_policy.action(time_step)
            next_time_step = tf_env.step(action_step.action)
            replay.add_batch(trajectory.from_transition(time_step, action_step, next_time_step))
            time_step = next_time_step
        return time_step

    train = common.function(agent.train)

    def policy():
        return _numpy_policy(dense, _ppo_normaliser(agent))

    time_step = tf_env.reset()
    running = np.zeros(n_envs)
    with tf.summary.record_if(False):
        while env_steps < total_steps:
            time_step = collect(time_step)
            experience = replay.gather_all()
            loss = train(experience).loss
            replay.clear()
            # Episode returns for the logs, from the rollout's rewards.
            rewards = experience.reward.numpy()
            ends = experience.next_step_type.numpy() == ts.StepType.LAST
            finished = []
            for t in range(n_steps):
                running += rewards[:, t]
                for i in np.flatnonzero(ends[:, t]):
                    finished.append(running[i])
                    running[i] = 0.0
            before, env_steps = env_steps, env_steps + rollout
            run.bar.update(rollout)
            run.log_training(env_steps, finished, loss=float(loss))
            if run.due(run.eval_every, before, env_steps) or env_steps >= total_steps:
                run.evaluate(env_steps, policy())
            if run.due(run.checkpoint_every, before, env_steps) or (run.checkpoint_every and env_steps >= total_steps):
                run.save_checkpoint(env_steps)
    tf_env.close()
    run.restore_best()
    run.agent = agent
    return export_ppo_teacher(agent, obs_dim, num_actions), env_steps


# --------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------


def train_teacher(
    env_id: str,
    algo: str,
    out_dir: str | Path,
    steps: int | None = None,
    seed: int = 0,
    hidden_units: int | Sequence[int] | None = None,
    overrides: Mapping | None = None,
    eval_every: int | None = None,
    eval_episodes: int = 100,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Train a DQN or PPO teacher and export it as a Keras ``TeacherModel``.

    Writes to ``out_dir``: ``teacher.keras``, ``metrics.json``, ``curve.csv``
    (``env_steps,mean_return,wall_seconds`` of the periodic greedy evaluations),
    ``tensorboard/`` and, with ``checkpoint_every``, ``checkpoints/``. Nothing
    is written before every argument has been checked.

    The final score is the mean greedy return of the exported model over
    ``eval_episodes`` episodes seeded ``seed, seed + 1, ...``. With the
    hyperparameter ``keep_best`` the exported weights are those of the best
    periodic evaluation (which uses seeds from ``seed + 10000``), not the last.

    Args:
        env_id: Gymnasium id, or an alias from the hyperparameter file
            (e.g. ``"CartPole-v1-large"``).
        algo: ``"dqn"`` or ``"ppo"``.
        out_dir: Output folder (created).
        steps: Environment steps; default ``n_timesteps`` from the file. PPO
            rounds it up to whole rollouts (``n_envs * n_steps``) and counts
            every step of its environments, auto-resets included.
        seed: Seeds TensorFlow, NumPy, the environments and the evaluations.
        hidden_units: Overrides the file's ``hidden_units``.
        overrides: Other hyperparameters to override, by key.
        eval_every: Environment steps between periodic evaluations; default
            the file's ``eval_every``.
        eval_episodes: Episodes of the final evaluation.
        checkpoint_every: Environment steps between checkpoints; None: none.
        resume: Continue from the last checkpoint in ``out_dir`` (if there is
            none, start afresh). The run ends at the same total step count as
            an uninterrupted one.
        progress: Show a tqdm progress bar.
        command: The command line that made this run, recorded in the metrics.
        overwrite: Delete a different run already in ``out_dir`` first
            (without it, or ``resume``, a non-empty ``out_dir`` is refused).

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ValueError: For an unknown ``algo`` or environment, an environment
            whose spaces kd_rl cannot use, or a non-positive count.
    """
    algo = _check_algo(algo)
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    overrides = dict(overrides or {})
    if hidden_units is not None:
        overrides["hidden_units"] = hidden_units
    gym_id, params = load_hyperparameters(env_id, algo, overrides)
    steps = check_int("steps", params["n_timesteps"] if steps is None else steps)
    params["n_timesteps"] = steps
    seed = check_int("seed", seed, minimum=0)
    eval_every = check_int("eval_every", params["eval_every"] if eval_every is None else eval_every)
    eval_episodes = check_int("eval_episodes", eval_episodes)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, allow_none=True)
    for key in ("periodic_eval_episodes",) + (
        ("batch_size", "buffer_size", "train_freq", "gradient_steps", "target_update_interval")
        if algo == "dqn"
        else ("n_envs", "n_steps", "n_epochs")
    ):
        check_int(key, params[key])
    _activation(params["activation"])
    _learning_rate(params, 1)
    make_env(gym_id).close()  # Unknown id or unusable spaces: fail before writing anything.

    existed = Path(out_dir).exists()  # only a folder this run creates is removed on failure
    out_dir = _io.prepare_run_dir(out_dir, resume=resume, overwrite=overwrite)
    with _cleanup_on_failure(out_dir, existed):
        tf.keras.utils.set_random_seed(seed)
        options = dict(algo=algo, eval_every=eval_every, checkpoint_every=checkpoint_every, progress=progress)
        run = _Run(out_dir, gym_id, seed, steps, params, options)
        try:
            trainer = _train_dqn if algo == "dqn" else _train_ppo
            teacher, env_steps = trainer(run, gym_id, resume)
            steps_per_second = run.steps_per_second(env_steps)
            wall_seconds = run.wall_seconds
        finally:
            run.close()

        _io.save_model(teacher, out_dir / "teacher.keras")
        final = evaluate_policy(teacher, gym_id, eval_episodes, seed)
        metrics = {
            "env_id": gym_id,
            "hyperparameters_key": env_id,
            "algo": algo,
            "seed": seed,
            "env_steps": env_steps,
            "resumed_from_env_steps": run.start_steps,
            "wall_seconds": round(wall_seconds, 2),
            "steps_per_second": round(steps_per_second, 1),
            "mean_return": final["mean_return"],
            "std_return": final["std_return"],
            "min_return": final["min_return"],
            "max_return": final["max_return"],
            "eval_episodes": eval_episodes,
            "returns": final["returns"],
            "params": count_params(teacher),
            "hidden_units": list(teacher.hidden_units),
            "best_eval_env_steps": run.best_step,
            "best_eval_mean_return": run.best_score if run.best_step >= 0 else None,
            "exported_weights": "best" if run.keep_best and run.best_step >= 0 else "last",
            "hyperparameters": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "versions": _versions(),
        }
        if command is not None:
            metrics["command"] = command
        _io.write_json(out_dir / "metrics.json", metrics)
        _io.write_csv(out_dir / "curve.csv", CURVE_COLUMNS, run.curve)
        return metrics


def _versions() -> dict:
    import gymnasium
    import tf_agents

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "tf_agents": tf_agents.__version__,
        "gymnasium": gymnasium.__version__,
    }
