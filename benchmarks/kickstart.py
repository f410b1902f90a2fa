"""Kickstarting: how much faster than from scratch, and does it outgrow an imperfect teacher?

Three targets of issue #15, 3 seeds each (DQN students, `kd_rl.teachers.train_teacher`
with and without ``kickstart=``; the same hyperparameters and budget otherwise):

* ``speedup``: from a strong zoo teacher (two layers of 256 units) into a student at
  most half as wide; env steps until the periodic greedy evaluation (20 episodes)
  first reaches the solved score (CartPole-v1: 475, LunarLander-v3: 200),
  kickstarted against from scratch. Goal: >= 5x fewer steps. λ0 is set per
  environment (``speedup``: 1 for CartPole-v1, 10 for LunarLander-v3, where λ0 = 1
  took 40k-50k steps); runs kept from an earlier λ0 are shown beside, each λ0 with
  its own median.
* ``outgrow``: from an imperfect CartPole-v1 teacher scoring 40-70% of 475: a
  hand-made 100-unit policy that pushes by the pole's angular velocity and
  barely its angle (logits ``10 * [-s, s]``, ``s = 0.2 theta + theta'``,
  about 240 over 100 episodes). Kickstarted with a linear λ (decaying to 0 at half
  the budget) its final score (100 episodes) must exceed the teacher's and close
  at least half the gap to 475; pure distillation (`distill_policy`, KL,
  student-driven data, same student size) is shown beside it.
* ``schedule``: the same imperfect teacher with a constant λ (λ0 = 1, and λ0 = 10
  with ``--targets schedule10``): the distillation term never lets go.

Teachers, students, budgets, λ0 and the imperfect teacher's weights: the row ``kickstart`` of
``experiments.yml``.

    python benchmarks/run.py kickstart [--targets speedup outgrow schedule] [--envs CartPole-v1 LunarLander-v3]
        [--seeds 0 1 2] [--speedup-runs scratch kickstarted] [--max-steps N]

Runs of cases not asked for are kept from the last results, so the targets can be
measured one at a time; results are written after every run.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import check_choices, command_line, curve_points, iqm, machine, quiet_tensorflow, results_dir, seed_band

quiet_tensorflow()

#: The targets (``targets``), each a set of cases.
TARGETS = ("speedup", "outgrow", "schedule", "schedule10")
FIGURES = {"speedup": "img/kickstart_speedup.png", "outgrow": "img/kickstart_outgrow.png"}


def imperfect_teacher(weights: list[float]):
    """The hand-made CartPole-v1 teacher of the ``outgrow`` target: a 100-unit TeacherModel.

    ``weights`` are on (x, x', theta, theta'): the teacher's logits are ``10 * [-s, s]``, ``s = weights · obs``.
    """
    from kd_rl.models import TeacherModel

    w = np.asarray(weights, np.float32)
    model = TeacherModel(2, hidden_units=100, observation_dim=4, name="imperfect_cartpole_teacher")
    kernel = np.zeros((4, 100), np.float32)
    kernel[:, 0], kernel[:, 1] = w, -w
    out = np.zeros((100, 2), np.float32)
    out[0], out[1] = [-10.0, 10.0], [10.0, -10.0]  # logits 10 [-s, s] from relu(s) and relu(-s)
    model.set_weights([kernel, np.zeros(100, np.float32), out, np.zeros(2, np.float32)])
    return model


def _train(case: str, env: str, key: str, hidden, steps: int, eval_every: int, seed: int, **kick) -> dict:
    from kd_rl.teachers import train_teacher

    with tempfile.TemporaryDirectory() as tmp:
        m = train_teacher(
            key,
            "dqn",
            Path(tmp) / "run",
            steps=steps,
            seed=seed,
            hidden_units=tuple(hidden),
            eval_every=eval_every,
            eval_episodes=100,
            progress=False,
            **kick,
        )
        curve = curve_points(Path(tmp) / "run" / "curve.csv", "mean_return")
    return {
        "case": case,
        "env_id": env,
        "seed": seed,
        "budget": steps,
        "hidden_units": list(hidden),
        "final_mean_return": m["mean_return"],
        "exported_weights": m["exported_weights"],
        "wall_seconds": m["wall_seconds"],
        "kickstart": m.get("kickstart"),
        "curve": [(s, r) for s, r in curve],
    }


def _distill(teacher, env: str, hidden, steps: int, eval_every: int, seed: int) -> dict:
    from kd_rl.distill import DistillConfig, distill_policy

    start = time.perf_counter()
    config = DistillConfig(env_id=env, hidden_units=tuple(hidden), steps=steps, seed=seed, eval_every=eval_every)
    with tempfile.TemporaryDirectory() as tmp:
        _, m = distill_policy(teacher, config, out_dir=Path(tmp) / "run", progress=False)
        curve = curve_points(Path(tmp) / "run" / "curve.csv", "mean_return")
    return {
        "case": "outgrow/distilled",
        "env_id": env,
        "seed": seed,
        "budget": steps,
        "hidden_units": list(hidden),
        "final_mean_return": m["student_mean_return"],
        "teacher_mean_return": m["teacher_mean_return"],
        "wall_seconds": time.perf_counter() - start,
        "curve": [(s, r) for s, r in curve],
    }


def _label(case: str, kickstart_cases: dict[str, list]) -> str:
    """A run's name in tables and figures."""
    if case in kickstart_cases:
        schedule, weight = kickstart_cases[case]
        return f"kickstarted, {schedule} λ0={weight:g}"
    return case.split("/")[1]


def _weight(run: dict) -> float | None:
    """λ0 of a kickstarted run (None: not kickstarted)."""
    return (run.get("kickstart") or {}).get("weight")


def _cpu(run: dict) -> str:
    """The CPU that measured a run, shortly (episode returns differ between CPUs)."""
    return " ".join(run.get("cpu", "?").replace("(R)", "").split()[:2])


def _solved_at(run: dict, solved: float) -> int | None:
    return next((s for s, r in run["curve"] if r >= solved), None)


def table(data: dict, speedup: dict[str, list], outgrow_env: str, distill_steps: int, kickstart_cases: dict) -> str:
    """The speed-up tables per environment and the outgrow table, from the runs in ``data`` (see `measure`)."""
    _, _, outgrow_hidden, outgrow_steps, _, outgrow_solved, _ = speedup[outgrow_env]
    runs, lines = data["runs"], []
    if len(data.get("commands", [])) > 1:
        lines.append("Runs measured by: " + "; ".join(f"`{c}`" for c in data["commands"]) + ".\n")
    for env, (teacher, _, hidden, budget, _, solved, weight) in speedup.items():
        pairs = {"scratch": [r for r in runs if r["case"] == "speedup/scratch" and r["env_id"] == env]}
        kicked = [r for r in runs if r["case"] == "speedup/kickstarted" and r["env_id"] == env]
        # The configured λ0 first, then any kept from earlier runs.
        for w in sorted({_weight(r) for r in kicked}, key=lambda w: (w != weight, w)):
            pairs[f"kickstarted λ0={w:g}"] = [r for r in kicked if _weight(r) == w]
        if not any(pairs.values()):
            continue
        lines += [
            f"**{env}**: {teacher} (256x256) into a {tuple(hidden)} student, {budget:,} env steps; "
            f"env steps until a 20-episode evaluation first reaches {solved:.0f}. The final return is the "
            "exported student's over 100 episodes (`keep_best`: the best evaluation's weights); the last "
            "evaluation shows the last weights.\n",
            "| run | seed | solved at env step | final return (100 ep.) | last evaluation (20 ep.) | wall s | CPU |",
            "|---|---|---|---|---|---|---|",
        ]
        for case, rs in pairs.items():
            for r in sorted(rs, key=lambda r: r["seed"]):
                at = _solved_at(r, solved)
                lines.append(
                    f"| {case} | {r['seed']} | {'not solved' if at is None else f'{at:,}'} | "
                    f"{r['final_mean_return']:.1f} | {r['curve'][-1][1]:.1f} | {r['wall_seconds']:.0f} | "
                    f"{_cpu(r)} |"
                )
        scratch = [_solved_at(r, solved) for r in pairs["scratch"]]
        kick = [_solved_at(r, solved) for r in pairs.get(f"kickstarted λ0={weight:g}", [])]
        for name in [c for c in pairs if c.startswith("kickstarted") and c != f"kickstarted λ0={weight:g}"]:
            other = [budget if x is None else x for x in (_solved_at(r, solved) for r in pairs[name])]
            lines.append(f"\n{name} (earlier runs): median steps to solve {np.median(other):,.0f}.")
        if scratch and kick and None not in kick:
            # An unsolved scratch run counts as the budget: the ratio is then a lower bound.
            s = float(np.median([budget if x is None else x for x in scratch]))
            k = float(np.median(kick))
            bound = ">= " if None in scratch else ""
            verdict = "met" if s / k >= 5 else "NOT met"
            lines.append(
                f"\nMedian steps to solve ({len(scratch)} and {len(kick)} seeds): from scratch {bound}{s:,.0f}, "
                f"kickstarted (λ0={weight:g}) {k:,.0f}: {bound}{s / k:.1f}x fewer (goal >= 5x: {verdict}).\n"
            )
        else:
            lines.append("\nSpeed-up not computed: a kickstarted run did not solve, or a case is missing.\n")
    out = {c: [r for r in runs if r["case"] == c] for c in (*kickstart_cases, "outgrow/distilled")}
    if any(out.values()):
        out["speedup/scratch"] = [r for r in runs if r["case"] == "speedup/scratch" and r["env_id"] == outgrow_env]
        teacher = data.get("imperfect_teacher_mean_return")
        target = teacher + (outgrow_solved - teacher) / 2 if teacher is not None else None
        lines += [
            f"**Outgrowing an imperfect teacher** ({outgrow_env}): the hand-made teacher scores "
            f"{teacher:.1f} over 100 episodes ({teacher / outgrow_solved:.0%} of {outgrow_solved:.0f}); "
            f"closing half the gap to {outgrow_solved:.0f} means >= {target:.1f}. Students of "
            f"{list(outgrow_hidden)} units, {outgrow_steps:,} env steps (distillation: {distill_steps:,} "
            "teacher-labelled steps, KL, student-driven). The final return is that of the exported "
            "student over 100 episodes: for the DQN runs the weights of the best periodic evaluation "
            "(`keep_best`, train-teacher's default), for distillation the last; the periodic "
            "evaluations (20 episodes, other seeds) show the best and the last weights too. Measured on: "
            + ", ".join(sorted({_cpu(r) for rs in out.values() for r in rs}))
            + ".\n",
            "| run | seed | final return | best evaluation (at step) | last evaluation | final − teacher "
            "| closes half the gap |",
            "|---|---|---|---|---|---|---|",
        ]
        for case, rs in out.items():
            for r in sorted(rs, key=lambda r: r["seed"]):
                f = r["final_mean_return"]
                best = max(r["curve"], key=lambda c: c[1]) if r["curve"] else (None, float("nan"))
                last = r["curve"][-1][1] if r["curve"] else float("nan")
                lines.append(
                    f"| {_label(case, kickstart_cases)} | {r['seed']} | {f:.1f} | {best[1]:.1f} ({best[0]:,}) | "
                    f"{last:.1f} | "
                    f"{f - teacher:+.1f} | {'yes' if f >= target else 'no'} |"
                )
        for case, rs in out.items():
            if rs:
                finals = [r["final_mean_return"] for r in rs]
                lines.append(
                    f"\n{_label(case, kickstart_cases)}: IQM {iqm(finals):.1f}, worst {min(finals):.1f} "
                    f"over {len(rs)} seeds."
                )
    return "\n".join(lines) + "\n"


def figure(data: dict, which: str, kickstart_cases: dict[str, list]):
    """Curves of one target, one colour per case: the mean over the seeds, the min-max spread shaded.

    A run that stopped early (at its target) counts where it has evaluations: the mean and the
    spread at each step are over the seeds still running.

    ``speedup``: CartPole-v1 from scratch and kickstarted from the strong teacher;
    ``outgrow``: the imperfect teacher's λ schedules, pure distillation, and from scratch.
    """
    import matplotlib.pyplot as plt

    if which == "speedup":
        cases, teacher = ["speedup/scratch", "speedup/kickstarted"], None
        title = "CartPole-v1: kickstarted from the 256x256 DQN vs from scratch (100-unit DQN)"
    else:
        cases = [*kickstart_cases, "outgrow/distilled", "speedup/scratch"]
        teacher = data.get("imperfect_teacher_mean_return")
        title = "CartPole-v1 from an imperfect teacher: λ schedules, distillation, from scratch"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, case in enumerate(cases):
        runs = [r for r in data["runs"] if r["case"] == case and r["env_id"] == "CartPole-v1" and r["curve"]]
        if not runs:
            continue
        band = seed_band([r["curve"] for r in runs])
        label = f"{_label(case, kickstart_cases)} (mean of {len(runs)} seeds, min-max shaded)"
        ax.plot(band["env_steps"], band["mean_return"], color=f"C{i}", marker="o", markersize=2, label=label)
        ax.fill_between(band["env_steps"], band["mean_return_low"], band["mean_return_high"], color=f"C{i}", alpha=0.15)
    ax.axhline(475, color="black", linestyle=":", label="solved (475)")
    if teacher is not None:
        ax.axhline(teacher, color="grey", linestyle="--", label=f"teacher ({teacher:.0f})")
    ax.set(title=title, xlabel="environment steps", ylabel="mean return (20-episode evaluations)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def measure(
    speedup: dict[str, list],
    outgrow_env: str,
    imperfect_weights: list[float],
    distill_steps: int,
    kickstart_cases: dict[str, list],
    targets: list[str],
    envs: list[str],
    seeds: list[int],
    speedup_runs: list[str],
    max_steps: int | None = None,
    report_only: bool = False,
):
    """The runs of the targets asked for, seed by seed; yields the results after every run.

    This run's cases replace the last results' runs of the same case, environment and
    seed; the others are kept.

    Args:
        speedup: environment -> ``[zoo teacher, student hyperparameters key, student hidden units, budget,
            eval_every, solved score, λ0]`` of the ``speedup`` target (λ0 decays linearly to 0 at half the budget,
            train_teacher's default); ``outgrow_env``'s also sets the student and budget of the outgrow runs.
        outgrow_env: the environment of the imperfect teacher.
        imperfect_weights: the imperfect teacher's weights on (x, x', theta, theta').
        distill_steps: teacher-labelled env steps of the pure distillation.
        kickstart_cases: kickstarted outgrow case -> ``[λ schedule, λ0]``.
        targets: the targets to measure (speedup, outgrow, schedule, schedule10).
        envs: the environments of ``speedup`` to measure.
        seeds: the seeds of every case.
        speedup_runs: which speedup runs to (re)measure (scratch, kickstarted); the others are kept.
        max_steps: cap the budgets (quick tries only).
        report_only: rewrite kickstart.md from kickstart.json (its command kept).
    """
    from kd_rl.evaluate import run_episodes

    previous = results_dir() / "kickstart.json"
    layout = {
        "speedup": speedup,
        "outgrow_env": outgrow_env,
        "distill_steps": distill_steps,
        "kickstart_cases": kickstart_cases,
    }
    if report_only:
        data = json.loads(previous.read_text())
        yield data, table(data, **layout)
        return
    check_choices("targets", targets, TARGETS)
    check_choices("envs", envs, speedup)
    check_choices("speedup_runs", speedup_runs, ("scratch", "kickstarted"))
    data = json.loads(previous.read_text()) if previous.exists() else {"runs": []}
    # Every command that measured some of the runs kept.
    commands = data.get("commands", [data["command"]] if "command" in data else [])
    command = command_line()
    data["commands"] = [c for c in commands if c != command] + [command]
    data.pop("machine", None), data.pop("command", None)
    cases = []
    if "speedup" in targets:
        cases += [(f"speedup/{c}", env) for env in envs for c in speedup_runs]
    if "outgrow" in targets:
        cases += [("outgrow/linear", outgrow_env), ("outgrow/distilled", outgrow_env)]
    if "schedule" in targets:
        cases += [("outgrow/constant", outgrow_env)]
    if "schedule10" in targets:
        cases += [("outgrow/constant10", outgrow_env)]
    # This run's cases replace the last results' runs of the same case, environment and seed.
    # A speedup run kickstarted with another λ0 than speedup's is kept beside the new ones.
    redo = {(c, env, s) for c, env in cases for s in seeds}

    def replaced(r: dict) -> bool:
        same_weight = r["case"] != "speedup/kickstarted" or _weight(r) == speedup[r["env_id"]][6]
        return (r["case"], r["env_id"], r["seed"]) in redo and same_weight

    data["runs"] = [r for r in data["runs"] if not replaced(r)]
    cpu = machine()["cpu"]  # each run records it: episode returns differ between CPUs
    teacher = imperfect_teacher(imperfect_weights)
    data["imperfect_teacher_mean_return"] = run_episodes(teacher, outgrow_env, 100, 0).mean_return
    data["imperfect_teacher_weights"] = list(imperfect_weights)
    _, outgrow_key, outgrow_hidden, outgrow_steps, outgrow_eval, _, _ = speedup[outgrow_env]

    for seed in seeds:
        for case, env in cases:
            cap = max_steps or 10**12
            if case.startswith("speedup/"):
                zoo, key, hidden, steps, every, _, weight = speedup[env]
                kick = {"kickstart": zoo, "kickstart_weight": weight} if case.endswith("kickstarted") else {}
                run = _train(case, env, key, hidden, min(steps, cap), min(every, cap), seed, **kick)
            elif case == "outgrow/distilled":
                run = _distill(teacher, env, outgrow_hidden, min(distill_steps, cap), outgrow_eval, seed)
            else:
                schedule, weight = kickstart_cases[case]
                steps = min(outgrow_steps, cap)
                kick = {"kickstart": teacher, "kickstart_schedule": schedule, "kickstart_weight": weight}
                run = _train(case, env, outgrow_key, outgrow_hidden, steps, min(outgrow_eval, cap), seed, **kick)
            data["runs"].append(dict(run, cpu=cpu))
            print(case, env, seed, run["final_mean_return"], f"{run['wall_seconds']:.0f} s", flush=True)
            yield data, table(data, **layout)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
