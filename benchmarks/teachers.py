"""Teachers side by side with Stable-Baselines3: env steps and wall seconds to each Gymnasium threshold.

For each environment, algorithm and seed, kd_rl's ``train_teacher`` (its
shipped hyperparameters, which follow RL-Baselines3-Zoo; for DQN on
CartPole-v1 and LunarLander-v3 the ``-rlzoo`` entries, which are RL-Zoo's as
SB3 runs them but for kd_rl's 3-step returns) and SB3 2.x with RL-Zoo's hyperparameters (`_sb3_peer.py`, in a
throwaway venv made by `_sb3_venv.py` on first use) train one after the other
in the same run, so both see the same machine load. Both evaluate greedily
every ``eval_every`` env steps over 20 episodes (a case's ``eval_episodes``
where it sets one: MountainCar-v0 100) seeded apart from training, and stop
at the first evaluation that reaches the threshold (kd_rl: ``stop_return``;
SB3: the same check in a callback). kd_rl's rows also record the exported
teacher's score on that many fresh episodes (``final_mean_return``, seeded
like the final evaluation of any teacher run), a check on a threshold crossed
by a noisy evaluation. "Solved at" is that
evaluation's env step and wall time since training began (evaluations and
compilation included); the budget is RL-Zoo's ``n_timesteps`` for the
environment (``rl_zoo.yml``). Env steps count every step of every environment (kd_rl's PPO
counts its auto-resets too). SB3 runs with ``torch.set_num_threads(1)``, its
fastest setting for small networks on CPU; TensorFlow uses its defaults (both
cores).

Thresholds, budgets, evaluation intervals and kd_rl's entries per environment: the row ``teachers``
of ``experiments.yml``.

    python benchmarks/run.py teachers [--envs CartPole-v1 Acrobot-v1] [--algos dqn ppo sac]
                                      [--seeds 0 1 2] [--no-sb3] [--max-steps N]

Runs not asked for this time (another environment, algorithm, seed or
framework) are kept from the last results, so one pair, or one seed of it, can
be measured again on its own; the note under the table says which command
measured which rows.
"""

from __future__ import annotations

import json
import time

import numpy as np
from _common import check_choices, command_line, machine, quiet_tensorflow, results_dir, train_to_threshold
from _sb3_peer import n_timesteps

quiet_tensorflow()

FRAMEWORKS = ("kd_rl", "sb3")


def run_kd_rl(entry: str, algo: str, seed: int, budget: int, eval_every: int, threshold: float, episodes: int) -> dict:
    """``train_teacher`` on hyperparameter entry ``entry`` (an environment id or an alias of one)."""
    r = train_to_threshold(entry, algo, seed, budget, eval_every, threshold, episodes)
    m = r.pop("metrics")
    return {
        **r,
        "final_mean_return": m["mean_return"],
        "steps_per_second": m["steps_per_second"],
        "env_steps": m["env_steps"],
        "wall_seconds": m["wall_seconds"],
        "hyperparameters": m["hyperparameters"],
        "entry": entry,
    }


def _more_episodes(cases: dict, eval_episodes: int) -> set[str]:
    """The environments whose evaluations play more than ``eval_episodes`` episodes."""
    return {e for e, c in cases.items() if c.get("eval_episodes", eval_episodes) > eval_episodes}


def _budgets(cases: dict) -> dict:
    """``cases`` with each budget given as ``rl_zoo`` replaced by RL-Zoo's ``n_timesteps`` (``rl_zoo.yml``)."""
    return {
        env: {**case, "budget": {a: n_timesteps(a, env) if b == "rl_zoo" else b for a, b in case["budget"].items()}}
        for env, case in cases.items()
    }


def _learning_settings(hyperparameters: dict | None) -> dict | None:
    """A run's hyperparameters less those that set its evaluations only (the ones a resumed run may change)."""
    from kd_rl.teachers.run import RESUMABLE_HYPERPARAMETERS

    if hyperparameters is None:
        return None
    return {k: v for k, v in hyperparameters.items() if k not in RESUMABLE_HYPERPARAMETERS}


def summarise(runs: list[dict], cases: dict) -> tuple[list[str], list[str]]:
    """The table rows (one per environment, algorithm and framework) and one verdict line per pair."""
    rows, verdicts = [], []
    pairs = sorted({(r["env"], r["algo"]) for r in runs}, key=lambda p: (list(cases).index(p[0]), p[1]))
    for env, algo in pairs:
        medians = {}
        for framework in FRAMEWORKS:
            mine = sorted((r for r in runs if (r["env"], r["algo"], r["framework"]) == (env, algo, framework)),
                          key=lambda r: r["seed"])  # fmt: skip
            if not mine:
                continue
            solved = [r for r in mine if r["solved_at_env_steps"] is not None]
            per_seed = ", ".join(
                f"{r['solved_at_env_steps']:,} / {r['solved_after_seconds']:.0f} s"
                if r["solved_at_env_steps"] is not None
                else "not solved"
                for r in mine
            )
            # A seed that never solves counts as the whole budget (a lower bound on its steps).
            all_steps = [r["solved_at_env_steps"] or r["budget"] for r in mine]
            all_seconds = [r["solved_after_seconds"] or r["wall_seconds"] for r in mine]
            medians[framework] = (float(np.median(all_steps)), float(np.median(all_seconds)), len(solved), len(mine))
            rate = np.median([r["steps_per_second"] for r in mine])
            rows.append(
                f"| {env} | {algo} | {framework} | {len(solved)}/{len(mine)} | {per_seed} | "
                f"{np.median(all_steps):,.0f} | {np.median(all_seconds):.1f} | {rate:,.0f} |"
            )
        if len(medians) == 2:
            (ks, kw, kn, km), (ss, sw, sn, sm) = medians["kd_rl"], medians["sb3"]
            verdicts.append(
                f"{env} {algo}: kd_rl solved {kn}/{km} seeds, SB3 {sn}/{sm}; median env steps "
                f"{ks:,.0f} vs {ss:,.0f} ({ss / ks:.2f}x), median wall seconds {kw:.1f} vs {sw:.1f} "
                f"({sw / kw:.2f}x); target kd_rl <= SB3 on both: "
                f"{'met' if kn == km and ks <= ss and kw <= sw else 'NOT met'}."
            )
    return rows, verdicts


def side_by_side(
    cases: dict[str, dict],
    eval_episodes: int,
    envs: list[str],
    algos: list[str],
    seeds: list[int],
    sb3: bool = True,
    max_steps: int | None = None,
    report_only: bool = False,
) -> tuple[dict, str]:
    """kd_rl and SB3 trained seed by seed on each pair asked for; the runs not asked for are kept.

    Args:
        cases: environment -> ``threshold``, ``budget`` per algorithm (``rl_zoo``: RL-Zoo's n_timesteps; an
            algorithm without one is skipped there), ``eval_every``, and where they differ, kd_rl's hyperparameter
            ``entry`` per algorithm and ``eval_episodes``.
        eval_episodes: greedy episodes per evaluation, where a case does not set its own.
        envs: the environments of ``cases`` to train on.
        algos: the algorithms to train (dqn, ppo, sac).
        seeds: one run per seed, environment, algorithm and framework.
        sb3: run SB3 beside kd_rl (its venv is made on first use).
        max_steps: cap the step budgets (quick tries only).
        report_only: rewrite the table from the last results.
    """
    cases = _budgets(cases)
    if report_only:
        data = json.loads((results_dir() / "teachers.json").read_text())
        return report(data["runs"], data["command"], cases, eval_episodes, data.get("machine"))
    check_choices("envs", envs, cases)
    check_choices("algos", algos, sorted({a for c in cases.values() for a in c["budget"]}))
    if sb3:
        from _sb3_venv import run_sb3, sb3_python

        sb3_python()  # make the venv before the first timed run
    # The (environment, algorithm) pairs to measure: an algorithm without a budget for an environment is skipped.
    pairs = [(e, a) for e in envs for a in algos if a in cases[e]["budget"]]
    frameworks = FRAMEWORKS if sb3 else ("kd_rl",)
    # Runs this command does not repeat (another pair, seed or framework) are kept from the last results.
    remeasured = {(e, a, s, f) for e, a in pairs for s in seeds for f in frameworks}
    previous = results_dir() / "teachers.json"
    kept = []
    if previous.exists():
        kept = [r for r in json.loads(previous.read_text()).get("runs", []) if "framework" in r]
        kept = [r for r in kept if (r["env"], r["algo"], r["seed"], r["framework"]) not in remeasured]
    cpu = machine()["cpu"]
    command = command_line()
    runs = []
    for env, algo in pairs:
        case = cases[env]
        budget = min(case["budget"][algo], max_steps or case["budget"][algo])
        entry = case.get("entry", {}).get(algo, env)  # kd_rl's hyperparameter entry
        episodes = case.get("eval_episodes", eval_episodes)
        for seed in seeds:
            # kd_rl, then SB3, seed by seed: both see the same machine load.
            for framework in frameworks:
                if framework == "kd_rl":
                    result = run_kd_rl(entry, algo, seed, budget, case["eval_every"], case["threshold"], episodes)
                else:
                    result = run_sb3(env, algo, seed, budget, case["eval_every"], episodes, case["threshold"])
                run = {"framework": framework, "env": env, "algo": algo, "seed": seed, "budget": budget,
                       "eval_episodes": episodes,
                       "command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
                       **result}  # fmt: skip
                runs.append(run)
                print(
                    f"{env} {algo} seed {seed} {framework}: solved at {run['solved_at_env_steps']} env steps, "
                    f"{run['solved_after_seconds']} s",
                    flush=True,
                )
    return report(kept + runs, command, cases, eval_episodes)


def report(
    runs: list[dict], command: str, cases: dict, eval_episodes: int, measured_on: dict | None = None
) -> tuple[dict, str]:
    """The results and their table: which command measured which rows, the verdicts.

    ``measured_on`` is the machine of runs whose table is only being rewritten.
    """
    rows, verdicts = summarise(runs, cases)
    table = [
        "| env | algo | framework | seeds solved | per seed: env steps / wall s to the threshold | "
        "median env steps | median wall s | env steps/s |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    note = (
        "A seed that does not solve counts as its whole budget (steps) and its whole run (seconds) in the "
        "medians. Thresholds: " + ", ".join(f"{e} {c['threshold']:g}" for e, c in cases.items()) + ". "
        f"Each evaluation plays {eval_episodes} greedy episodes."
    )
    wider = _more_episodes(cases, eval_episodes)
    more = [f"{e} {cases[e]['eval_episodes']}" for e in cases if e in wider]
    if more:
        note += (
            f" More where greedy returns sit within a few points of the threshold, so that the mean of "
            f"{eval_episodes} episodes would decide by chance: {', '.join(more)} (Gymnasium's definition of "
            "solved is a mean over 100)."
        )
    finals = sorted(
        (r for r in runs if r.get("final_mean_return") is not None and r["env"] in wider),
        key=lambda r: (r["env"], r["algo"], r["seed"]),
    )
    if finals:
        note += (
            " Stopped at that first crossing, kd_rl's teachers there scored "
            + "; ".join(f"{r['env']} {r['algo']} seed {r['seed']} {r['final_mean_return']:.1f}" for r in finals)
            + f" on {finals[0]['eval_episodes']} fresh episodes: the first evaluation to cross a threshold "
            "is picked by its noise too. Full runs, which keep their best snapshot over the whole budget, are "
            "on the zoo page."
        )
    measured = {}  # (command, date, cpu) -> {(env, algo): {framework: seeds}}
    for r in runs:
        key = (r.get("command", "?"), r.get("date", "?")[:10], r.get("cpu", "?"))
        pair = measured.setdefault(key, {}).setdefault((r["env"], r["algo"]), {})
        pair.setdefault(r["framework"], set()).add(r["seed"])

    def _pairs(pairs: dict) -> str:
        parts = []
        for (env, algo), by_framework in sorted(pairs.items()):
            seeds = sorted(set().union(*by_framework.values()))
            only = f", {next(iter(by_framework))} only" if len(by_framework) == 1 else ""
            parts.append(f"{env} {algo} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}{only})")
        return ", ".join(parts)

    note += (
        " Rows measured by: "
        + "; ".join(f"`{cmd}` ({date}, {cpu}): {_pairs(pairs)}" for (cmd, date, cpu), pairs in measured.items())
        + "."
    )
    if len(measured) > 1:
        note += (
            " Each command without `--no-sb3` runs kd_rl and SB3 side by side, so the kd_rl and SB3 rows it "
            "measured share their machine load."
        )
    # A row whose seeds were measured by several commands may mix settings: say so where it does
    # (how often and on how many episodes a run is evaluated does not change what it learns).
    for env, algo, framework in sorted({(r["env"], r["algo"], r["framework"]) for r in runs}):
        settings = {json.dumps(_learning_settings(r.get("hyperparameters")), sort_keys=True) for r in runs
                    if (r["env"], r["algo"], r["framework"]) == (env, algo, framework)}  # fmt: skip
        if len(settings) > 1:
            note += f" The {framework} seeds of {env} {algo} did not all train with the same hyperparameters."
    data = {"runs": runs, "cases": cases, "eval_episodes": eval_episodes, "command": command}
    if measured_on:
        data["machine"] = measured_on
    return data, "\n".join(table) + "\n\n" + note + "\n\n" + "\n".join(verdicts)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
