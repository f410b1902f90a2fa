"""The SAC training loop, CleanRL-style: act, store, learn, log, evaluate, checkpoint.

``n_envs`` environments (`kd_rl.teachers.collect`); the first ``learning_starts`` actions are uniform in the
bounds (as Stable-Baselines3), later ones are sampled from the agent's
tanh-squashed Gaussian (its ``collect_policy``). Transitions go to the NumPy
`TransitionBuffer`; ``agent.train`` runs ``gradient_steps`` times every
``train_freq`` steps. Periodic evaluations act deterministically (the
Gaussian's squashed mean) with a NumPy copy of the actor. A kickstarted run
(``run.kickstart``) sets λ from the environment steps before each training round.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
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
from kd_rl.teachers.export import action_bounds, dense_layers, export_sac_teacher, numpy_policy
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run

__all__ = ["train_sac"]


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
    progress = OffPolicyProgress(run, buffer, env_steps, _mean_losses)

    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < run.steps and not run.reached:
            acting = np.flatnonzero(envs.acting)
            # Actions (and random numbers) only when an environment acts: a step that only resets draws none.
            if acting.size and env_steps < learning_starts:
                actions[acting] = rng.uniform(low, high, size=(acting.size, low.size)).astype(np.float32)
            elif acting.size:
                actions[:] = sample(envs.time_step).action.numpy()
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
