"""The PPO training loop: collect a rollout from batched environments, train, log, evaluate, checkpoint.

Collection runs ``n_steps`` steps of ``n_envs`` environments inside one
``tf.function``; the agent trains on the whole rollout (TF-Agents' PPO).
Periodic evaluations act with a NumPy copy of the actor and its normaliser:
greedily (argmax) for discrete actions, with the Gaussian's mean clipped to
the bounds for continuous ones. A kickstarted run (``run.kickstart``) sets λ
from the environment steps before each training round.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_py_environment
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.trajectories import time_step as ts
from tf_agents.trajectories import trajectory
from tf_agents.utils import common

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import is_continuous, make_ppo_agent
from kd_rl.teachers.envs import make_batched_env
from kd_rl.teachers.export import dense_layers, export_ppo_teacher, numpy_policy, ppo_normaliser
from kd_rl.teachers.run import Run

__all__ = ["train_ppo"]


def train_ppo(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a PPO teacher for ``run.steps`` rounded up to whole rollouts; return it exported and the steps reached."""
    p = run.params
    n_envs, n_steps = int(p["n_envs"]), int(p["n_steps"])
    rollout = n_envs * n_steps
    total_steps = math.ceil(run.steps / rollout) * rollout
    py_env = make_batched_env(gym_id, n_envs, seed=run.seed)
    tf_env = tf_py_environment.TFPyEnvironment(py_env)
    obs_dim = int(py_env.observation_spec().shape[0])
    continuous = is_continuous(tf_env.action_spec())
    num_actions = None if continuous else int(py_env.action_spec().maximum) + 1
    action_spec = tf_env.action_spec() if continuous else None
    gradient_steps = total_steps // rollout * int(p["n_epochs"])
    agent = make_ppo_agent(tf_env.time_step_spec(), tf_env.action_spec(), p, gradient_steps, kickstart=run.kickstart)
    layers = dense_layers(agent.actor_net)
    normaliser_variables = tf.nest.flatten(agent.collect_policy.observation_normalizer.variables)
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
    time_step = tf_env.reset()
    running = np.zeros(n_envs)
    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < total_steps:
            time_step = collect(time_step)
            experience = replay.gather_all()
            if run.kickstart is not None:
                run.kickstart.set_step(env_steps)
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
                run.evaluate(env_steps, numpy_policy(layers, ppo_normaliser(agent), action_spec=action_spec))
            if run.due(run.checkpoint_every, before, env_steps) or (run.checkpoint_every and env_steps >= total_steps):
                run.save_checkpoint(env_steps)
    tf_env.close()
    run.restore_best()
    return export_ppo_teacher(agent, obs_dim, num_actions, action_spec=action_spec), env_steps
