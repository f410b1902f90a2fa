"""Wall seconds for imitation's DAgger to distil a kd_rl teacher, the peer of kd_rl's distillation.

It runs inside the imitation venv that ``_imitation_venv.py`` makes, so it imports
neither kd_rl nor TensorFlow. The teacher comes as kd_rl's NumPy export (``kd-rl
export CartPole-v1-dqn --format numpy --out teacher.npz``)::

    python _dagger_peer.py --teacher teacher.npz --seed 0 --budget 10000 --hidden 50 \\
        --eval-every 2000 --eval-episodes 10 --final-episodes 100 --threshold 500 [--threads 1]

and prints one JSON line on stdout (progress goes to stderr).

The expert is the teacher's MLP rebuilt as a Stable-Baselines3 policy
(`TeacherPolicy`): the ``.npz``'s dense layers, hidden activation and fixed
observation normaliser in torch, acting greedily (the argmax of its outputs, a
DQN teacher's Q-values or a policy teacher's logits). Before training its
argmax is checked against a NumPy forward pass of the same ``.npz`` on states
from a few of its own episodes and on random ones.

The student is an SB3 ``ActorCriticPolicy`` with ``net_arch=hidden`` and ReLU
(one layer of 50 for ``--hidden 50``, as kd_rl's student), trained by
``imitation.algorithms.dagger.SimpleDAggerTrainer`` on 8 copies of the environment
(``imitation.util.util.make_vec_env``, as kd_rl collects with 8) with imitation
1.0.1's defaults:

- rounds of ``SimpleDAggerTrainer.train``: each collects until at least 3
  episodes and 500 steps are complete (``rollout_round_min_episodes=3``,
  ``rollout_round_min_timesteps=500``), then lets every environment finish its
  episode; the expert labels every visited state, and with probability
  ``1 - beta`` per environment and step the student's action, sampled from its
  distribution (``predict(deterministic=False)``, imitation's choice), is the one
  executed;
- ``beta`` from ``LinearBetaSchedule(15)``: 1 in round 0, falling by 1/15 a round;
- after each round, BC (``imitation.algorithms.bc.BC``) trains on every labelled
  state so far for 4 epochs (``DAggerTrainer.DEFAULT_N_EPOCHS``), batch 32, Adam
  at torch's default learning rate (1e-3), entropy weight 1e-3, no L2;
- demonstrations go through imitation's scratch directory on disk (a temporary
  one here), as DAgger stores them.

Two things differ from a bare ``trainer.train(budget)``, neither of them training:
BC's rollout logging (``log_rollouts_venv``, which ``extend_and_update`` points at
the training environments, 5 student episodes at each round's first batch) is
off and so is its tqdm progress bar; imitation's logger writes to the scratch
directory instead of stdout.

What is counted:

- ``labelled_states``: transitions in DAgger's dataset, each a state with its
  expert label, i.e. what BC trains on. imitation's own count
  (``dagger_timesteps``), which ends the loop once it reaches ``--budget``, counts
  the episodes ``generate_trajectories`` returns, which can leave out episodes
  that environments finish while others are still running; those are saved and
  trained on all the same. Rounds end on episode boundaries, so both counts
  can pass the budget by up to a round. ``expert_queries`` counts every state
  the expert labelled, those in episodes a round cut off included;
- ``train_seconds``: wall seconds of ``SimpleDAggerTrainer.train`` (collection,
  labelling, demonstrations written and read back, BC updates), evaluations
  excluded; it starts once the environments, expert, student and trainer exist;
- ``curve``: after the first round to reach each multiple of ``--eval-every``
  labelled states (and after the last round), ``--eval-episodes`` greedy
  (``deterministic=True``) student episodes on a separate environment seeded
  ``seed + 10000 + i``; their time is measured (``eval_seconds``) and left out of
  the train seconds;
- ``seconds_to_threshold``: the train seconds at the first curve point whose mean
  return reaches ``--threshold`` (None if none does);
- ``final``: ``--final-episodes`` greedy episodes, seeded as the curve's;
- ``total_seconds``: from building the environments to the end of the final
  evaluation, the expert check and the curve's evaluations included.

PyTorch uses ``--threads`` threads (default 1, ``torch.set_num_threads``), so it
meets kd_rl on even terms on a small machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ENV_ID = "CartPole-v1"
N_ENVS = 8
#: Hidden activations of a kd_rl NumPy export, as NumPy (the check) computes them.
NUMPY_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}


def _log(message: str) -> None:
    print(f"[dagger-peer] {message}", file=sys.stderr, flush=True)


def load_teacher(path: str | Path) -> dict:
    """Read kd_rl's NumPy export: ``weights`` [(kernel [in, out], bias [out])], ``activation``, normaliser."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if "action_low" in data.files:
            raise ValueError(f"{path}: a continuous policy; this peer distils discrete (argmax) teachers")
        teacher = {
            "weights": [
                (data[f"kernel_{i}"].astype(np.float32), data[f"bias_{i}"].astype(np.float32))
                for i in range(meta["layers"])
            ],
            "activation": meta["activation"],
            "observation_mean": data["observation_mean"].astype(np.float32) if "observation_mean" in data else None,
            "observation_std": data["observation_std"].astype(np.float32) if "observation_std" in data else None,
            "observation_clip": meta.get("observation_clip"),
        }
    if teacher["activation"] not in NUMPY_ACTIVATIONS:
        raise ValueError(f"{path}: unknown activation {teacher['activation']!r}")
    return teacher


def numpy_outputs(teacher: dict, observations: np.ndarray) -> np.ndarray:
    """The teacher's outputs (Q-values or logits) by NumPy, as kd_rl's ``NumpyPolicy`` computes them."""
    x = np.asarray(observations, np.float32)
    if teacher["observation_mean"] is not None:
        x = x - teacher["observation_mean"]
    if teacher["observation_std"] is not None:
        x = x / teacher["observation_std"]
    if teacher["observation_clip"] is not None:
        x = np.clip(x, -teacher["observation_clip"], teacher["observation_clip"])
    act = NUMPY_ACTIVATIONS[teacher["activation"]]
    for kernel, bias in teacher["weights"][:-1]:
        x = act(x @ kernel + bias)
    kernel, bias = teacher["weights"][-1]
    return x @ kernel + bias


def make_teacher_policy(teacher: dict, observation_space, action_space):
    """The teacher as an SB3 ``BasePolicy`` whose ``predict`` gives the argmax of its outputs."""
    import torch
    from stable_baselines3.common.policies import BasePolicy
    from torch import nn

    activations = {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "linear": lambda x: x,
        "elu": nn.functional.elu,
        "softplus": nn.functional.softplus,
        "swish": nn.functional.silu,
    }

    class TeacherPolicy(BasePolicy):
        """kd_rl's teacher MLP in torch: normaliser, dense layers, greedy argmax."""

        def __init__(self):
            super().__init__(observation_space, action_space)
            self.layers = nn.ModuleList()
            for kernel, bias in teacher["weights"]:
                layer = nn.Linear(kernel.shape[0], kernel.shape[1])
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(kernel.T.copy()))
                    layer.bias.copy_(torch.from_numpy(bias))
                self.layers.append(layer)
            self.activation = activations[teacher["activation"]]
            self.mean = None if teacher["observation_mean"] is None else torch.from_numpy(teacher["observation_mean"])
            self.std = None if teacher["observation_std"] is None else torch.from_numpy(teacher["observation_std"])
            self.clip = teacher["observation_clip"]
            self.requires_grad_(False)
            self.queries = 0  # states labelled, i.e. rows passed to _predict

        def outputs(self, observation: torch.Tensor) -> torch.Tensor:
            x = observation.float()
            if self.mean is not None:
                x = x - self.mean
            if self.std is not None:
                x = x / self.std
            if self.clip is not None:
                x = x.clamp(-self.clip, self.clip)
            for layer in self.layers[:-1]:
                x = self.activation(layer(x))
            return self.layers[-1](x)

        def forward(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
            return self._predict(observation, deterministic)

        def _predict(self, observation: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
            self.queries += observation.shape[0]
            return self.outputs(observation).argmax(dim=1)

    return TeacherPolicy()


def check_teacher(policy, teacher: dict, env_id: str, seed: int, episodes: int = 3) -> dict:
    """Compare the torch expert's argmax with NumPy's on states of its own episodes and on random ones."""
    import gymnasium as gym

    env = gym.make(env_id)
    states, returns = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + 20_000 + i)
        total, done = 0.0, False
        while not done:
            states.append(obs)
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    rng = np.random.default_rng(seed)
    states = np.concatenate([np.asarray(states, np.float32), rng.normal(size=(1000, len(states[0]))) * 2.0])
    states = states.astype(np.float32)
    reference = numpy_outputs(teacher, states)
    torch_actions, _ = policy.predict(states, deterministic=True)
    top2 = np.sort(reference, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-5  # ties may go either way in float32
    agree = torch_actions == reference.argmax(axis=1)
    if not agree[decided].all():
        raise RuntimeError(f"the torch expert's argmax differs from NumPy's on {int((~agree[decided]).sum())} states")
    return {"states": len(states), "agreeing": int(agree.sum()), "episode_returns": returns}


def parameter_count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def train(
    teacher_npz: str,
    seed: int,
    budget: int,
    hidden: list[int],
    eval_every: int,
    eval_episodes: int,
    final_episodes: int,
    threshold: float,
    threads: int = 1,
) -> dict:
    """Distil the teacher with DAgger for ``budget`` labelled states (see the module doc); return the record."""
    import datasets
    import gymnasium as gym
    import imitation
    import stable_baselines3 as sb3
    import torch
    from imitation.algorithms import bc
    from imitation.algorithms.dagger import SimpleDAggerTrainer
    from imitation.util import logger as imit_logger
    from imitation.util.util import make_vec_env
    from stable_baselines3.common.policies import ActorCriticPolicy

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    datasets.disable_progress_bars()  # imitation saves each demonstration as a Hugging Face dataset
    # imitation 1.0.1's BC logs float(loss) of a tensor that needs grad, which recent torch warns about.
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True", category=UserWarning)
    teacher = load_teacher(teacher_npz)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    venv = make_vec_env(ENV_ID, rng=rng, n_envs=N_ENVS)
    expert = make_teacher_policy(teacher, venv.observation_space, venv.action_space)
    check = check_teacher(expert, teacher, ENV_ID, seed)
    _log(f"expert check: {check['agreeing']}/{check['states']} argmaxes agree, returns {check['episode_returns']}")
    expert.queries = 0

    student = ActorCriticPolicy(
        venv.observation_space,
        venv.action_space,
        # As imitation's default BC policy: a learning rate that fails loudly if SB3's optimiser were used.
        lr_schedule=lambda _: torch.finfo(torch.float32).max,
        net_arch=list(hidden),
        activation_fn=torch.nn.ReLU,
    )
    acting = parameter_count(student.mlp_extractor.policy_net) + parameter_count(student.action_net)

    eval_env = gym.make(ENV_ID)

    def evaluate(episodes: int) -> tuple[float, float]:
        began = time.perf_counter()
        returns = []
        for i in range(episodes):
            obs, _ = eval_env.reset(seed=seed + 10_000 + i)
            total, done = 0.0, False
            while not done:
                action, _ = student.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = eval_env.step(int(action))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return float(np.mean(returns)), time.perf_counter() - began

    with tempfile.TemporaryDirectory(prefix="kd_rl-dagger-") as scratch:
        logger = imit_logger.configure(folder=Path(scratch) / "log", format_strs=["log", "csv"])
        bc_trainer = bc.BC(
            observation_space=venv.observation_space,
            action_space=venv.action_space,
            rng=rng,
            policy=student,
            custom_logger=logger,
        )
        trainer = SimpleDAggerTrainer(
            venv=venv,
            scratch_dir=Path(scratch) / "dagger",
            expert_policy=expert,
            rng=rng,
            bc_trainer=bc_trainer,
            custom_logger=logger,
        )
        curve: list[dict] = []
        state = {"eval_seconds": 0.0, "next_eval": eval_every, "dagger_timesteps": 0}
        record = logger.record

        def record_and_count(key, value, *args, **kwargs):
            """imitation's own count of labelled states, which train() logs before each round's BC update."""
            if key == "dagger/total_timesteps":
                state["dagger_timesteps"] = int(value)
            return record(key, value, *args, **kwargs)

        logger.record = record_and_count
        extend_and_update = trainer.extend_and_update

        def curve_point(labelled: int, round_num: int, so_far: float) -> None:
            """A greedy evaluation of the student now, its time kept apart from training's."""
            mean, seconds = evaluate(eval_episodes)
            state["eval_seconds"] += seconds
            curve.append(
                {
                    "labelled_states": labelled,
                    "round": round_num,
                    "train_seconds_so_far": round(so_far, 3),
                    "mean_return": round(mean, 2),
                    "eval_seconds": round(seconds, 3),
                }
            )
            _log(f"round {round_num}: {labelled} labelled states, {so_far:.1f} s, mean return {mean:.1f}")

        def round_then_evaluate(bc_train_kwargs=None) -> int:
            """One round's BC update, then a greedy evaluation if the labelled states passed a multiple."""
            round_num = extend_and_update(bc_train_kwargs)
            labelled = sum(len(traj) for traj in trainer._all_demos)
            last = state["dagger_timesteps"] >= budget  # train() stops after this round
            if labelled >= state["next_eval"] or last:
                curve_point(labelled, round_num, time.perf_counter() - train_start - state["eval_seconds"])
                state["next_eval"] = (labelled // eval_every + 1) * eval_every
            return round_num

        trainer.extend_and_update = round_then_evaluate
        train_start = time.perf_counter()
        trainer.train(
            total_timesteps=budget,
            bc_train_kwargs={"log_rollouts_venv": None, "progress_bar": False},
        )
        train_wall = time.perf_counter() - train_start
        labelled = sum(len(traj) for traj in trainer._all_demos)
        rounds = trainer.round_num
        if not curve or curve[-1]["labelled_states"] != labelled:
            curve_point(labelled, rounds, train_wall - state["eval_seconds"])
    train_seconds = train_wall - state["eval_seconds"]
    final_mean, final_seconds = evaluate(final_episodes)
    total = time.perf_counter() - start
    _log(f"final: mean return {final_mean:.1f} over {final_episodes} episodes; {train_seconds:.1f} s training")
    reached = next((row for row in curve if row["mean_return"] >= threshold), None)
    return {
        "framework": "imitation",
        "algo": "dagger",
        "imitation_version": imitation.__version__,
        "sb3_version": sb3.__version__,
        "torch_version": torch.__version__,
        "gymnasium_version": gym.__version__,
        "numpy_version": np.__version__,
        "env": ENV_ID,
        "n_envs": N_ENVS,
        "teacher": str(teacher_npz),
        "teacher_parameters": int(sum(k.size + b.size for k, b in teacher["weights"])),
        "teacher_check": check,
        "seed": seed,
        "budget": budget,
        "hidden": list(hidden),
        "threshold": threshold,
        "threads": threads,
        "labelled_states": labelled,
        "dagger_timesteps": state["dagger_timesteps"],
        "expert_queries": expert.queries,
        "rounds": rounds,
        "student_parameters": acting,
        "student_parameters_with_value_head": parameter_count(student),
        "train_seconds": round(train_seconds, 3),
        "labelled_states_per_second": round(labelled / train_seconds, 1),
        "curve": curve,
        "seconds_to_threshold": reached["train_seconds_so_far"] if reached else None,
        "labelled_states_to_threshold": reached["labelled_states"] if reached else None,
        "final": {"episodes": final_episodes, "mean_return": round(final_mean, 2), "seconds": round(final_seconds, 3)},
        "total_seconds": round(total, 3),
        "settings": {
            "beta_schedule": "LinearBetaSchedule(15)",
            "bc_epochs_per_round": SimpleDAggerTrainer.DEFAULT_N_EPOCHS,
            "bc_batch_size": bc_trainer.batch_size,
            "optimizer": f"{type(bc_trainer.optimizer).__name__} lr {bc_trainer.optimizer.defaults['lr']}",
            "ent_weight": bc_trainer.loss_calculator.ent_weight,
            "l2_weight": bc_trainer.loss_calculator.l2_weight,
            "rollout_round_min_episodes": 3,
            "rollout_round_min_timesteps": 500,
            "log_rollouts_venv": None,
            "student": f"ActorCriticPolicy(net_arch={list(hidden)}, activation_fn=ReLU)",
        },
    }


def _check(args: argparse.Namespace) -> None:
    for name in ("budget", "eval_every", "eval_episodes", "final_episodes", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected a positive integer")
    if not args.hidden or min(args.hidden) < 1:
        raise ValueError(f"--hidden {args.hidden}: expected positive layer widths")
    if not Path(args.teacher).is_file():
        raise ValueError(f"--teacher {args.teacher}: no such file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", required=True, help="the teacher's kd_rl NumPy export (.npz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, required=True, help="labelled states (imitation's count) at least")
    parser.add_argument("--hidden", type=int, nargs="+", required=True, help="the student's hidden layer widths")
    parser.add_argument("--eval-every", type=int, required=True, help="labelled states between greedy evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--final-episodes", type=int, default=100)
    parser.add_argument("--threshold", type=float, required=True, help="mean return that counts as reached")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (torch.set_num_threads)")
    args = parser.parse_args()
    try:
        _check(args)
    except ValueError as err:
        print(f"_dagger_peer.py: {err}", file=sys.stderr)
        sys.exit(2)
    record = train(
        args.teacher,
        args.seed,
        args.budget,
        args.hidden,
        args.eval_every,
        args.eval_episodes,
        args.final_episodes,
        args.threshold,
        args.threads,
    )
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
