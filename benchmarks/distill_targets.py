"""The distillation targets of kd_rl, measured.

1. ``cartpole``: the shipped 100-unit CartPole-v1 DQN teacher into a 50-unit
   student with the default settings and at most 20,000 teacher-labelled
   states: student return over 100 episodes >= 99% of the teacher's, in under
   60 s of wall time (seeds 0-2).
2. ``compression``: students with at most 1% of the large CartPole-v1
   teacher's parameters keep >= 99% of its return; on LunarLander-v3 students
   with at most 1/15 of the teacher's parameters keep >= 95%.
3. ``collect``: student-driven against teacher-driven collection, return and
   agreement over 5 seeds, with the result stated either way.

    python benchmarks/distill_targets.py [cartpole] [compression] [collect]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import quiet_tensorflow, timed_distill, write_results

quiet_tensorflow()


def _run(teacher, **config) -> dict:
    return timed_distill(teacher, **config)[1]


def cartpole(seeds=(0, 1, 2)) -> tuple[dict, str]:
    from kd_rl.models import load_policy

    teacher = load_policy("CartPole-v1-dqn")
    runs = [_run(teacher, env_id="CartPole-v1", seed=s) for s in seeds]
    rows = [
        "| seed | labelled states | teacher return | student return | ratio | agreement | train s | total s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, m in zip(seeds, runs):
        rows.append(
            f"| {s} | {m['labelled_states']:,} | {m['teacher_mean_return']:.1f} | "
            f"{m['student_mean_return']:.1f} | {100 * m['return_ratio']:.1f}% | {m['agreement']:.3f} | "
            f"{m['train_seconds']:.1f} | {m['total_seconds']:.1f} |"
        )
    ok = all(m["return_ratio"] >= 0.99 and m["labelled_states"] <= 20_000 and m["total_seconds"] < 60 for m in runs)
    ratios = [m["return_ratio"] for m in runs]
    rows.append(
        f"\nMedian return ratio {100 * np.median(ratios):.1f}%, median total time "
        f"{np.median([m['total_seconds'] for m in runs]):.1f} s (distillation and both 100-episode "
        f"evaluations). Target (every seed >= 99%, <= 20,000 states, < 60 s): {'met' if ok else 'NOT met'}."
    )
    return {"runs": runs, "target_met": ok}, "\n".join(rows)


def compression(seeds=(0, 1, 2)) -> tuple[dict, str]:
    from kd_rl.models import load_policy
    from kd_rl.zoo import list_zoo

    cases = [("CartPole-v1-dqn-large", "CartPole-v1", 0.01, 0.99, [50, 12, 6], 10_000)]
    lunar = [e["name"] for e in list_zoo() if e["name"].startswith("LunarLander-v3")]
    if lunar:
        cases.append((lunar[0], "LunarLander-v3", 1 / 15, 0.95, [256, 64], 50_000))
    out, rows = (
        {},
        [
            "| teacher | teacher params | student hidden | student params | share | seed | "
            "teacher return | student return | ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ],
    )
    verdicts = []
    for name, env_id, max_share, min_ratio, sizes, steps in cases:
        teacher = load_policy(name)
        best = None
        for hidden in sizes:
            runs = [_run(teacher, env_id=env_id, hidden_units=hidden, steps=steps, seed=s) for s in seeds]
            out[f"{name}/{hidden}"] = runs
            for s, m in zip(seeds, runs):
                rows.append(
                    f"| {name} | {m['teacher_params']:,} | {hidden} | {m['student_params']:,} | "
                    f"{100 * m['student_params'] / m['teacher_params']:.2f}% | {s} | "
                    f"{m['teacher_mean_return']:.1f} | {m['student_mean_return']:.1f} | "
                    f"{100 * m['return_ratio']:.1f}% |"
                )
            share = runs[0]["student_params"] / runs[0]["teacher_params"]
            ratio = float(np.mean([m["return_ratio"] for m in runs]))
            if share <= max_share and ratio >= min_ratio and (best is None or share < best[0]):
                best = (share, ratio, hidden)
        verdicts.append(
            f"{name}: "
            + (
                f"a {best[2]}-unit student ({100 * best[0]:.2f}% of the parameters, "
                f"{1 / best[0]:.0f}x smaller) keeps {100 * best[1]:.1f}% of the return (mean over seeds)"
                if best
                else f"no student at <= {100 * max_share:.2f}% of the parameters kept "
                f"{100 * min_ratio:.0f}% of the return"
            )
            + "."
        )
        out[f"{name}/target_met"] = best is not None
    if not lunar:
        verdicts.append("LunarLander-v3: no zoo teacher yet, not measured.")
    return out, "\n".join(rows) + "\n\n" + "\n".join(verdicts)


def collect(seeds=(0, 1, 2, 3, 4), steps=3_000) -> tuple[dict, str]:
    from kd_rl.models import load_policy

    teacher = load_policy("CartPole-v1-dqn")
    out = {
        mode: [_run(teacher, env_id="CartPole-v1", collect=mode, steps=steps, seed=s, eval_episodes=100) for s in seeds]
        for mode in ("teacher", "student")
    }
    rows = [
        "| collection | seeds | student return (mean ± std) | min | agreement (mean ± std) |",
        "|---|---|---|---|---|",
    ]
    summary = {}
    for mode, runs in out.items():
        r = np.array([m["student_mean_return"] for m in runs])
        a = np.array([m["agreement"] for m in runs])
        summary[mode] = (r.mean(), a.mean())
        rows.append(
            f"| {mode}-driven | {len(runs)} | {r.mean():.1f} ± {r.std():.1f} | {r.min():.1f} | "
            f"{a.mean():.3f} ± {a.std():.3f} |"
        )
    better = "student" if summary["student"][0] > summary["teacher"][0] else "teacher"
    rows.append(
        f"\nWith {steps:,} labelled states, {better}-driven collection gave the higher mean return "
        f"({summary['student'][0]:.1f} student-driven vs {summary['teacher'][0]:.1f} teacher-driven); "
        f"agreement on the student's own states: {summary['student'][1]:.3f} vs {summary['teacher'][1]:.3f}."
    )
    return {"runs": out, "steps": steps}, "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="*",
        default=["cartpole", "compression", "collect"],
        choices=["cartpole", "compression", "collect"],
    )
    args = parser.parse_args()
    for name in args.which:
        data, table = {"cartpole": cartpole, "compression": compression, "collect": collect}[name]()
        write_results(f"distill_{name}", data, table)


if __name__ == "__main__":
    main()
