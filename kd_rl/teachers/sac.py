"""The SAC training loop, CleanRL-style: act, store, learn, log, evaluate, checkpoint.

``n_envs`` environments (`kd_rl.teachers.collect`); the first ``learning_starts`` actions are uniform in the
bounds (as Stable-Baselines3), later ones are sampled from the agent's
tanh-squashed Gaussian (its ``collect_policy``). With ``action_noise`` set,
`ActionNoise` is added to every collected action, which is then clipped to the
bounds. Transitions go to the NumPy
`TransitionBuffer`; ``agent.train`` runs ``gradient_steps`` times every
``train_freq`` steps. Periodic evaluations act deterministically (the
Gaussian's squashed mean) with a NumPy copy of the actor. A kickstarted run
(``run.kickstart``) sets λ from the environment steps before each training round.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import make_sac_actor_network, make_sac_agent
from kd_rl.teachers.collect import (
    OffPolicyEnvs,
    OffPolicyProgress,
    make_training_env,
    seed_training_env,
    training_rounds,
)
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run
from kd_rl.teachers.to_keras import action_bounds, dense_layers, export_sac_teacher, numpy_policy

__all__ = ["ActionNoise", "train_sac"]


class ActionNoise:
    """Exploration noise for ``n`` environments, in half-ranges of the action bounds.

    Each step, ``x <- x - theta * x + std * N(0, 1)`` per environment and
    action dimension: with ``theta = 1`` that is normal noise drawn afresh, with
    a small ``theta`` Ornstein-Uhlenbeck noise whose pushes last about
    ``1 / theta`` steps (the discrete-time process of Lillicrap et al., 2016,
    DDPG). `reset` restarts an environment's noise at 0 when a new episode
    begins, as Stable-Baselines3 does.

    Args:
        n: Environments.
        low: The action's lower bounds (an array of the action's shape).
        high: Its upper bounds.
        std: Standard deviation of the per-step draw, in half-ranges.
        theta: Pull towards 0 per step, in (0, 1].

    Example:
        >>> noise = ActionNoise(1, np.array([-2.0]), np.array([2.0]), std=0.5, theta=1.0)
        >>> noise(np.random.default_rng(0)).shape
        (1, 1)
    """

    def __init__(self, n: int, low: np.ndarray, high: np.ndarray, std: float, theta: float):
        self.scale = (np.asarray(high, np.float64) - np.asarray(low, np.float64)) / 2.0 * float(std)
        self.theta = float(theta)
        self.state = np.zeros((int(n), *np.shape(low)))

    def reset(self, which: np.ndarray) -> None:
        """Restart the noise of the environments ``which`` (a bool mask or indices) at 0."""
        self.state[which] = 0.0

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """The next noise of every environment, ``float32 [n, *action_shape]``, in action units."""
        self.state = (1.0 - self.theta) * self.state + rng.standard_normal(self.state.shape)
        return (self.state * self.scale).astype(np.float32)


def make_action_noise(params, n: int, low: np.ndarray, high: np.ndarray) -> ActionNoise | None:
    """The `ActionNoise` that ``params["action_noise"]`` names for ``n`` environments, or None for ``"none"``."""
    kind = params["action_noise"]
    if kind == "none":
        return None
    theta = 1.0 if kind == "normal" else float(params["noise_theta"])
    return ActionNoise(n, low, high, std=float(params["noise_std"]), theta=theta)


def train_sac(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a SAC teacher for ``run.steps`` environment steps; return it exported and the steps reached.

    ``n_envs`` environments step together (`kd_rl.teachers.collect`); a
    training round is due every ``train_freq`` environment steps counted over
    all of them. The last batch of steps may pass ``run.steps`` by up to ``n_envs - 1``.
    """
    p = run.params
    py_env = make_training_env(gym_id, p, run.seed, run.env_kwargs)
    time_step_spec = tensor_spec.from_spec(py_env.time_step_spec())
    action_spec = tensor_spec.from_spec(py_env.action_spec())
    obs_dim, (low, high) = int(py_env.observation_spec().shape[0]), action_bounds(action_spec)
    batch_size, train_freq = int(p["batch_size"]), int(p["train_freq"])
    gradient_steps, learning_starts = int(p["gradient_steps"]), int(p["learning_starts"])
    rounds = max((run.steps - learning_starts) // train_freq, 1)
    actor = make_sac_actor_network(action_spec, p)
    agent = make_sac_agent(
        time_step_spec, action_spec, p, rounds * gradient_steps, actor_network=actor, kickstart=run.kickstart
    )
    layers = dense_layers(actor)
    buffer = TransitionBuffer(min(int(p["buffer_size"]), run.steps), obs_dim, action_dim=low.size)
    env_steps = run.attach(actor.variables, resume, agent=agent, replay_buffer=buffer)
    envs = OffPolicyEnvs(py_env)
    if env_steps > 0:
        buffer.sync_from_variables()
        # The environments' states are not checkpointed: start new episodes,
        # seeded from the step reached so a resumed run is reproducible too.
        seed_training_env(py_env, run.seed + env_steps)
        envs.reset()

    train = common.function(agent.train)
    sample = common.function(agent.collect_policy.action)
    rng = run.rng
    actions = np.zeros((envs.n, low.size), np.float32)
    noise = make_action_noise(p, envs.n, low, high)
    progress = OffPolicyProgress(run, buffer, env_steps, _mean_losses)

    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < run.steps and not run.reached:
            acting = np.flatnonzero(envs.acting)
            # Actions (and random numbers) only when an environment acts: a step that only resets draws none.
            if acting.size and env_steps < learning_starts:
                actions[acting] = rng.uniform(low, high, size=(acting.size, low.size)).astype(np.float32)
            elif acting.size:
                actions[:] = sample(envs.time_step).action.numpy()
            if acting.size and noise is not None:
                noise.reset(envs.time_step.step_type == ts.StepType.FIRST)
                actions[:] = np.clip(actions + noise(rng), low, high)
            taken, ended = envs.step(actions, buffer)
            progress.finished += ended
            before, env_steps = env_steps, env_steps + taken

            for due_at in training_rounds(before, env_steps, train_freq, learning_starts):
                if run.kickstart is not None:
                    run.kickstart.set_step(due_at)
                for _ in range(gradient_steps):
                    progress.losses.append(train(buffer.sample(rng, batch_size)))

            progress.after(before, env_steps, lambda: numpy_policy(layers, action_spec=action_spec, squash=True))
    envs.close()
    run.restore_best()
    return export_sac_teacher(actor, obs_dim, action_spec), env_steps


def _mean_losses(losses: list) -> dict:
    """Mean total, critic, actor and alpha losses of a list of SAC ``LossInfo``s (empty: none)."""
    if not losses:
        return {}
    means = {"loss": np.mean([float(info.loss) for info in losses])}
    for name in ("critic_loss", "actor_loss", "alpha_loss"):
        means[name] = np.mean([float(getattr(info.extra, name)) for info in losses])
    return means
