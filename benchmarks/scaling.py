"""Collection on Ray actors: labelled states per second for 1, 2 and 4 actors, and where the learner binds.

For a cheap teacher (the zoo's CartPole-v1 DQN, 100 units) and an expensive
one (a 2x1024 MLP, same environment), student-driven collection in rounds of
``round`` states (the live loop's ``collect_per_round``), as
`distill_policy` runs it: the one-process `Collector`, then a
`DistributedCollector` with 1, 2 and 4 actors on a local Ray instance. Each
row is the median of ``rounds`` timed rounds after one warm-up round; the
per-round overhead is the median time of a round of one state per actor
(broadcasting the student's weights, dispatching, gathering). The learner's
rate is `make_distill_step`'s: ``updates_per_round`` updates of
``batch_size`` states in one call. From these the script projects, on paper,
the loop's rate with N actors (see docs/scaling.md).

The one-process collector is measured twice, as kd_rl runs it (the policies'
forward passes in NumPy, `kd_rl.policies.fast_policy_fn`) and with
``KD_RL_FAST_POLICIES=0`` (one compiled TensorFlow call per policy and step,
kd_rl's path before issue #37), and its time is split into stepping the
environments, the teacher's labels, the student's actions and the rest (the
Python loop around them) from the collector's `kd_rl.timing.RunProfile`: what
bounds the rate.

The rounds, actors and learner settings: the row ``scaling`` of ``experiments.yml``.

    python benchmarks/run.py scaling [--rounds 5] [--round 500] [--actors 1 2 4]
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import check_choices, environment, quiet_tensorflow

quiet_tensorflow()

#: The teachers `_teacher` builds, by kind.
TEACHERS = {"cheap": "CartPole-v1-dqn (100 units)", "expensive": "2x1024 MLP"}


def _teacher(kind: str):
    from kd_rl.models import TeacherModel, load_policy

    if kind == "cheap":
        return load_policy("CartPole-v1-dqn")
    model = TeacherModel(2, hidden_units=(1024, 1024), observation_dim=4)
    model.ensure_built()
    return model


def _time_rounds(collector, num_states: int, rounds: int, warm_up: bool = True) -> list[float]:
    if warm_up:
        collector.collect(num_states)  # warm-up: traces, first episodes
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        collector.collect(num_states)
        times.append(time.perf_counter() - start)
    return times


def _learner_rate(teacher, updates: int, batch: int, rounds: int) -> float:
    """Updates per second of the live loop's stacked step."""
    import keras

    from kd_rl.distill import make_distill_step
    from kd_rl.models import StudentModel

    student = StudentModel(2, hidden_units=50, observation_dim=4)
    step = make_distill_step(teacher, student, keras.optimizers.Adam(1e-3), "kl", 0.01)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(updates, batch, 4)).astype(np.float32)
    logits = rng.normal(size=(updates, batch, 2)).astype(np.float32)
    step(obs, logits).numpy()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step(obs, logits).numpy()
        times.append(time.perf_counter() - start)
    return updates / float(np.median(times))


def project(per_actor: float, overhead: float, round_states: int, learn_seconds: float, actors: int) -> dict:
    """The loop's labelled states/s with ``actors`` actors, each labelling ``per_actor`` states/s.

    Synchronous (as `distill_policy` runs): a round takes collection
    ``round_states / (actors · per_actor) + overhead`` plus learning ``learn_seconds``.
    Pipelined (collection of the next round during the updates): the larger of the two.
    """
    collect = round_states / (actors * per_actor) + overhead
    return {
        "actors": actors,
        "collect_seconds": collect,
        "sync_states_per_s": round_states / (collect + learn_seconds),
        "pipelined_states_per_s": round_states / max(collect, learn_seconds),
        "learner_bound": collect < learn_seconds,
    }


def measure(
    rounds: int,
    round: int,
    actors: list[int],
    updates: int,
    batch: int,
    teachers: list[str],
    projected_actors: list[int],
) -> tuple[dict, str]:
    """Labelled states per second in one process and on Ray actors, and the projection to many actors.

    Args:
        rounds: timed rounds per row.
        round: states per round (collect_per_round).
        actors: the numbers of Ray actors to measure.
        updates: updates per round (updates_per_round).
        batch: states per update.
        teachers: the kinds of teacher (cheap, expensive).
        projected_actors: the numbers of actors of the projection.
    """
    import ray

    from kd_rl.data import Collector
    from kd_rl.distributed import DistributedCollector
    from kd_rl.models import StudentModel
    from kd_rl.timing import RunProfile

    check_choices("teachers", teachers, TEACHERS)
    ray.init(num_cpus=max(os.cpu_count(), max(actors)), include_dashboard=False, log_to_driver=False)
    results = {"round_states": round, "load_before": os.getloadavg(), "teachers": {}}
    compiled = []
    for kind in teachers:
        teacher = _teacher(kind)
        student = StudentModel(2, hidden_units=50, observation_dim=4)
        student.ensure_built()
        rows = []
        for fast in (True, False):
            with environment(KD_RL_FAST_POLICIES="1" if fast else "0"):
                local = Collector("CartPole-v1", teacher, student, mode="student", num_envs=8, total_steps=10**9)
            local.collect(round)  # warm-up, then a fresh profile for the timed rounds
            local.profile = RunProfile()
            times = _time_rounds(local, round, rounds, warm_up=False)
            local.close()
            parts = {k: local.profile.seconds[f"collect_{k}"] / sum(times) for k in ("env", "teacher", "student")}
            parts["loop"] = 1.0 - sum(parts.values())
            row = {"actors": 0, "states_per_s": round / float(np.median(times)), "round_s": times, "shares": parts}
            (rows.append if fast else compiled.append)(row)
            print(
                kind, "one process", "numpy" if fast else "compiled", f"{row['states_per_s']:.0f} states/s", flush=True
            )
        for n in actors:
            start = time.perf_counter()
            collector = DistributedCollector(
                "CartPole-v1", teacher, student, mode="student", num_envs=8, total_steps=10**9, actors=n
            )
            startup = time.perf_counter() - start
            try:
                times = _time_rounds(collector, round, rounds)
                overhead = _time_rounds(collector, n, rounds)
            finally:
                collector.close()
            rows.append(
                {
                    "actors": n,
                    "states_per_s": round / float(np.median(times)),
                    "round_s": times,
                    "overhead_s": float(np.median(overhead)),
                    "startup_s": startup,
                }
            )
            print(kind, n, f"{rows[-1]['states_per_s']:.0f} states/s", flush=True)
        updates_per_s = _learner_rate(teacher, updates, batch, rounds)
        one = next(r for r in rows if r["actors"] == 1)
        learn_seconds = updates / updates_per_s
        projection = [
            project(one["states_per_s"], one["overhead_s"], round, learn_seconds, n) for n in projected_actors
        ]
        results["teachers"][kind] = {
            "teacher": TEACHERS[kind],
            "rows": rows,
            "one_process_compiled": compiled[-1],
            "learner_updates_per_s": updates_per_s,
            "learn_seconds_per_round": learn_seconds,
            "projection": projection,
        }
    results["load_after"] = os.getloadavg()
    ray.shutdown()
    return results, _table(results, round, updates, batch)


def _table(results: dict, round_states: int, updates: int, batch: int) -> str:
    lines = [
        f"Student-driven collection on CartPole-v1 (8 environments per collector), rounds of {round_states} states; "
        f"load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after (2 cores "
        "shared with other work: more actors than free cores only share them).\n",
        "| teacher | collector | labelled states/s | vs one process | overhead per round | actor start-up |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["teachers"].values():
        base = r["rows"][0]["states_per_s"]
        for row in r["rows"]:
            name = "one process" if row["actors"] == 0 else f"{row['actors']} Ray actor(s)"
            overhead = f"{row['overhead_s'] * 1e3:.0f} ms" if "overhead_s" in row else "-"
            startup = f"{row['startup_s']:.0f} s" if "startup_s" in row else "-"
            lines.append(
                f"| {r['teacher']} | {name} | {row['states_per_s']:.0f} | {row['states_per_s'] / base:.2f}x | "
                f"{overhead} | {startup} |"
            )
    lines += [
        "",
        "One process, where the time goes (shares of the timed rounds, from the collector's profile), with the "
        "policies' forward passes in NumPy (kd_rl's path) and as one compiled TensorFlow call per policy and step "
        "(`KD_RL_FAST_POLICIES=0`, kd_rl's path before issue #37):\n",
        "| teacher | forward pass | labelled states/s | environments | teacher | student | loop (Python) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["teachers"].values():
        for name, row in (("NumPy", r["rows"][0]), ("compiled TF", r["one_process_compiled"])):
            sh = row["shares"]
            lines.append(
                f"| {r['teacher']} | {name} | {row['states_per_s']:.0f} | {sh['env']:.0%} | {sh['teacher']:.0%} | "
                f"{sh['student']:.0%} | {sh['loop']:.0%} |"
            )
    lines += [
        "",
        f"Projection from the 1-actor rate and the learner's measured rate ({updates} updates of "
        f"{batch} states per round of {round_states}), one core per actor:\n",
        "| teacher | learner updates/s | actors | collection s/round | learn s/round | loop states/s (sync) | "
        "loop states/s (pipelined) | bound by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results["teachers"].values():
        for p in r["projection"]:
            lines.append(
                f"| {r['teacher']} | {r['learner_updates_per_s']:.0f} | {p['actors']} | {p['collect_seconds']:.3f} | "
                f"{r['learn_seconds_per_round']:.3f} | {p['sync_states_per_s']:.0f} | "
                f"{p['pipelined_states_per_s']:.0f} | {'learner' if p['learner_bound'] else 'collection'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
