"""The distillation targets of kd_rl, measured.

Scores are normalised, ``(student − random) / (teacher − random)`` over the
same seeded episodes (`kd_rl.evaluate.normalised_score`): 1 is the teacher,
0 a uniformly random policy.

1. ``cartpole``: the shipped 100-unit CartPole-v1 DQN teacher into a 50-unit
   student with the default settings and at most 20,000 teacher-labelled
   states: normalised score >= 0.99 over 100 episodes, in under 60 s of wall
   time. Ten seeds (0-9); judged on the worst seed and on the IQM.
2. ``compression``: students with at most 1% of the large CartPole-v1
   teacher's parameters score >= 0.99; on LunarLander-v3 students with at
   most 1/15 of the teacher's parameters score >= 0.95. Ten seeds per
   student size; judged on the worst seed and on the IQM.
3. ``collect``: student-driven against teacher-driven collection, return,
   normalised score and agreement over 5 seeds, with the result stated either way.

Teachers, seeds, budgets and targets are the rows ``distill_cartpole``,
``distill_compression`` and ``distill_collect`` of ``experiments.yml``::

    python benchmarks/run.py distill_cartpole distill_compression distill_collect
    python benchmarks/distill_targets.py [cartpole] [compression] [collect]

``--seeds``, ``--episodes`` and ``--max-steps`` shrink a run for a quick try
(with ``KD_RL_BENCH_OUT`` set, see ``_common.py``).
"""

from __future__ import annotations

import numpy as np
from _common import SUMMARY_HEADER, quiet_tensorflow, summarise_runs, summary_row, timed_distill

quiet_tensorflow()


def _run(teacher, episodes: int, max_steps: int | None, **config) -> dict:
    """The metrics of one distillation, its labelled-state budget capped at ``max_steps`` if given."""
    if max_steps:
        config["steps"] = min(config.get("steps", 10_000), max_steps)
    return timed_distill(teacher, eval_episodes=episodes, **config)[1]


def _score(m: dict) -> str:
    return "—" if m["normalised_score"] is None else f"{m['normalised_score']:.3f}"


def cartpole(
    teacher: str,
    env_id: str,
    seeds: list[int],
    episodes: int,
    max_states: int,
    min_score: float,
    max_seconds: float,
    max_steps: int | None = None,
) -> tuple[dict, str]:
    """A zoo teacher into a student with the default settings, judged on the worst seed and on the IQM.

    Args:
        teacher: the zoo teacher.
        env_id: its environment.
        seeds: one student per seed.
        episodes: final evaluation episodes per run.
        max_states: the target's labelled states, at most.
        min_score: the target's normalised score, at least.
        max_seconds: the target's wall seconds per run (distillation and evaluations), less than this.
        max_steps: cap every labelled-state budget (quick tries only).
    """
    from kd_rl.models import load_policy

    model = load_policy(teacher)
    runs = [_run(model, episodes, max_steps, env_id=env_id, seed=s) for s in seeds]
    rows = [
        f"{len(runs)} seeds.\n",
        "| seed | labelled states | teacher return | random return | student return | normalised score | "
        "agreement | train s | total s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in runs:
        rows.append(
            f"| {m['seed']} | {m['labelled_states']:,} | {m['teacher_mean_return']:.1f} | "
            f"{m['random_mean_return']:.1f} | {m['student_mean_return']:.1f} | {_score(m)} | {m['agreement']:.3f} | "
            f"{m['train_seconds']:.1f} | {m['total_seconds']:.1f} |"
        )
    summary = {
        "normalised_score": summarise_runs(runs, "normalised_score"),
        "student_mean_return": summarise_runs(runs, "student_mean_return"),
        "total_seconds": summarise_runs(runs, "total_seconds", higher_is_better=False),
    }
    rows += [
        "",
        SUMMARY_HEADER,
        summary_row("normalised score", summary["normalised_score"]),
        summary_row("student return", summary["student_mean_return"], "{:.1f}"),
        summary_row("total s (worst = slowest)", summary["total_seconds"], "{:.1f}"),
    ]
    states_ok = all(m["labelled_states"] <= max_states for m in runs)
    score, secs = summary["normalised_score"], summary["total_seconds"]
    verdict = {
        "worst_seed": bool(states_ok and score["worst"] >= min_score and secs["worst"] < max_seconds),
        "iqm": bool(states_ok and score["iqm"] >= min_score and secs["iqm"] < max_seconds),
    }
    rows.append(
        f"\nTarget: normalised score >= {min_score:g} with <= {max_states:,} labelled states in < {max_seconds:g} s "
        "(distillation and the "
        f"{runs[0]['eval_episodes']}-episode evaluations). On the worst seed "
        f"(score {score['worst']:.3f}, seed {score['worst_seed']}; "
        f"slowest {secs['worst']:.1f} s, seed {secs['worst_seed']}): {'met' if verdict['worst_seed'] else 'NOT met'}. "
        f"On the IQM over {score['n']} seeds (score {score['iqm']:.3f}, {secs['iqm']:.1f} s): "
        f"{'met' if verdict['iqm'] else 'NOT met'}."
    )
    return {"runs": runs, "summary": summary, "target_met": verdict}, "\n".join(rows)


def compression(cases: list[list], seeds: list[int], episodes: int, max_steps: int | None = None) -> tuple[dict, str]:
    """Students much smaller than their teachers: the smallest meeting each target, per seed and on the IQM.

    Args:
        cases: ``[teacher, env_id, max_share, min_score, hidden sizes, labelled states]`` per teacher: the
            target is a student with at most ``max_share`` of the teacher's parameters scoring ``min_score``.
        seeds: one student per seed and size.
        episodes: final evaluation episodes per run.
        max_steps: cap every labelled-state budget (quick tries only).
    """
    from kd_rl.models import load_policy

    out, per_seed = {}, []
    summaries = [SUMMARY_HEADER]
    verdicts = []
    for name, env_id, max_share, min_score, sizes, steps in cases:
        teacher = load_policy(name)
        # (share, score, hidden) of the smallest student meeting the target, judged each way
        smallest = {"worst_seed": None, "iqm": None}
        for hidden in sizes:
            runs = [
                _run(teacher, episodes, max_steps, env_id=env_id, hidden_units=hidden, steps=steps, seed=s)
                for s in seeds
            ]
            share = runs[0]["student_params"] / runs[0]["teacher_params"]
            summary = {
                "normalised_score": summarise_runs(runs, "normalised_score"),
                "student_mean_return": summarise_runs(runs, "student_mean_return"),
            }
            out[f"{name}/{hidden}"] = {"runs": runs, "summary": summary, "share": share}
            for m in runs:
                per_seed.append(
                    f"| {name} | {m['teacher_params']:,} | {hidden} | {m['student_params']:,} | "
                    f"{100 * share:.2f}% | {m['seed']} | {m['teacher_mean_return']:.1f} | "
                    f"{m['random_mean_return']:.1f} | {m['student_mean_return']:.1f} | {_score(m)} |"
                )
            label = f"{name}, {hidden} units ({100 * share:.2f}%)"
            summaries.append(summary_row(f"{label}: normalised score", summary["normalised_score"]))
            summaries.append(summary_row(f"{label}: student return", summary["student_mean_return"], "{:.1f}"))
            score = summary["normalised_score"]
            for how, value in (("worst_seed", score["worst"]), ("iqm", score["iqm"])):
                best = smallest[how]
                if share <= max_share and value >= min_score and (best is None or share < best[0]):
                    smallest[how] = (share, value, hidden)
        for how, words in (("worst_seed", "on its worst seed"), ("iqm", f"as the IQM over {len(seeds)} seeds")):
            best = smallest[how]
            verdicts.append(
                f"- {name}, judged {words}: "
                + (
                    f"a {best[2]}-unit student ({100 * best[0]:.2f}% of the parameters, {1 / best[0]:.0f}x smaller) "
                    f"scores {best[1]:.3f} (target >= {min_score:.2f} at <= {100 * max_share:.2f}%): met."
                    if best
                    else f"no student at <= {100 * max_share:.2f}% of the parameters scored {min_score:.2f}: NOT met."
                )
            )
        out[f"{name}/target_met"] = {how: smallest[how] is not None for how in smallest}
    header = [
        f"{len(seeds)} seeds per student size.\n",
        "| teacher | teacher params | student hidden | student params | share | seed | teacher return | "
        "random return | student return | normalised score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + per_seed) + "\n\n" + "\n".join(summaries) + "\n\n" + "\n".join(verdicts)
    return out, table


def collect(
    teacher: str, env_id: str, seeds: list[int], steps: int, episodes: int, max_steps: int | None = None
) -> tuple[dict, str]:
    """Teacher-driven against student-driven collection: return, normalised score and agreement.

    Args:
        teacher: the zoo teacher.
        env_id: its environment.
        seeds: one student per seed and collection mode.
        steps: labelled states per student.
        episodes: final evaluation episodes per run.
        max_steps: cap every labelled-state budget (quick tries only).
    """
    from kd_rl.models import load_policy

    model = load_policy(teacher)
    out = {
        mode: [_run(model, episodes, max_steps, env_id=env_id, collect=mode, steps=steps, seed=s) for s in seeds]
        for mode in ("teacher", "student")
    }
    rows = [
        f"{len(seeds)} seeds per collection mode.\n",
        "| collection | seeds | student return (mean ± std) | min seed | normalised score (mean ± std) | "
        "agreement (mean ± std) |",
        "|---|---|---|---|---|---|",
    ]
    summary = {}
    for mode, runs in out.items():
        r = np.array([m["student_mean_return"] for m in runs])
        s = np.array([m["normalised_score"] for m in runs], dtype=float)
        a = np.array([m["agreement"] for m in runs])
        summary[mode] = (r.mean(), a.mean())
        rows.append(
            f"| {mode}-driven | {len(runs)} | {r.mean():.1f} ± {r.std():.1f} | {r.min():.1f} | "
            f"{s.mean():.3f} ± {s.std():.3f} | {a.mean():.3f} ± {a.std():.3f} |"
        )
    better = "student" if summary["student"][0] > summary["teacher"][0] else "teacher"
    labelled = out["student"][0]["labelled_states"]
    rows.append(
        f"\nWith {labelled:,} labelled states and {len(seeds)} seeds, {better}-driven collection gave the higher mean "
        f"return ({summary['student'][0]:.1f} student-driven vs {summary['teacher'][0]:.1f} teacher-driven); "
        f"agreement on the student's own states: {summary['student'][1]:.3f} vs {summary['teacher'][1]:.3f}."
    )
    return {"runs": out, "steps": labelled}, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
