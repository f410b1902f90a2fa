"""The DQN training loop, CleanRL-style: act, store, learn, log, evaluate, checkpoint.

A kickstarted run (``run.kickstart``) sets the distillation weight λ from the
environment steps before each training round (`kd_rl.teachers.kickstart`).

Python stays out of the inner loop's costly parts: the agent acts with a
NumPy copy of the Q-network (refreshed after every training round) and samples
a NumPy replay buffer; only the training round runs in TensorFlow: all of its
``gradient_steps`` minibatches go in at once and `make_dqn_update` runs
``agent.train`` on each in one compiled loop (one call from Python per round,
not one per gradient step).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.utils import common

from kd_rl.models import TeacherModel
from kd_rl.teachers.agents import make_dqn_agent, make_q_network
from kd_rl.teachers.collect import (
    OffPolicyEnvs,
    OffPolicyProgress,
    make_training_env,
    seed_training_env,
    training_rounds,
)
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run
from kd_rl.teachers.to_keras import dense_layers, export_dqn_teacher, numpy_policy

__all__ = ["make_dqn_update", "train_dqn"]


def make_dqn_update(agent, gradient_steps: int):
    """The compiled training round: ``update(batches) -> mean loss`` over ``gradient_steps`` gradient steps.

    ``batches`` is a TF-Agents ``Transition`` whose tensors have a leading
    ``[gradient_steps, batch_size]``: minibatch ``i`` is ``batches[i]``.
    ``agent.train`` runs on each in order, in a ``tf.while_loop`` written by
    hand (``autograph=False``: TF-Agents' code is traced, not converted).
    """

    def step(i, total, batches):
        loss = agent.train(tf.nest.map_structure(lambda t: t[i], batches)).loss
        return i + 1, total + loss, batches

    @common.function(autograph=False)
    def update(batches):
        start = (tf.constant(0), tf.constant(0.0), batches)
        _, total, _ = tf.while_loop(lambda i, *_: i < gradient_steps, step, start)
        return total / gradient_steps

    return update


def train_dqn(run: Run, gym_id: str, resume: bool) -> tuple[TeacherModel, int]:
    """Train a DQN teacher for ``run.steps`` environment steps; return it exported and the steps reached.

    ``n_envs`` environments step together (`kd_rl.teachers.collect`), each
    epsilon-greedy on its own; a training round is due every ``train_freq``
    environment steps counted over all of them (Stable-Baselines3 counts steps
    of the whole vector of environments instead). The last batch of steps may
    pass ``run.steps`` by up to ``n_envs - 1``. With ``n_step > 1`` a step
    reaches the replay buffer ``n_step - 1`` steps late, so a round that falls
    due before anything is stored (``learning_starts: 0``) is skipped.
    """
    p = run.params
    py_env = make_training_env(gym_id, p, run.seed, run.env_kwargs)
    time_step_spec = tensor_spec.from_spec(py_env.time_step_spec())
    action_spec = tensor_spec.from_spec(py_env.action_spec())
    obs_dim, num_actions = int(py_env.observation_spec().shape[0]), int(py_env.action_spec().maximum) + 1
    batch_size, train_freq = int(p["batch_size"]), int(p["train_freq"])
    gradient_steps, learning_starts = int(p["gradient_steps"]), int(p["learning_starts"])
    rounds = max((run.steps - learning_starts) // train_freq, 1)
    q_network = make_q_network(action_spec, p, obs_dim)
    agent = make_dqn_agent(
        time_step_spec, action_spec, p, rounds * gradient_steps, q_network=q_network, kickstart=run.kickstart
    )
    layers = dense_layers(q_network)
    buffer = TransitionBuffer(min(int(p["buffer_size"]), run.steps), obs_dim)
    env_steps = run.attach(q_network.variables, resume, agent=agent, replay_buffer=buffer)
    envs = OffPolicyEnvs(py_env, n_step=int(p["n_step"]), gamma=float(p["gamma"]))
    if env_steps > 0:
        buffer.sync_from_variables()
        # The environments' states are not checkpointed: start new episodes,
        # seeded from the step reached so a resumed run is reproducible too.
        seed_training_env(py_env, run.seed + env_steps)
        envs.reset()

    train = make_dqn_update(agent, gradient_steps)
    eps_start, eps_end = float(p["exploration_initial_eps"]), float(p["exploration_final_eps"])
    eps_steps = max(float(p["exploration_fraction"]) * run.steps, 1.0)
    rng = run.rng
    act = numpy_policy(layers)
    actions = np.zeros(envs.n, np.int64)
    progress = OffPolicyProgress(run, buffer, env_steps, _mean_loss)

    with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
        while env_steps < run.steps and not run.reached:
            epsilon = eps_start + (eps_end - eps_start) * min(1.0, env_steps / eps_steps)
            acting = np.flatnonzero(envs.acting)
            if acting.size:  # random numbers only for the environments that act
                explore = rng.random(acting.size) < epsilon
                greedy = acting[~explore]
                if greedy.size:
                    actions[greedy] = np.argmax(act(envs.observations[greedy]), axis=-1)
                if explore.any():
                    actions[acting[explore]] = rng.integers(num_actions, size=int(explore.sum()))
            taken, ended = envs.step(actions, buffer)
            progress.finished += ended
            before, env_steps = env_steps, env_steps + taken

            for due_at in training_rounds(before, env_steps, train_freq, learning_starts):
                if buffer.size == 0:  # n-step transitions not written yet (learning_starts 0)
                    continue
                if run.kickstart is not None:
                    run.kickstart.set_step(due_at)
                batches = buffer.sample(rng, gradient_steps * batch_size)
                split = tf.nest.map_structure(lambda x: x.reshape(gradient_steps, batch_size, *x.shape[1:]), batches)
                progress.losses.append(train(split))
                act = numpy_policy(layers)

            progress.after(before, env_steps, lambda act=act: act, epsilon=epsilon)  # the acting policy, current
    envs.close()
    run.restore_best()
    return export_dqn_teacher(q_network, obs_dim, num_actions), env_steps


def _mean_loss(losses: list) -> dict:
    """The mean loss of a list of training rounds' mean losses (empty: none)."""
    return {"loss": float(np.mean([float(x) for x in losses]))} if losses else {}
