"""What the temperature does: KL distillation at T = 0.01 ... 4 against NLL and MSE.

The article's central claim is that the softmax temperature of the KL loss
matters: a DQN's Q-values must be sharpened (T << 1) to be a target, while a
policy's logits may be softened (T > 1) to pass on more than the greedy action
("dark knowledge", Hinton et al. 2015). This study measures it on two zoo
teachers of CartPole-v1 with the same architecture (one hidden layer of 100
units) and different outputs:

* ``CartPole-v1-ppo``: a PPO actor, whose logits are a stochastic policy;
* ``CartPole-v1-dqn``: a DQN, whose outputs are Q-values.

Each is distilled into a 16-unit student with the NLL loss (the teacher's
greedy action as a hard label), the MSE loss on the raw outputs, and the KL
loss at T in {0.01, 0.1, 1, 2, 4}; with small data budgets (1,000 and 3,000
teacher-labelled states), where the losses can differ; student-driven
collection (DAgger) and, at 1,000 states, teacher-driven collection; 3
seeds. Every other setting is `DistillConfig`'s default.

Per run, on 100 greedy episodes of the student (seeds shared with the
teacher's and a uniformly random policy's evaluation, as in `distill_policy`):
the return and normalised score ``(student − random) / (teacher − random)``,
the agreement with the teacher's greedy action, and the KL between the
teacher's and the student's action distributions on the states the student
visits, ``KL(softmax(teacher / T_ref) ‖ softmax(student / T_ref))``. So that
students trained at different T can be compared, ``T_ref`` is fixed per
teacher rather than the training T: 1 for both (the PPO teacher's own policy),
and for the DQN teacher also 0.01 (its sharpened, near-greedy policy).
`distill_policy`'s own final evaluation is cut to one episode, since this
study evaluates every student itself.

Writes ``results/temperature.{json,md}`` and ``docs/img/temperature.png``
(under ``$KD_RL_BENCH_OUT`` if set; see ``_common.py``). About 20 minutes on
2 CPU cores with the defaults.

The teachers, temperatures, settings and seeds: the row ``temperature`` of ``experiments.yml``.

    python benchmarks/run.py temperature [--seeds 0 1 2] [--settings student:1000 student:3000 teacher:1000]
"""

from __future__ import annotations

import time

import numpy as np
from _common import check_choices, docs_dir, quiet_tensorflow, timed_distill

quiet_tensorflow()

FIGURE = "img/temperature.png"


def _method(loss: str, temperature: float | None) -> str:
    return f"KL T={temperature:g}" if loss == "kl" else loss.upper()


def _parse_setting(text: str) -> tuple[str, int]:
    """``COLLECT:STEPS`` as ``(collect, steps)``."""
    collect, _, steps = text.partition(":")
    if collect not in ("student", "teacher") or not steps.isdigit() or int(steps) < 1:
        raise ValueError(f"settings: a setting is COLLECT:STEPS with COLLECT student or teacher, got {text!r}")
    return collect, int(steps)


def run_study(
    env_id: str,
    kl_references: dict[str, list[float]],
    teachers: list[str],
    temperatures: list[float],
    settings: list[tuple[str, int]],
    seeds: list[int],
    episodes: int,
    hidden: int,
) -> list[dict]:
    """Every (teacher, setting, loss, temperature, seed) run, measured (the arguments are `study`'s)."""
    from kd_rl.distill import FINAL_EVAL_SEED_OFFSET
    from kd_rl.evaluate import normalised_score, random_policy_return, run_episodes
    from kd_rl.models import load_policy

    methods = [("nll", None), ("mse", None)] + [("kl", t) for t in temperatures]
    runs, baselines = [], {}
    for name in teachers:
        teacher = load_policy(name)
        for seed in seeds:
            eval_seed = FINAL_EVAL_SEED_OFFSET + seed
            baselines[(name, seed)] = (
                run_episodes(teacher, env_id, episodes, seed=eval_seed).mean_return,
                random_policy_return(env_id, episodes, seed=eval_seed),
            )
        for collect, steps in settings:
            for loss, temperature in methods:
                for seed in seeds:
                    start = time.perf_counter()
                    eval_seed = FINAL_EVAL_SEED_OFFSET + seed
                    student, m = timed_distill(
                        teacher,
                        env_id=env_id,
                        hidden_units=hidden,
                        steps=steps,
                        loss=loss,
                        temperature=temperature,
                        collect=collect,
                        seed=seed,
                        eval_episodes=1,
                        curve_episodes=1,
                    )
                    kl, stats = {}, None
                    for t_ref in kl_references[name]:
                        # The student acts greedily, so every pass plays the same episodes and visits the same states.
                        stats = run_episodes(
                            student, env_id, episodes, seed=eval_seed, reference=teacher, temperature=t_ref
                        )
                        kl[f"{t_ref:g}"] = stats.kl
                    teacher_return, random_return = baselines[(name, seed)]
                    runs.append(
                        {
                            "teacher": name,
                            "teacher_outputs": m["teacher_outputs"],
                            "collect": collect,
                            "steps": steps,
                            "labelled_states": m["labelled_states"],
                            "loss": loss,
                            "temperature": temperature,
                            "method": _method(loss, temperature),
                            "seed": seed,
                            "eval_seed": eval_seed,
                            "mean_return": stats.mean_return,
                            "teacher_mean_return": teacher_return,
                            "random_mean_return": random_return,
                            "normalised_score": normalised_score(stats.mean_return, teacher_return, random_return),
                            "agreement": stats.agreement,
                            "kl": kl,
                            "train_seconds": m["train_seconds"],
                            "seconds": time.perf_counter() - start,
                        }
                    )
                    r = runs[-1]
                    print(
                        f"{name} {collect}:{steps} {r['method']} seed {seed}: return {r['mean_return']:.1f} "
                        f"agreement {r['agreement']:.3f} KL {kl} ({r['seconds']:.1f} s)",
                        flush=True,
                    )
    return runs


def aggregate(runs: list[dict]) -> list[dict]:
    """Mean and std over seeds per (teacher, collect, steps, method), in the order first seen."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["teacher"], r["collect"], r["steps"], r["method"]), []).append(r)
    out = []
    for (teacher, collect, steps, method), rs in groups.items():
        row = {
            "teacher": teacher,
            "collect": collect,
            "steps": steps,
            "method": method,
            "loss": rs[0]["loss"],
            "temperature": rs[0]["temperature"],
            "seeds": len(rs),
        }
        for key in ("mean_return", "normalised_score", "agreement"):
            values = np.array([r[key] for r in rs], dtype=float)
            row[key] = (float(values.mean()), float(values.std()))
        row["kl"] = {}
        for t_ref in rs[0]["kl"]:
            values = np.array([r["kl"][t_ref] for r in rs], dtype=float)
            row["kl"][t_ref] = (float(values.mean()), float(values.std()))
        out.append(row)
    return out


def _pm(pair, fmt: str) -> str:
    return f"{fmt.format(pair[0])} ± {fmt.format(pair[1])}"


def tables(rows: list[dict], runs: list[dict]) -> str:
    parts = []
    for teacher in dict.fromkeys(r["teacher"] for r in rows):
        mine = [r for r in rows if r["teacher"] == teacher]
        refs = list(mine[0]["kl"])
        outputs = next(r["teacher_outputs"] for r in runs if r["teacher"] == teacher)
        teacher_return = np.mean([r["teacher_mean_return"] for r in runs if r["teacher"] == teacher])
        random_return = np.mean([r["random_mean_return"] for r in runs if r["teacher"] == teacher])
        lines = [
            f"**{teacher}** (outputs: {outputs}; return {teacher_return:.1f}, random policy {random_return:.1f}). "
            f"Mean ± std over {mine[0]['seeds']} seeds.\n",
            "| collection | labelled states | loss | return | normalised score | agreement | "
            + " | ".join(f"KL at T_ref = {t}" for t in refs)
            + " |",
            "|---|---|---|---|---|---|" + "---|" * len(refs),
        ]
        for r in mine:
            lines.append(
                f"| {r['collect']}-driven | {r['steps']:,} | {r['method']} | {_pm(r['mean_return'], '{:.1f}')} | "
                f"{_pm(r['normalised_score'], '{:.3f}')} | {_pm(r['agreement'], '{:.3f}')} | "
                + " | ".join(_pm(r["kl"][t], "{:.3g}") for t in refs)
                + " |"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def conclusions(rows: list[dict], runs: list[dict]) -> str:
    """Where softening (T > 1) helps and where it does not, from the numbers.

    For each teacher and setting, the best softened KL student (T > 1) is set
    against the best unsoftened one (T <= 1), each picked by its mean normalised
    score. A difference counts only where it exceeds twice its standard error
    over seeds, ``sqrt(s1² / n1 + s2² / n2)``; both at >= 0.99 count as a tie at
    the teacher's level.
    """
    lines = []
    for teacher in dict.fromkeys(r["teacher"] for r in rows):
        outputs = next(r["teacher_outputs"] for r in runs if r["teacher"] == teacher)
        helps, hurts, ties = [], [], []
        kl_best = []
        for collect, steps in dict.fromkeys((r["collect"], r["steps"]) for r in rows if r["teacher"] == teacher):
            mine = [r for r in rows if r["teacher"] == teacher and (r["collect"], r["steps"]) == (collect, steps)]
            kl_rows = [r for r in mine if r["loss"] == "kl"]
            soft = [r for r in kl_rows if r["temperature"] > 1]
            sharp = [r for r in kl_rows if r["temperature"] <= 1]
            where = f"{collect}-driven, {steps:,} states"
            if soft and sharp:
                a = max(soft, key=lambda r: r["normalised_score"][0])
                b = max(sharp, key=lambda r: r["normalised_score"][0])
                (ma, sa), (mb, sb) = a["normalised_score"], b["normalised_score"]
                diff, se = ma - mb, np.sqrt(sa**2 / a["seeds"] + sb**2 / b["seeds"])
                text = f"{where} ({a['method']} {ma:.3f} vs {b['method']} {mb:.3f})"
                if min(ma, mb) >= 0.99:
                    ties.append(f"{where} (both at the teacher's level)")
                elif diff > 2 * se:
                    helps.append(text)
                elif diff < -2 * se:
                    hurts.append(text)
                else:
                    ties.append(text)
            if kl_rows:
                best = min(kl_rows, key=lambda r: r["kl"]["1"][0])
                kl_best.append(f"T = {best['temperature']:g} ({where})")
        lines.append(
            f"For {teacher} ({outputs}), softening the target (the better of T > 1 against the better of T <= 1, "
            f"by mean normalised score) helps in {len(helps)} setting(s)"
            + (f" ({'; '.join(helps)})" if helps else "")
            + f", hurts in {len(hurts)}"
            + (f" ({'; '.join(hurts)})" if hurts else "")
            + f" and makes no difference beyond the seed-to-seed spread in {len(ties)}"
            + (f" ({'; '.join(ties)})" if ties else "")
            + "."
            + (
                f" Among the KL students, the KL to the teacher at T_ref = 1 is lowest for " f"{', '.join(kl_best)}."
                if kl_best
                else ""
            )
        )
    lines.append(
        f"A difference counts where it exceeds twice its standard error over seeds; with {rows[0]['seeds']} seeds "
        "that is a coarse test, so read the table for the size of each effect."
    )
    return "\n\n".join(lines)


def figure(data: dict):
    """Return (top) and KL to the teacher (bottom) against the training temperature, per teacher.

    KL students are lines (mean ± std over seeds as a band) against T on a log
    axis; NLL (dashed) and MSE (dotted) students, which have no T, are
    horizontal lines in the colour of their setting.
    """
    import matplotlib.lines as mlines

    from kd_rl.plots import plt

    rows = data["summary"]
    teachers = list(dict.fromkeys(r["teacher"] for r in rows))
    refs = data["kl_reference_temperatures"]  # ordered lists (the JSON file sorts the keys of each run's "kl")
    panels = [(t, f"{ref:g}") for t in teachers for ref in refs[t]]
    settings = list(dict.fromkeys((r["collect"], r["steps"]) for r in rows))
    colour = {s: f"C{i}" for i, s in enumerate(settings)}
    ncols = max(len(teachers), len(panels))
    fig, axes = plt.subplots(2, ncols, figsize=(4.2 * ncols, 7.5), squeeze=False)

    def draw(ax, teacher, value):
        for setting in settings:
            mine = [r for r in rows if r["teacher"] == teacher and (r["collect"], r["steps"]) == setting]
            kl = sorted((r for r in mine if r["loss"] == "kl"), key=lambda r: r["temperature"])
            if kl:
                t = [r["temperature"] for r in kl]
                mean, std = np.array([value(r) for r in kl]).T
                ax.plot(t, mean, marker="o", color=colour[setting])
                ax.fill_between(t, mean - std, mean + std, color=colour[setting], alpha=0.15)
            for r in mine:
                if r["loss"] in ("nll", "mse"):
                    style = "--" if r["loss"] == "nll" else ":"
                    ax.axhline(value(r)[0], color=colour[setting], linestyle=style, linewidth=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("training temperature T of the KL loss (log scale)")
        ax.grid(alpha=0.3, which="both")

    episodes = data["args"]["episodes"]
    for i, teacher in enumerate(teachers):
        ax = axes[0][i]
        draw(ax, teacher, lambda r: r["mean_return"])
        teacher_return = np.mean([r["teacher_mean_return"] for r in data["runs"] if r["teacher"] == teacher])
        ax.axhline(teacher_return, color="black", linestyle="-.", linewidth=1)
        ax.set(title=f"{teacher}: student return", ylabel=f"mean return over {episodes} episodes")
    for j, (teacher, ref) in enumerate(panels):
        ax = axes[1][j]
        draw(ax, teacher, lambda r, ref=ref: r["kl"][ref])
        ax.set_yscale("log")
        ax.set(title=f"{teacher}: KL at T_ref = {ref}", ylabel="KL(teacher ‖ student), student's states")
    legend_ax = axes[0][-1] if len(teachers) < ncols else axes[0][0]
    for i in range(len(teachers), ncols):
        axes[0][i].axis("off")
    handles = [
        mlines.Line2D([], [], color=colour[s], marker="o", label=f"KL, {s[0]}-driven, {s[1]:,} states")
        for s in settings
    ]
    handles += [
        mlines.Line2D([], [], color="black", linestyle="-.", label="teacher"),
        mlines.Line2D([], [], color="grey", linestyle="--", label="NLL (no temperature)"),
        mlines.Line2D([], [], color="grey", linestyle=":", label="MSE (no temperature)"),
    ]
    legend_ax.legend(handles=handles, loc="center" if len(teachers) < ncols else "lower right", fontsize="small")
    fig.suptitle(f"16-unit students of CartPole-v1 teachers: the KL temperature ({data['seeds']} seeds, mean ± std)")
    fig.tight_layout()
    return fig


def study(
    env_id: str,
    kl_references: dict[str, list[float]],
    teachers: list[str],
    temperatures: list[float],
    settings: list[str],
    seeds: list[int],
    episodes: int,
    hidden: int,
) -> tuple[dict, str]:
    """Students distilled with NLL, MSE and KL at each temperature, per teacher and setting; draws the figure.

    Args:
        env_id: the teachers' environment.
        kl_references: teacher -> temperatures at which the KL to it is measured (the first is the one all share).
        teachers: the teachers of ``kl_references`` to distil.
        temperatures: the KL students' training temperatures.
        settings: COLLECT:STEPS pairs (collection mode and labelled states).
        seeds: one student per seed, teacher, setting and loss.
        episodes: evaluation episodes per student.
        hidden: student hidden units.
    """
    from kd_rl.plots import save

    check_choices("teachers", teachers, kl_references)
    pairs = [_parse_setting(text) for text in settings]
    start = time.perf_counter()
    runs = run_study(env_id, kl_references, teachers, temperatures, pairs, seeds, episodes, hidden)
    rows = aggregate(runs)
    args = {
        "teachers": teachers,
        "temperatures": temperatures,
        "settings": [f"{c}:{s}" for c, s in pairs],
        "seeds": seeds,
        "episodes": episodes,
        "hidden": hidden,
    }
    data = {
        "args": args,
        "seeds": len(seeds),
        "kl_reference_temperatures": {t: list(kl_references[t]) for t in teachers},
        "summary": rows,
        "runs": runs,
        "wall_seconds": time.perf_counter() - start,
    }
    text = (
        f"{len(runs)} runs in {data['wall_seconds'] / 60:.1f} minutes. KL columns: the mean over the states the "
        "student visits of KL(softmax(teacher / T_ref) ‖ softmax(student / T_ref)), at a reference temperature "
        "fixed per teacher whatever T the student was trained at.\n\n"
        + tables(rows, runs)
        + "\n\n"
        + conclusions(rows, runs)
    )
    save(figure(data), docs_dir() / FIGURE)
    return data, text


if __name__ == "__main__":
    from run import main

    main(script=__file__)
