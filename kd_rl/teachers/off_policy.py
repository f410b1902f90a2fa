"""The off-policy loop DQN and SAC share, CleanRL-style: act, store, learn, log, evaluate, checkpoint.

`OffPolicyTrainer` holds everything the two algorithms do alike: the
``n_envs`` training environments (`kd_rl.teachers.collect.OffPolicyEnvs`), the
NumPy replay buffer (`kd_rl.teachers.replay.TransitionBuffer`), the
checkpoint and a resumed run's fresh episodes (`kd_rl.teachers.run.Run`), the
training rounds due every ``train_freq`` environment steps counted over all
environments past ``learning_starts`` (`kd_rl.teachers.collect.training_rounds`;
Stable-Baselines3 counts steps of the whole vector of environments instead),
a kickstarted run's λ set before each round, and the logging, evaluation and
checkpoints after each batch of steps (`kd_rl.teachers.collect.OffPolicyProgress`).
The last batch of steps may pass ``run.steps`` by up to ``n_envs - 1``.

A subclass says only what differs: the agent and the network that makes the
exported policy (`build`), how the environments act (`act`), one training
round (`train_round`), the policy periodic evaluations score (`eval_policy`),
the losses to log (`summarise`) and the export (`export`):
`kd_rl.teachers.dqn.DqnTrainer` and `kd_rl.teachers.sac.SacTrainer`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.utils import common

from kd_rl.envs import env_spec
from kd_rl.models import TeacherModel
from kd_rl.teachers.collect import (
    OffPolicyEnvs,
    OffPolicyProgress,
    make_training_env,
    seed_training_env,
    training_rounds,
)
from kd_rl.teachers.replay import TransitionBuffer
from kd_rl.teachers.run import Run
from kd_rl.teachers.to_keras import conv_layers, dense_layers

__all__ = ["OffPolicyTrainer"]


def make_train_round(agent, gradient_steps: int, names: tuple[str, ...] = ("loss",)):
    """The compiled training round of an off-policy agent: ``update(batches) -> {name: mean over the steps}``.

    ``batches`` is a TF-Agents ``Transition`` whose tensors have a leading
    ``[gradient_steps, batch_size]``: minibatch ``i`` is ``batches[i]``.
    ``agent.train`` runs on each in order, in a ``tf.while_loop`` written by
    hand (``autograph=False``: TF-Agents' code is traced, not converted), so a
    round is one call from Python, not one per gradient step. ``names``: the
    scalars to average, ``"loss"`` (the ``LossInfo``'s) and fields of its ``extra``.
    """

    def values(info) -> list:
        return [info.loss if name == "loss" else getattr(info.extra, name) for name in names]

    def step(i, totals, batches):
        info = agent.train(tf.nest.map_structure(lambda t: t[i], batches))
        return i + 1, [t + tf.cast(v, tf.float32) for t, v in zip(totals, values(info))], batches

    @common.function(autograph=False)
    def update(batches):
        start = (tf.constant(0), [tf.constant(0.0) for _ in names], batches)
        _, totals, _ = tf.while_loop(lambda i, *_: i < gradient_steps, step, start)
        return {name: total / gradient_steps for name, total in zip(names, totals)}

    return update


def sample_round(buffer, rng: np.random.Generator, gradient_steps: int, batch_size: int):
    """A round's minibatches from ``buffer``, drawn at once: tensors ``[gradient_steps, batch_size, ...]``."""
    batches = buffer.sample(rng, gradient_steps * batch_size)
    return tf.nest.map_structure(lambda x: x.reshape(gradient_steps, batch_size, *x.shape[1:]), batches)


class OffPolicyTrainer:
    """One off-policy teacher run: set up (or resume), then `train`.

    Args:
        run: The run's bookkeeping (hyperparameters in ``run.params``).
        gym_id: The Gymnasium id.
        resume: Continue from the run folder's checkpoint, if there is one.

    Attributes:
        params: ``run.params``.
        py_env: The batched training environments.
        time_step_spec, action_spec: Their TF-Agents specs.
        obs_dim: Observation size.
        observation_shape: The image shape ``(height, width, channels)`` for
            image observations (a convolutional network's input), else None.
        batch_size, train_freq, gradient_steps, learning_starts: From ``params``.
        agent: The TF-Agents agent (`build`).
        layers: The Dense layers of the network the exported policy is made of.
        convs: Its Conv2D layers (empty for an MLP).
        buffer: The replay buffer.
        envs: The environments as `OffPolicyEnvs`.
        rng: The run's NumPy generator (checkpointed with it).
    """

    #: The action's size in the replay buffer: None for a discrete action.
    action_dim: int | None = None
    #: Steps an n-step transition spans (DQN's ``n_step``); 1 for one-step transitions.
    n_step: int = 1

    def __init__(self, run: Run, gym_id: str, resume: bool):
        p = self.params = run.params
        self.run = run
        self.py_env = make_training_env(gym_id, p, run.seed, run.env_kwargs)
        self.time_step_spec = tensor_spec.from_spec(self.py_env.time_step_spec())
        self.action_spec = tensor_spec.from_spec(self.py_env.action_spec())
        self.obs_dim = int(self.py_env.observation_spec().shape[0])
        spec = env_spec(gym_id, **(run.env_kwargs or {}))
        self.observation_shape = spec.obs_shape if spec.is_image else None
        self.observation_scale = spec.obs_scale
        self.batch_size, self.train_freq = int(p["batch_size"]), int(p["train_freq"])
        self.gradient_steps, self.learning_starts = int(p["gradient_steps"]), int(p["learning_starts"])
        rounds = max((run.steps - self.learning_starts) // self.train_freq, 1)
        network, self.agent = self.build(rounds * self.gradient_steps)
        self.layers, self.convs = dense_layers(network), conv_layers(network)
        self.buffer = TransitionBuffer(
            min(int(p["buffer_size"]), run.steps), self.obs_dim, action_dim=self.action_dim,
            obs_dtype=np.uint8 if spec.is_image else np.float32,
        )  # fmt: skip
        self.env_steps = run.attach(network.variables, resume, agent=self.agent, replay_buffer=self.buffer)
        self.envs = OffPolicyEnvs(
            self.py_env, n_step=self.n_step, gamma=float(p["gamma"]), clip_reward=bool(p.get("clip_reward", False))
        )
        if self.env_steps > 0:
            self.buffer.sync_from_variables()
            # The environments' states are not checkpointed: start new episodes,
            # seeded from the step reached so a resumed run is reproducible too.
            seed_training_env(self.py_env, run.seed + self.env_steps)
            self.envs.reset()
        self.rng = run.rng

    # ------------------------------------------------------------ what differs

    def build(self, train_steps: int) -> tuple:
        """``(network, agent)``: the network whose Dense layers make the exported policy, and the agent.

        Args:
            train_steps: Gradient steps the whole run takes (for schedules).
        """
        raise NotImplementedError

    def act(self, env_steps: int) -> tuple[np.ndarray, dict]:
        """The actions of every environment for the next step, and scalars to log (DQN's epsilon)."""
        raise NotImplementedError

    def train_round(self) -> list:
        """One training round (``gradient_steps`` gradient steps); the losses to summarise."""
        raise NotImplementedError

    def eval_policy(self):
        """The policy a periodic evaluation scores (a NumPy copy of the network)."""
        raise NotImplementedError

    def summarise(self, losses: list) -> dict:
        """The scalars to log from the rounds' losses since the last log (an empty list when none ran)."""
        raise NotImplementedError

    def export(self) -> TeacherModel:
        """The trained network as a Keras 3 `kd_rl.models.TeacherModel`."""
        raise NotImplementedError

    # ------------------------------------------------------------ the loop

    def train(self) -> tuple[TeacherModel, int]:
        """Train to ``run.steps`` (or ``run.stop_return``); return the exported teacher and the steps reached."""
        run, envs, buffer, env_steps = self.run, self.envs, self.buffer, self.env_steps
        progress = OffPolicyProgress(run, buffer, env_steps, self.summarise)
        with tf.summary.record_if(False):  # TF-Agents' own per-train-step summaries are too costly here.
            while env_steps < run.steps and not run.reached:
                actions, scalars = self.act(env_steps)
                taken, ended = envs.step(actions, buffer)
                progress.finished += ended
                before, env_steps = env_steps, env_steps + taken
                for due_at in training_rounds(before, env_steps, self.train_freq, self.learning_starts):
                    if buffer.size == 0:  # n-step transitions not written yet (learning_starts 0)
                        continue
                    if run.kickstart is not None:
                        run.kickstart.set_step(due_at)
                    progress.losses += self.train_round()
                progress.after(before, env_steps, self.eval_policy, **scalars)
        envs.close()
        run.restore_best()
        return self.export(), env_steps
