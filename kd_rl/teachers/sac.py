"""The SAC training loop, CleanRL-style: act, store, learn, log, evaluate, checkpoint.

One environment; the first ``learning_starts`` actions are uniform in the
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
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import make_sac_actor_network, make_sac_agent
from kd_rl.teachers.envs import make_env
from kd_rl.teachers.export import action_bounds, dense_layers, export_sac_teacher, numpy_policy
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run

__all__ = ["train_sac"]


def train_sac(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a SAC teacher for ``run.steps`` environment steps; return it exported and the steps reached."""
    p = run.params
    env = make_env(gym_id, seed=run.seed, **run.env_kwargs)
    time_step_spec = tensor_spec.from_spec(env.time_step_spec())
    action_spec = tensor_spec.from_spec(env.action_spec())
    obs_dim, (low, high) = int(env.observation_spec().shape[0]), action_bounds(action_spec)
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
    if env_steps > 0:
        buffer.sync_from_variables()
        # The environment's state is not checkpointed: start a new episode,
        # seeded from the step reached so a resumed run is reproducible too.
        env.seed(run.seed + env_steps)

    train = common.function(agent.train)
    sample = common.function(agent.collect_policy.action)
    rng = run.rng
    time_step = env.reset()
    episode_return, finished, losses, last_log = 0.0, [], [], env_steps

    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < run.steps and not run.reached:
            if env_steps < learning_starts:
                action = rng.uniform(low, high).astype(np.float32)
            else:
                batched = tf.nest.map_structure(lambda x: np.asarray(x)[None], time_step)
                action = sample(batched).action.numpy()[0]
            step = env.step(action)
            buffer.add(time_step.observation, action, step.reward, step.discount, step.observation)
            env_steps += 1
            episode_return += float(step.reward)
            if int(step.step_type) == ts.StepType.LAST:
                finished.append(episode_return)
                episode_return = 0.0
                time_step = env.reset()
            else:
                time_step = step

            if env_steps > learning_starts and env_steps % train_freq == 0:
                if run.kickstart is not None:
                    run.kickstart.set_step(env_steps)
                for _ in range(gradient_steps):
                    losses.append(train(buffer.sample(rng, batch_size)))

            if env_steps - last_log >= 1000 or env_steps == run.steps:
                run.bar.update(env_steps - last_log)
                run.log_training(env_steps, finished, **_mean_losses(losses))
                finished, losses, last_log = [], [], env_steps
            if run.due(run.eval_every, env_steps - 1, env_steps) or env_steps == run.steps:
                run.evaluate(env_steps, numpy_policy(layers, action_spec=action_spec, squash=True))
            if run.due(run.checkpoint_every, env_steps - 1, env_steps) or (
                run.checkpoint_every and env_steps == run.steps
            ):
                buffer.sync_to_variables()
                run.save_checkpoint(env_steps)
    env.close()
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
