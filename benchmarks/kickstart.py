"""Kickstarting: how much faster than from scratch, and does it outgrow an imperfect teacher?

Three targets of issue #15, 3 seeds each (DQN students, `kd_rl.teachers.train_teacher`
with and without ``kickstart=``; the same hyperparameters and budget otherwise):

* ``speedup``: from a strong zoo teacher (two layers of 256 units) into a student at
  most half as wide; env steps until the periodic greedy evaluation (20 episodes)
  first reaches the solved score (CartPole-v1: 475, LunarLander-v3: 200),
  kickstarted against from scratch. Goal: >= 5x fewer steps. λ0 is set per
  environment (``SPEEDUP``: 1 for CartPole-v1, 10 for LunarLander-v3, where λ0 = 1
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

    python benchmarks/kickstart.py [--targets speedup outgrow schedule] [--envs CartPole-v1 LunarLander-v3]
        [--seeds 0 1 2] [--speedup-runs scratch kickstarted] [--max-steps N]

Runs of cases not asked for are kept from the last results, so the targets can be
measured one at a time; results are written after every run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import command_line, curve_points, iqm, machine, quiet_tensorflow, results_dir, write_results

quiet_tensorflow()

#: Per environment: zoo teacher, student hyperparameters key, student hidden units, budget, eval_every, solved,
#: and the kickstart's λ0 (linear decay to 0 at half the budget, train_teacher's default).
SPEEDUP = {
    "CartPole-v1": ("CartPole-v1-dqn-large", "CartPole-v1", (100,), 50_000, 1_000, 475.0, 1.0),
    "LunarLander-v3": ("LunarLander-v3-dqn", "LunarLander-v3", (128, 128), 200_000, 5_000, 200.0, 10.0),
}
OUTGROW_ENV = "CartPole-v1"
#: The imperfect teacher's weights on (x, x', theta, theta'), and the settings of the outgrow runs.
IMPERFECT_W = (0.0, 0.0, 0.2, 1.0)
OUTGROW_KEY, OUTGROW_HIDDEN, OUTGROW_STEPS, OUTGROW_EVAL, OUTGROW_SOLVED = SPEEDUP["CartPole-v1"][1:6]
#: Teacher-labelled env steps of the pure distillation: plenty to match a CartPole-v1 teacher.
DISTILL_STEPS = 20_000
#: The targets (--targets) and the kickstarted outgrow cases: (schedule, λ0).
TARGETS = ("speedup", "outgrow", "schedule", "schedule10")
KICKSTART_CASES = {
    "outgrow/linear": ("linear", 1.0),
    "outgrow/constant": ("constant", 1.0),
    "outgrow/constant10": ("constant", 10.0),
}
FIGURES = {"speedup": "img/kickstart_speedup.png", "outgrow": "img/kickstart_outgrow.png"}


def imperfect_teacher():
    """The hand-made CartPole-v1 teacher of the ``outgrow`` target: a 100-unit TeacherModel."""
    from kd_rl.models import TeacherModel

    w = np.asarray(IMPERFECT_W, np.float32)
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
            hidden_units=hidden,
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


def _distill(teacher, seed: int, steps: int) -> dict:
    from kd_rl.distill import DistillConfig, distill_policy

    start = time.perf_counter()
    config = DistillConfig(
        env_id=OUTGROW_ENV, hidden_units=OUTGROW_HIDDEN, steps=steps, seed=seed, eval_every=OUTGROW_EVAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        _, m = distill_policy(teacher, config, out_dir=Path(tmp) / "run", progress=False)
        curve = curve_points(Path(tmp) / "run" / "curve.csv", "mean_return")
    return {
        "case": "outgrow/distilled",
        "env_id": OUTGROW_ENV,
        "seed": seed,
        "budget": steps,
        "hidden_units": list(OUTGROW_HIDDEN),
        "final_mean_return": m["student_mean_return"],
        "teacher_mean_return": m["teacher_mean_return"],
        "wall_seconds": time.perf_counter() - start,
        "curve": [(s, r) for s, r in curve],
    }


def _label(case: str) -> str:
    """A run's name in tables and figures."""
    if case in KICKSTART_CASES:
        schedule, weight = KICKSTART_CASES[case]
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


def table(data: dict) -> str:
    runs, lines = data["runs"], []
    if len(data.get("commands", [])) > 1:
        lines.append("Runs measured by: " + "; ".join(f"`{c}`" for c in data["commands"]) + ".\n")
    for env, (teacher, _, hidden, budget, _, solved, weight) in SPEEDUP.items():
        pairs = {"scratch": [r for r in runs if r["case"] == "speedup/scratch" and r["env_id"] == env]}
        kicked = [r for r in runs if r["case"] == "speedup/kickstarted" and r["env_id"] == env]
        # The configured λ0 first, then any kept from earlier runs.
        for w in sorted({_weight(r) for r in kicked}, key=lambda w: (w != weight, w)):
            pairs[f"kickstarted λ0={w:g}"] = [r for r in kicked if _weight(r) == w]
        if not any(pairs.values()):
            continue
        lines += [
            f"**{env}**: {teacher} (256x256) into a {hidden} student, {budget:,} env steps; "
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
    out = {c: [r for r in runs if r["case"] == c] for c in (*KICKSTART_CASES, "outgrow/distilled")}
    if any(out.values()):
        out["speedup/scratch"] = [r for r in runs if r["case"] == "speedup/scratch" and r["env_id"] == OUTGROW_ENV]
        teacher = data.get("imperfect_teacher_mean_return")
        target = teacher + (OUTGROW_SOLVED - teacher) / 2 if teacher is not None else None
        lines += [
            f"**Outgrowing an imperfect teacher** (CartPole-v1): the hand-made teacher scores "
            f"{teacher:.1f} over 100 episodes ({teacher / OUTGROW_SOLVED:.0%} of {OUTGROW_SOLVED:.0f}); "
            f"closing half the gap to {OUTGROW_SOLVED:.0f} means >= {target:.1f}. Students of "
            f"{list(OUTGROW_HIDDEN)} units, {OUTGROW_STEPS:,} env steps (distillation: {DISTILL_STEPS:,} "
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
                    f"| {_label(case)} | {r['seed']} | {f:.1f} | {best[1]:.1f} ({best[0]:,}) | {last:.1f} | "
                    f"{f - teacher:+.1f} | {'yes' if f >= target else 'no'} |"
                )
        for case, rs in out.items():
            if rs:
                finals = [r["final_mean_return"] for r in rs]
                lines.append(f"\n{_label(case)}: IQM {iqm(finals):.1f}, worst {min(finals):.1f} over {len(rs)} seeds.")
    return "\n".join(lines) + "\n"


def figure(data: dict, which: str):
    """Curves of one target, one colour per case and a line per seed.

    ``speedup``: CartPole-v1 from scratch and kickstarted from the strong teacher;
    ``outgrow``: the imperfect teacher's λ schedules, pure distillation, and from scratch.
    """
    import matplotlib.pyplot as plt

    if which == "speedup":
        cases, teacher = ["speedup/scratch", "speedup/kickstarted"], None
        title = "CartPole-v1: kickstarted from the 256x256 DQN vs from scratch (100-unit DQN)"
    else:
        cases = [*KICKSTART_CASES, "outgrow/distilled", "speedup/scratch"]
        teacher = data.get("imperfect_teacher_mean_return")
        title = "CartPole-v1 from an imperfect teacher: λ schedules, distillation, from scratch"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, case in enumerate(cases):
        runs = [r for r in data["runs"] if r["case"] == case and r["env_id"] == "CartPole-v1"]
        for j, r in enumerate(sorted(runs, key=lambda r: r["seed"])):
            steps, returns = zip(*r["curve"]) if r["curve"] else ((), ())
            label = f"{_label(case)} ({len(runs)} seeds)" if j == 0 else None
            ax.plot(steps, returns, color=f"C{i}", alpha=0.75, marker="o", markersize=2, label=label)
    ax.axhline(475, color="black", linestyle=":", label="solved (475)")
    if teacher is not None:
        ax.axhline(teacher, color="grey", linestyle="--", label=f"teacher ({teacher:.0f})")
    ax.set(title=title, xlabel="environment steps", ylabel="mean return (20-episode evaluations)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _rewrite_table() -> None:
    """kickstart.md from kickstart.json again, with the machine and command that measured it."""
    from kd_rl._io import write_text

    data = json.loads((results_dir() / "kickstart.json").read_text())
    m = data["machine"]
    header = (
        f"Measured with `{data['command']}` on {m['cpu']} ({m['cores']} cores, "
        f"{'GPU' if m['gpu'] else 'no GPU'}), TensorFlow {m['tensorflow']}, Keras {m['keras']}, "
        f"LiteRT {m['litert']}, {m['date']}.\n\n"
    )
    write_text(results_dir() / "kickstart.md", header + table(data) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["speedup", "outgrow", "schedule"], choices=list(TARGETS))
    parser.add_argument("--envs", nargs="+", default=list(SPEEDUP), choices=list(SPEEDUP))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--speedup-runs",
        nargs="+",
        default=["scratch", "kickstarted"],
        choices=["scratch", "kickstarted"],
        help="which speedup runs to (re)measure; the others are kept",
    )
    parser.add_argument("--max-steps", type=int, help="cap the budgets (quick tries only)")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite kickstart.md from kickstart.json (its command kept)"
    )
    args = parser.parse_args()
    if args.report_only:
        _rewrite_table()
        return

    from kd_rl.evaluate import run_episodes

    previous = results_dir() / "kickstart.json"
    data = json.loads(previous.read_text()) if previous.exists() else {"runs": []}
    # Every command that measured some of the runs kept.
    commands = data.get("commands", [data["command"]] if "command" in data else [])
    command = command_line()
    data["commands"] = [c for c in commands if c != command] + [command]
    data.pop("machine", None), data.pop("command", None)
    cases = []
    if "speedup" in args.targets:
        cases += [(f"speedup/{c}", env) for env in args.envs for c in args.speedup_runs]
    if "outgrow" in args.targets:
        cases += [("outgrow/linear", OUTGROW_ENV), ("outgrow/distilled", OUTGROW_ENV)]
    if "schedule" in args.targets:
        cases += [("outgrow/constant", OUTGROW_ENV)]
    if "schedule10" in args.targets:
        cases += [("outgrow/constant10", OUTGROW_ENV)]
    # This run's cases replace the last results' runs of the same case, environment and seed.
    # A speedup run kickstarted with another λ0 than SPEEDUP's is kept beside the new ones.
    redo = {(c, env, s) for c, env in cases for s in args.seeds}

    def replaced(r: dict) -> bool:
        same_weight = r["case"] != "speedup/kickstarted" or _weight(r) == SPEEDUP[r["env_id"]][6]
        return (r["case"], r["env_id"], r["seed"]) in redo and same_weight

    data["runs"] = [r for r in data["runs"] if not replaced(r)]
    cpu = machine()["cpu"]  # each run records it: episode returns differ between CPUs
    teacher = imperfect_teacher()
    data["imperfect_teacher_mean_return"] = run_episodes(teacher, OUTGROW_ENV, 100, 0).mean_return
    data["imperfect_teacher_weights"] = list(IMPERFECT_W)

    for seed in args.seeds:
        for case, env in cases:
            cap = args.max_steps or 10**12
            if case.startswith("speedup/"):
                zoo, key, hidden, steps, every, _, weight = SPEEDUP[env]
                kick = {"kickstart": zoo, "kickstart_weight": weight} if case.endswith("kickstarted") else {}
                run = _train(case, env, key, hidden, min(steps, cap), min(every, cap), seed, **kick)
            elif case == "outgrow/distilled":
                run = _distill(teacher, seed, min(DISTILL_STEPS, cap))
            else:
                schedule, weight = KICKSTART_CASES[case]
                steps = min(OUTGROW_STEPS, cap)
                kick = {"kickstart": teacher, "kickstart_schedule": schedule, "kickstart_weight": weight}
                run = _train(case, env, OUTGROW_KEY, OUTGROW_HIDDEN, steps, min(OUTGROW_EVAL, cap), seed, **kick)
            data["runs"].append(dict(run, cpu=cpu))
            print(case, env, seed, run["final_mean_return"], f"{run['wall_seconds']:.0f} s", flush=True)
            write_results("kickstart", data, table(data))


if __name__ == "__main__":
    main()
