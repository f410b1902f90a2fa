"""The PPO training loop: collect a rollout from batched environments, train, log, evaluate, checkpoint.

Collection runs ``n_steps`` steps of ``n_envs`` environments inside one
``tf.function``; `make_ppo_update` then runs ``n_epochs`` passes over the
rollout in another, one gradient step per epoch on the whole rollout
(TF-Agents' PPO) or, with ``batch_size``, one per shuffled minibatch
(Stable-Baselines3's PPO). With ``normalize_returns`` a `ReturnScaler`
divides the rollout's rewards by the running std of the discounted return
before the update (the logged episode returns stay raw).
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

from kd_rl.envs import env_spec
from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import is_continuous, make_ppo_agent
from kd_rl.teachers.collect import make_training_env, seed_training_env
from kd_rl.teachers.run import Run
from kd_rl.teachers.tf_agents_envs import environment_errors
from kd_rl.teachers.to_keras import (
    conv_layers,
    dense_layers,
    export_ppo_teacher,
    frame_normaliser,
    numpy_policy,
    ppo_normaliser,
)

__all__ = ["ReturnScaler", "make_ppo_update", "train_ppo"]


class ReturnScaler(tf.Module):
    """Scale rewards by the running standard deviation of the discounted return (``normalize_returns``).

    Stable-Baselines3's ``VecNormalize(norm_reward=True)``: each environment
    keeps ``R <- gamma * R + r`` (reset after an episode's last step), the
    running variance of ``R`` over every environment and step so far is
    updated step by step, and the reward becomes ``clip(r / sqrt(var + 1e-8),
    -clip, clip)``. Unlike a per-reward normaliser (TF-Agents'
    ``normalize_rewards``), a constant reward per step keeps a useful scale:
    the return's spread, not the reward's (near 0).

    The statistics are variables, so a checkpoint resumes them.

    Args:
        n_envs: Batched environments.
        gamma: The discount of the running return.
        clip: Bound of the scaled reward.
    """

    def __init__(self, n_envs: int, gamma: float, clip: float = 10.0):
        super().__init__(name="return_scaler")
        self.gamma, self.clip = float(gamma), float(clip)
        self.count = tf.Variable(1e-4, dtype=tf.float64, trainable=False, name="count")
        self.mean = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="mean")
        self.var = tf.Variable(1.0, dtype=tf.float64, trainable=False, name="var")
        self.returns = tf.Variable(tf.zeros(n_envs, tf.float64), trainable=False, name="returns")

    def __call__(self, rewards: np.ndarray, step_types: np.ndarray, next_step_types: np.ndarray) -> np.ndarray:
        """Scale a rollout's rewards ``[n_envs, n_steps]`` (TF-Agents trajectory order); update the statistics.

        A boundary step (``step_type`` LAST: the reset after an episode) is
        masked by PPO; its reward passes unchanged and updates nothing.
        """
        count, mean, var = float(self.count.numpy()), float(self.mean.numpy()), float(self.var.numpy())
        returns = self.returns.numpy().copy()
        scaled = np.array(rewards, dtype=np.float32, copy=True)
        for t in range(rewards.shape[1]):
            live = step_types[:, t] != ts.StepType.LAST
            if not live.any():
                continue
            returns[live] = self.gamma * returns[live] + rewards[live, t]
            # Chan et al.'s parallel update of the mean and variance with this step's batch.
            batch = returns[live]
            b_count, b_mean, b_var = len(batch), float(batch.mean()), float(batch.var())
            total = count + b_count
            delta = b_mean - mean
            mean += delta * b_count / total
            var = (var * count + b_var * b_count + delta**2 * count * b_count / total) / total
            count = total
            scaled[live, t] = np.clip(rewards[live, t] / np.sqrt(var + 1e-8), -self.clip, self.clip)
            returns[live & (next_step_types[:, t] == ts.StepType.LAST)] = 0.0
        self.count.assign(count)
        self.mean.assign(mean)
        self.var.assign(var)
        self.returns.assign(returns)
        return scaled


def make_ppo_update(agent, n_epochs: int, rollout_size: int, batch_size: int | None = None):
    """The compiled training round of one rollout: ``update(experience) -> loss``.

    ``agent`` is from `kd_rl.teachers.agents.make_ppo_agent` (one gradient
    step per ``agent.train`` call). The round computes the advantages and
    TD(λ) returns once with ``agent.preprocess_sequence``, runs ``n_epochs``
    epochs, then updates the observation and reward normalisers with the
    rollout, as TF-Agents' own ``PPOAgent.train`` does with ``num_epochs``
    epochs; but the epochs run in a graph loop, so the graph holds one
    gradient step (TF-Agents unrolls its epochs in Python: tracing 20 epochs
    took 14 s on CartPole-v1, one takes under 2 s).

    With ``batch_size``, each epoch shuffles the rollout's ``rollout_size``
    steps and takes one gradient step per minibatch of ``batch_size`` (the
    last one smaller if it does not divide), advantages normalised per
    minibatch as Stable-Baselines3 does; the steps PPO masks out (episode
    boundaries, the rollout's last step) stay masked. Without it, one step
    per epoch on the whole rollout.
    """

    def flatten(t):
        # [n_envs, n_steps, ...] -> [rollout_size, 1, ...]: every step its own length-1 sequence.
        return tf.reshape(t, [rollout_size, 1, *t.shape[2:]])

    def epoch(data, loss):
        return agent.train(data).loss

    def shuffled_epoch(steps, loss):
        order = tf.random.shuffle(tf.range(rollout_size))

        def minibatch(start, loss):
            chosen = order[start : start + batch_size]
            return start + batch_size, agent.train(tf.nest.map_structure(lambda t: tf.gather(t, chosen), steps)).loss

        return tf.while_loop(lambda start, _: start < rollout_size, minibatch, (tf.constant(0), loss))[1]

    # autograph=False: tf.while_loop by hand, so TF-Agents' code is traced, not converted (seconds saved).
    @common.function(autograph=False)
    def update(experience):
        processed = agent.preprocess_sequence(experience)
        if batch_size is None:
            data, run_epoch = processed, epoch
        else:
            data, run_epoch = tf.nest.map_structure(flatten, processed), shuffled_epoch
        _, loss = tf.while_loop(
            lambda i, _: i < n_epochs,
            lambda i, loss: (i + 1, run_epoch(data, loss)),
            (tf.constant(0), tf.constant(0.0)),
        )
        agent.update_observation_normalizer(processed.observation)
        agent.update_reward_normalizer(processed.reward)
        return loss

    return update


def train_ppo(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a PPO teacher for ``run.steps`` rounded up to whole rollouts; return it exported and the steps reached."""
    p = run.params
    n_envs, n_steps = int(p["n_envs"]), int(p["n_steps"])
    rollout = n_envs * n_steps
    total_steps = math.ceil(run.steps / rollout) * rollout
    py_env = make_training_env(gym_id, p, run.seed, run.env_kwargs)
    tf_env = tf_py_environment.TFPyEnvironment(py_env)
    obs_dim = int(py_env.observation_spec().shape[0])
    continuous = is_continuous(tf_env.action_spec())
    num_actions = None if continuous else int(py_env.action_spec().maximum) + 1
    action_spec = tf_env.action_spec() if continuous else None
    batch_size = None if p["batch_size"] is None else min(int(p["batch_size"]), rollout)
    minibatches = 1 if batch_size is None else math.ceil(rollout / batch_size)
    gradient_steps = total_steps // rollout * int(p["n_epochs"]) * minibatches
    spec = env_spec(gym_id, **(run.env_kwargs or {}))
    image = spec.obs_shape if spec.is_image else None
    agent = make_ppo_agent(
        tf_env.time_step_spec(), tf_env.action_spec(), p, gradient_steps, kickstart=run.kickstart,
        observation_shape=image, observation_scale=spec.obs_scale,
    )  # fmt: skip
    layers, convs = dense_layers(agent.actor_net), conv_layers(agent.actor_net)
    normaliser = agent.collect_policy.observation_normalizer  # None for frames: they are scaled instead
    normaliser_variables = [] if normaliser is None else tf.nest.flatten(normaliser.variables)
    scaler = ReturnScaler(n_envs, float(p["gamma"])) if p["normalize_returns"] else None
    env_steps = run.attach(
        [*agent.actor_net.variables, *normaliser_variables],
        resume,
        agent=agent,
        **({"return_scaler": scaler} if scaler else {}),
    )
    if env_steps > 0:
        seed_training_env(py_env, run.seed + env_steps)

    replay = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=n_envs, max_length=n_steps
    )
    collect_policy = agent.collect_policy

    def collect_step(time_step):
        action_step = collect_policy.action(time_step)
        next_time_step = tf_env.step(action_step.action)
        added = replay.add_batch(trajectory.from_transition(time_step, action_step, next_time_step))
        with tf.control_dependencies([added]):
            return tf.nest.map_structure(tf.identity, next_time_step)

    # autograph=False (a hand-written tf.while_loop): converting TF-Agents' code with autograph took seconds.
    @common.function(autograph=False)
    def collect(time_step):
        step = tf.constant(0)
        return tf.while_loop(lambda i, _: i < n_steps, lambda i, t: (i + 1, collect_step(t)), (step, time_step))[1]

    train = make_ppo_update(agent, int(p["n_epochs"]), rollout, batch_size)
    time_step = tf_env.reset()
    running = np.zeros(n_envs)
    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < total_steps and not run.reached:
            with environment_errors():
                time_step = collect(time_step)
            experience = replay.gather_all()
            rewards = experience.reward.numpy()
            if scaler is not None:
                scaled = scaler(rewards, experience.step_type.numpy(), experience.next_step_type.numpy())
                experience = experience._replace(reward=tf.constant(scaled))
            if run.kickstart is not None:
                run.kickstart.set_step(env_steps)
            loss = train(experience)
            replay.clear()
            # Episode returns for the logs, from the rollout's raw rewards.
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
                fixed = frame_normaliser(agent.actor_net) if convs else ppo_normaliser(agent)
                acting = numpy_policy(layers, fixed, action_spec=action_spec, convs=convs, observation_shape=image)
                run.evaluate(env_steps, acting)
            if run.due(run.checkpoint_every, before, env_steps) or (run.checkpoint_every and env_steps >= total_steps):
                run.save_checkpoint(env_steps)
    tf_env.close()
    run.restore_best()
    return export_ppo_teacher(agent, obs_dim, num_actions, action_spec=action_spec), env_steps
