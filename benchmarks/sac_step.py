"""SAC's gradient step: kd_rl's compiled training round, one call per step, and Stable-Baselines3's.

MuJoCo SAC takes one gradient step per environment step, a million of them per
teacher, so the cost of a step decides whether a teacher trains in an
afternoon. On Hopper-v5's shapes (11 observations, 3 actions) with
RL-Baselines3-Zoo's settings (two 256-unit layers for the actor and each
critic, batches of 256, automatic entropy tuning), each side runs
``gradient_steps`` steps per round on minibatches drawn beforehand:

* kd_rl's round, `kd_rl.teachers.off_policy.make_train_round`: every step of a
  round in one compiled call (TF-Agents' ``SacAgent.train`` in a
  ``tf.while_loop``), as ``kd-rl train-teacher --algo sac`` runs it;
* the same agent with one compiled call per step, as kd_rl ran SAC before;
* SB3's ``SAC.train(gradient_steps, batch_size)`` (PyTorch on ``threads``
  threads), in its own venv (`_sac_step_peer.py`).

Medians over ``rounds`` rounds after a warm-up round, in one run.

    python benchmarks/run.py sac_step [--rounds 10]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from _common import quiet_tensorflow

quiet_tensorflow()


def _kd_rl_times(gradient_steps: int, rounds: int, batch_size: int) -> dict:
    import tensorflow as tf
    from tf_agents.specs import tensor_spec
    from tf_agents.trajectories import policy_step, trajectory
    from tf_agents.trajectories import time_step as ts
    from tf_agents.utils import common

    from kd_rl.teachers import load_hyperparameters
    from kd_rl.teachers.agents import make_sac_agent
    from kd_rl.teachers.off_policy import make_train_round
    from kd_rl.teachers.sac import LOSS_NAMES

    _, params = load_hyperparameters("Hopper-v5", "sac")
    observation = tensor_spec.BoundedTensorSpec([11], tf.float32, -1e6, 1e6)
    time_step_spec = ts.time_step_spec(observation)
    action_spec = tensor_spec.BoundedTensorSpec([3], tf.float32, -1.0, 1.0)
    agent = make_sac_agent(time_step_spec, action_spec, params)
    agent.initialize()
    rng = np.random.default_rng(0)
    shape = (gradient_steps, batch_size)

    def batches():
        mid = np.full(shape, ts.StepType.MID, np.int32)
        ones, reward = np.ones(shape, np.float32), rng.normal(size=shape).astype(np.float32)
        return trajectory.Transition(
            ts.TimeStep(mid, np.zeros(shape, np.float32), ones, rng.normal(size=(*shape, 11)).astype(np.float32)),
            policy_step.PolicyStep(rng.uniform(-1, 1, size=(*shape, 3)).astype(np.float32), (), ()),
            ts.TimeStep(mid, reward, ones, rng.normal(size=(*shape, 11)).astype(np.float32)),
        )

    round_ = make_train_round(agent, gradient_steps, LOSS_NAMES)
    one = common.function(agent.train)
    ways = {
        "round": lambda b: round_(b)["loss"].numpy(),
        "per_step": lambda b: [one(tf.nest.map_structure(lambda t, i=i: t[i], b)).loss.numpy()
                               for i in range(gradient_steps)],
    }  # fmt: skip
    out = {}
    for name, run in ways.items():
        run(batches())  # warm-up: tracing
        times = []
        for _ in range(rounds):
            b = batches()
            start = time.perf_counter()
            run(b)
            times.append((time.perf_counter() - start) * 1000 / gradient_steps)
        out[name] = {"ms_per_step": float(np.median(times)), "rounds_ms_per_step": times}
        print(name, f"{out[name]['ms_per_step']:.2f} ms per step", flush=True)
    return out


def measure(gradient_steps: int, rounds: int, threads: int, sb3: bool = True, batch_size: int = 256) -> tuple:
    """kd_rl's SAC round, one call per step, and SB3's SAC: milliseconds per gradient step.

    Args:
        gradient_steps: gradient steps per round (kd_rl's call; SB3's ``train`` call).
        rounds: timed rounds per way, after a warm-up round.
        threads: PyTorch threads of the SB3 side (TensorFlow uses the machine's cores).
        sb3: measure SB3 too (``--no-sb3``: kd_rl alone).
        batch_size: transitions per gradient step.
    """
    from _sb3_venv import run_peer, sb3_python

    results = {"kd_rl": _kd_rl_times(gradient_steps, rounds, batch_size)}
    if sb3:
        cmd = [str(sb3_python()), str(Path(__file__).with_name("_sac_step_peer.py")),
               "--gradient-steps", str(gradient_steps), "--rounds", str(rounds), "--threads", str(threads)]  # fmt: skip
        results["sb3"] = run_peer(cmd, "SB3 SAC")
        print("sb3", f"{results['sb3']['ms_per_step']:.2f} ms per step", flush=True)
    kd = results["kd_rl"]
    rows = [
        f"Hopper-v5's shapes (11 observations, 3 actions), RL-Zoo's SAC networks (256, 256) and batches of "
        f"{batch_size}; {gradient_steps} gradient steps per round, median of {rounds} rounds after a warm-up. "
        f"SB3 on {threads} PyTorch thread(s); TensorFlow on the machine's cores.\n",
        "| way | ms per gradient step (median) | gradient steps per second |",
        "|---|---|---|",
        f"| kd_rl: a round in one compiled call | {kd['round']['ms_per_step']:.2f} | "
        f"{1000 / kd['round']['ms_per_step']:,.0f} |",
        f"| kd_rl: one compiled call per step (before) | {kd['per_step']['ms_per_step']:.2f} | "
        f"{1000 / kd['per_step']['ms_per_step']:,.0f} |",
    ]
    if sb3:
        rows.append(
            f"| Stable-Baselines3 SAC.train | {results['sb3']['ms_per_step']:.2f} | "
            f"{1000 / results['sb3']['ms_per_step']:,.0f} |"
        )
        rows.append(
            f"\nkd_rl's round takes {kd['round']['ms_per_step'] / results['sb3']['ms_per_step']:.2f}x SB3's time per "
            f"step, and {kd['round']['ms_per_step'] / kd['per_step']['ms_per_step']:.2f}x its own one call per step."
        )
    args = {"gradient_steps": gradient_steps, "rounds": rounds, "threads": threads, "sb3": sb3,
            "batch_size": batch_size}  # fmt: skip
    return {"args": args, "results": results}, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
