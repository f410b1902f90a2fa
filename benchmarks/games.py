"""Rusu et al. (2016) in miniature: MinAtar DQN teachers distilled into students 4x, 15x and 27x smaller.

Rusu et al. distilled 1.7M-parameter Atari DQNs into students of a quarter,
a fifteenth and a twenty-seventh of their parameters, which kept 108%, 102%
and 84% of the teachers' scores (geometric mean over 10 games, KL at
τ = 0.01). Here each MinAtar teacher (Young & Tian's network: one 16-filter
3x3 convolution and 128 units) is distilled into three convolutional students
of about the same shares, with kd_rl's defaults otherwise (student-driven
collection, KL at T = 0.01), for every seed. Each student is scored over the
final evaluation's episodes as ``(student − random) / (teacher − random)``;
a size's summary is the geometric mean over games of the per-game mean
score. At one size the KL is compared with NLL on the teacher's greedy action
and MSE on the Q-values, as Rusu did. Last, the batch-1 LiteRT action of the
teacher and of each size's first student is timed, all in one stretch.

Teachers, sizes, budgets and seeds: the row ``games_rusu`` of ``experiments.yml``.

    python benchmarks/run.py games_rusu [--games MinAtar/Breakout-v1] [--seeds 0 1 2]

``games_multitask`` (`multitask`) distils the five games into one student no
larger than one teacher, as Rusu's multi-task DQN; ``games_teacher_speed``
(`teacher_speed`) times kd_rl's DQN teacher beside Stable-Baselines3's.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import check_choices, litert_step_us, quiet_tensorflow, stored_distill

quiet_tensorflow()


def _geometric_mean(values) -> float:
    values = [max(float(v), 0.0) for v in values]
    return 0.0 if min(values) == 0.0 else float(math.exp(np.mean(np.log(values))))


def rusu(
    teachers: dict[str, str],
    sizes: dict[str, list],
    games: list[str],
    seeds: list[int],
    steps: int,
    episodes: int,
    losses_at: str,
    losses: list[str],
    repeats: int,
    max_steps: int | None = None,
    store: str | None = None,
) -> tuple[dict, str]:
    """Students of each size from each game's teacher, the losses at one size, and batch-1 LiteRT latency.

    Args:
        teachers: game id -> teacher (a zoo name or a ``.keras`` path).
        sizes: size name -> ``[conv_layers, hidden_units]`` of the student.
        games: the games of ``teachers`` to measure.
        seeds: one student per seed, size and game.
        steps: labelled states per student.
        episodes: final evaluation episodes per run.
        losses_at: the size at which KL, NLL and MSE are compared.
        losses: the losses compared at ``losses_at`` (KL is the sizes' own runs).
        repeats: timed calls per latency measurement.
        max_steps: cap the labelled-state budget (quick tries only).
        store: a folder that keeps each finished run (student and metrics), so that a
            rerun after an interruption only runs what is missing; each run names its CPU.
    """
    from kd_rl.export import export_model
    from kd_rl.models import load_policy

    check_choices("games", games, teachers)
    check_choices("losses_at", [losses_at], sizes)
    steps = min(steps, max_steps or steps)
    results, first = {}, {}
    for game in games:
        teacher = load_policy(teachers[game])
        first[(game, "teacher")] = teacher
        entry = {"teacher": teachers[game], "teacher_params": teacher.count_params(), "sizes": {}, "losses": {}}
        for name, (conv, hidden) in sizes.items():
            for loss in ["kl", *(losses if name == losses_at else [])]:
                runs = []
                for seed in seeds:
                    student, m = stored_distill(
                        store, teacher, teachers[game], env_id=game, conv_layers=conv, hidden_units=hidden,
                        steps=steps, seed=seed, eval_episodes=episodes, loss=loss,
                    )  # fmt: skip
                    runs.append(m)
                    if seed == seeds[0] and loss == "kl":
                        first[(game, name)] = student
                    print(game, name, loss, seed, f"{m['student_mean_return']:.2f} ({m['normalised_score']:.3f})",
                          flush=True)  # fmt: skip
                scores = [float(m["normalised_score"]) for m in runs]
                summary = {
                    "runs": runs,
                    "params": runs[0]["student_params"],
                    "share": runs[0]["student_params"] / entry["teacher_params"],
                    "mean_score": float(np.mean(scores)),
                    "min_score": float(np.min(scores)),
                    "mean_return": float(np.mean([m["student_mean_return"] for m in runs])),
                }
                (entry["sizes"] if loss == "kl" else entry["losses"])[name if loss == "kl" else loss] = summary
        entry["losses"]["kl"] = entry["sizes"][losses_at]
        entry["teacher_mean_return"] = float(np.mean([m["teacher_mean_return"] for m in runs]))
        entry["random_mean_return"] = float(np.mean([m["random_mean_return"] for m in runs]))
        results[game] = entry

    with tempfile.TemporaryDirectory() as tmp:  # latencies last, in one stretch
        for (game, name), model in first.items():
            path = export_model(model, "tflite", Path(tmp) / f"{abs(hash((game, name)))}.tflite")
            measured = {"latency": litert_step_us(path, repeats), "tflite_bytes": path.stat().st_size}
            if name == "teacher":
                results[game]["teacher_files"] = measured
            else:
                results[game]["sizes"][name].update(measured)

    summary = {name: _geometric_mean([results[g]["sizes"][name]["mean_score"] for g in games]) for name in sizes}
    loss_summary = {
        loss: _geometric_mean([results[g]["losses"][loss]["mean_score"] for g in games]) for loss in ["kl", *losses]
    }
    n = len(seeds)
    rows = [
        f"{steps:,} labelled states per student, {n} seeds per size, {episodes} final-evaluation episodes per run; "
        "student-driven collection, KL at T = 0.01.\n",
        "| game | teacher params | teacher return | random | LiteRT µs (teacher) | "
        + " | ".join(f"{name}: params (share), score mean / min, LiteRT µs" for name in sizes)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(sizes),
    ]
    for game, r in results.items():
        cells = [
            f"{s['params']:,} ({100 * s['share']:.1f}%), {s['mean_score']:.3f} / {s['min_score']:.3f}, "
            f"{s['latency']['median_us']:.1f}"
            for s in r["sizes"].values()
        ]
        rows.append(
            f"| {game} | {r['teacher_params']:,} | {r['teacher_mean_return']:.2f} | {r['random_mean_return']:.2f} | "
            f"{r['teacher_files']['latency']['median_us']:.1f} | " + " | ".join(cells) + " |"
        )
    rows.append(
        f"\nGeometric mean over {len(games)} game(s) of the mean normalised score: "
        + "; ".join(f"{name} {value:.3f}" for name, value in summary.items())
        + " (Rusu et al.: 1.083, 1.017 and 0.839 at 1/4, 1/15 and 1/27)."
    )
    cpus = sorted({m["cpu"] for r in results.values() for s in (*r["sizes"].values(), *r["losses"].values())
                   for m in s["runs"]})  # fmt: skip
    rows.append(f"\nThe runs ran on {' and '.join(cpus)}; the latencies were all measured in this run.")
    rows.append(
        f"\nLosses at {losses_at} ({n} seeds; geometric mean of the mean score): "
        + "; ".join(f"{loss} {value:.3f}" for loss, value in loss_summary.items())
        + "."
    )
    args = {
        "games": games, "sizes": sizes, "seeds": seeds, "steps": steps, "episodes": episodes,
        "losses_at": losses_at, "losses": losses, "repeats": repeats, "max_steps": max_steps, "store": store,
    }  # fmt: skip
    data = {"args": args, "results": results, "geometric_mean": summary, "losses_geometric_mean": loss_summary}
    return data, "\n".join(rows)


def multitask(
    teachers: dict[str, str],
    games: list[str],
    conv_layers: list,
    trunk: list[int],
    seeds: list[int],
    steps: int,
    episodes: int,
    max_steps: int | None = None,
) -> tuple[dict, str]:
    """The MinAtar games into one convolutional student no larger than the smallest teacher (Rusu's multi-task DQN).

    The student (`kd_rl.multitask.MultiTaskStudent`) has each game's own first
    convolution (the games have 4 to 10 channels), any further convolutions
    and the Dense ``trunk`` shared, and one head per game. Each seed distils
    every teacher at once, ``steps`` labelled states per game, student-driven,
    KL at T = 0.01; each game is scored ``(student − random) / (teacher −
    random)`` over the final evaluation's episodes.

    Args:
        teachers: game id -> teacher (a zoo name or a ``.keras`` path).
        games: the games of ``teachers`` in the student.
        conv_layers: ``(filters, kernel, stride)`` of each convolution.
        trunk: hidden units of the shared Dense layers.
        seeds: one student per seed.
        steps: labelled states per game.
        episodes: final evaluation episodes per game.
        max_steps: cap the labelled-state budget (quick tries only).

    Raises:
        ValueError: For a student larger than the smallest teacher.
    """
    from kd_rl.models import count_params, load_policy
    from kd_rl.multitask import MultiTaskConfig, MultiTaskStudent, distill_multitask, task_spec

    check_choices("games", games, teachers)
    steps = min(steps, max_steps or steps)
    loaded = [load_policy(teachers[g]) for g in games]
    teacher_params = {g: count_params(t) for g, t in zip(games, loaded)}
    probe = MultiTaskStudent([task_spec(g, t) for g, t in zip(games, loaded)], trunk, conv_layers=conv_layers)
    student_params = count_params(probe)
    if student_params > min(teacher_params.values()):
        raise ValueError(
            f"the multi-task student has {student_params:,} parameters, more than the smallest teacher's "
            f"{min(teacher_params.values()):,}: shrink conv_layers or trunk"
        )
    print(f"teachers {teacher_params}, multi-task student {student_params:,} params", flush=True)
    runs = []
    for seed in seeds:
        start = time.perf_counter()
        config = MultiTaskConfig(
            env_ids=tuple(games), trunk_units=tuple(trunk), conv_layers=conv_layers, steps=steps, seed=seed,
            eval_episodes=episodes, eval_every=0,
        )  # fmt: skip
        _, m = distill_multitask(loaded, config, progress=False)
        m["seed"], m["total_seconds"] = seed, time.perf_counter() - start
        runs.append(m)
        print("multi", seed, f"{m['geometric_mean_score']:.3f}",
              [f"{t['normalised_score']:.3f}" for t in m["tasks"]], flush=True)  # fmt: skip
    rows = [
        f"{len(games)} game(s) in one student: each game's own first convolution, then {conv_layers[1:] or 'no'} "
        f"shared convolutions and a shared trunk of {trunk} units, one head per game; {student_params:,} "
        f"parameters, against {min(teacher_params.values()):,}–{max(teacher_params.values()):,} for one teacher. "
        f"{steps:,} labelled states per game, student-driven, KL at T = 0.01; {len(seeds)} seed(s), {episodes} "
        "final-evaluation episodes per game.\n",
        "| game | teacher params | teacher return | random | student return (mean over seeds) | "
        "normalised score: mean / min over seeds |",
        "|---|---|---|---|---|---|",
    ]
    per_game = {}
    for k, game in enumerate(games):
        tasks = [m["tasks"][k] for m in runs]
        scores = [float(t["normalised_score"]) for t in tasks]
        per_game[game] = {"mean_score": float(np.mean(scores)), "min_score": float(np.min(scores))}
        rows.append(
            f"| {game} | {teacher_params[game]:,} | {np.mean([t['teacher_mean_return'] for t in tasks]):.2f} | "
            f"{np.mean([t['random_mean_return'] for t in tasks]):.2f} | "
            f"{np.mean([t['student_mean_return'] for t in tasks]):.2f} | "
            f"{per_game[game]['mean_score']:.3f} / {per_game[game]['min_score']:.3f} |"
        )
    geo = _geometric_mean([v["mean_score"] for v in per_game.values()])
    worst = min(v["mean_score"] for v in per_game.values())
    rows.append(
        f"\nGeometric mean over the games of the mean normalised score: {geo:.3f}; the lowest game's mean: "
        f"{worst:.3f} (targets ≥ 0.95 and ≥ 0.85; Rusu et al.: 0.893 on ten Atari games). Per seed: "
        + ", ".join(f"{m['geometric_mean_score']:.3f}" for m in runs)
        + f"; {np.median([m['total_seconds'] for m in runs]):,.0f} s per seed (median), evaluations included."
    )
    args = {"games": games, "conv_layers": conv_layers, "trunk": trunk, "seeds": seeds, "steps": steps,
            "episodes": episodes, "max_steps": max_steps}  # fmt: skip
    data = {"args": args, "runs": runs, "teacher_params": teacher_params, "student_params": student_params,
            "per_game": per_game, "geometric_mean": geo, "lowest_game": worst}  # fmt: skip
    return data, "\n".join(rows)


def _sb3_minatar_python():
    """The SB3 venv (`_sb3_venv.sb3_python`) with MinAtar added (``--no-deps``: it needs only NumPy there)."""
    from _sb3_venv import _pip, sb3_python

    python = sb3_python()
    _pip(python, "install", "--quiet", "--no-deps", "minatar==1.0.15")
    return python


def teacher_speed(
    game: str, steps: int, seeds: list[int], eval_episodes: int, threads: int, sb3: bool = True
) -> tuple[dict, str]:
    """kd_rl's DQN teacher and Stable-Baselines3's DQN on one MinAtar game, side by side: env steps per second.

    Args:
        game: the MinAtar id (``MinAtar/Breakout-v1``).
        steps: environment steps each run trains for.
        seeds: one run of each per seed, kd_rl's and SB3's alternating.
        eval_episodes: greedy episodes scored after each run.
        threads: PyTorch threads of the SB3 runs (TensorFlow uses the machine's 2 cores).
        sb3: run the SB3 peer too (``--no-sb3``: kd_rl alone).
    """
    import subprocess

    from _sb3_venv import run_peer

    from kd_rl.config import TeacherConfig
    from kd_rl.teachers import train_teacher

    module = {"MinAtar/" + name + "-v1": name.lower() for name in ("Asterix", "Breakout", "Freeway", "Seaquest")}
    module["MinAtar/SpaceInvaders-v1"] = "space_invaders"
    check_choices("game", [game], module)
    python = _sb3_minatar_python() if sb3 else None
    runs = {"kd_rl": [], "sb3": []}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            config = TeacherConfig(env_id=game, algo="dqn", steps=steps, seed=seed, eval_every=steps,
                                   eval_episodes=eval_episodes)  # fmt: skip
            m = train_teacher(config, out_dir=Path(tmp) / "run", progress=False)
        runs["kd_rl"].append(
            {"env_steps": m["env_steps"], "wall_seconds": m["wall_seconds"],
             "steps_per_second": m["steps_per_second"], "mean_return": m["mean_return"], "params": m["params"]}
        )  # fmt: skip
        print("kd_rl", game, seed, runs["kd_rl"][-1], flush=True)
        if python is not None:
            cmd = [str(python), str(Path(__file__).with_name("_minatar_peer.py")), "--game", module[game],
                   "--seed", str(seed), "--steps", str(steps), "--eval-episodes", str(eval_episodes),
                   "--threads", str(threads)]  # fmt: skip
            runs["sb3"].append(run_peer(cmd, f"SB3 DQN on {game}"))
            print("sb3", game, seed, runs["sb3"][-1], flush=True)
    versions = {}
    if python is not None:
        versions = json.loads(subprocess.run(
            [str(python), "-c", "import json, stable_baselines3, torch; "
             "print(json.dumps({'stable-baselines3': stable_baselines3.__version__, 'torch': torch.__version__}))"],
            capture_output=True, text=True, check=True).stdout)  # fmt: skip
    rows = [
        f"{game}, {steps:,} environment steps per run, {len(seeds)} seed(s), each run scored over {eval_episodes} "
        f"greedy episodes after training. kd_rl: its MinAtar DQN settings (8 environments, 16 gradient steps every "
        f"64 environment steps, double 3-step targets); SB3 {versions.get('stable-baselines3', '')} DQN: the same "
        f"network, replay, batch, learning rate, target period and ε schedule, one environment, one gradient step "
        f"every 4 (vanilla one-step targets), PyTorch on {threads} thread(s). kd_rl's seconds include its one "
        "periodic evaluation; SB3's are `learn` alone.\n",
        "| library | env steps/s (median) | per seed | wall s (median) | return after training (per seed) |",
        "|---|---|---|---|---|",
    ]
    medians = {}
    for name, label in (("kd_rl", "kd_rl (TF-Agents DQN)"), ("sb3", "Stable-Baselines3 DQN")):
        if not runs[name]:
            continue
        rates = [r["steps_per_second"] for r in runs[name]]
        seconds = [r.get("wall_seconds", r.get("learn_seconds")) for r in runs[name]]
        medians[name] = float(np.median(rates))
        rows.append(
            f"| {label} | {medians[name]:,.0f} | {', '.join(f'{x:,.0f}' for x in rates)} | {np.median(seconds):,.0f} | "
            + ", ".join(f"{r['mean_return']:.2f}" for r in runs[name])
            + " |"
        )
    if len(medians) == 2:
        rows.append(f"\nkd_rl trains at {medians['kd_rl'] / medians['sb3']:.2f}x SB3's env steps per second.")
    data = {"args": {"game": game, "steps": steps, "seeds": seeds, "eval_episodes": eval_episodes,
                     "threads": threads, "sb3": sb3}, "runs": runs, "versions": versions,
            "median_steps_per_second": medians}  # fmt: skip
    return data, "\n".join(rows)


if __name__ == "__main__":
    from run import main

    main(script=__file__)
