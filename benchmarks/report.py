"""Write docs/benchmarks.md and its figures from benchmarks/results/.

Run after the benchmark scripts; every number on the page comes from their
JSON and Markdown results, each with the command that produced it. With
``KD_RL_BENCH_OUT`` set (see ``_common.py``) it reads the results there and
writes the page and its figures there too.

    python benchmarks/report.py
"""

from __future__ import annotations

import json

from _common import docs_dir, results_dir

INTRO = """# Benchmarks

Every number on this page was measured by a script in `benchmarks/` on the machine kd_rl
is built for: **2 CPU cores, no GPU**, shared with other work. Each section names the
command that reproduces it; each script writes `benchmarks/results/NAME.json` (all runs,
the machine, the command) and `NAME.md` (the table below). Timings are medians of many
repetitions measured in one run, so ratios between rows are fair; absolute numbers move
with the machine and its load. `python benchmarks/report.py` rebuilds this page from the
results.

Students are scored by their **normalised score**, `(student − random) / (teacher − random)`
over the same seeded episodes: 1 is the teacher, 0 a uniformly random policy, and it means
the same for negative returns (LunarLander-v3) as for positive ones. Where a section runs
ten seeds, its headline is the interquartile mean (IQM) over seeds with a 95% percentile-
bootstrap interval, beside the worst seed (as rliable recommends); each section says how
many seeds it ran.
"""

SECTIONS = [
    (
        "distill_cartpole",
        "Distilling the shipped CartPole-v1 teacher",
        "The 100-unit DQN teacher from the zoo into a 50-unit student with the default "
        "settings (student-driven data, KL at T = 0.01, 10,000 teacher-labelled states), ten "
        "seeds (0-9); returns over the same 100 seeded episodes for teacher, student and a random "
        "policy. Target: a normalised score >= 0.99 with at most 20,000 labelled states in under "
        "60 s, judged on the worst seed and on the IQM.",
    ),
    (
        "distill_compression",
        "Compression beyond the published headline",
        "Rusu et al. (2016) kept a DQN's performance with students about 15x smaller. Here the "
        "large CartPole-v1 teacher (67,586 parameters) and the LunarLander-v3 teacher (69,124) "
        "are distilled into much smaller students, ten seeds (0-9) each. Targets: on CartPole-v1 a "
        "student with at most 1% of the parameters scores >= 0.99; on LunarLander-v3 a student "
        "with at most 1/15 scores >= 0.95; each judged on the worst seed and on the IQM.",
    ),
    (
        "distill_collect",
        "Who acts while collecting: teacher or student?",
        "Teacher-driven data (the teacher acts) against student-driven data (DAgger: the student "
        "acts, the teacher labels), 5 seeds each, with a small budget (3,000 labelled states) "
        "where the difference can show; returns and normalised scores over 100 episodes, "
        "agreement on the states the student visits.",
    ),
    (
        "temperature",
        "Temperature study",
        "What the softmax temperature of the KL loss does, the article's central claim. Two zoo "
        "teachers of CartPole-v1 with the same network and different outputs: `CartPole-v1-ppo` "
        "(a stochastic policy's logits) and `CartPole-v1-dqn` (Q-values), each distilled into a "
        "16-unit student with NLL (hard greedy labels), MSE (raw outputs) and KL at T = 0.01, 0.1, "
        "1, 2 and 4, with 1,000 and 3,000 labelled states (student-driven) and 1,000 "
        "(teacher-driven), 3 seeds. Per student: return and normalised score over 100 episodes, "
        "agreement, and the KL between the teacher's and the student's action distributions on "
        "the states the student visits, measured at a reference temperature fixed per teacher "
        "(T_ref = 1 for both; 0.01 too for the DQN, its near-greedy policy) so that students "
        "trained at different T compare fairly. The paragraph after the tables is generated from "
        "the numbers.",
    ),
    (
        "teachers",
        "Teachers side by side with Stable-Baselines3",
        "kd_rl's DQN, PPO and SAC teachers (TF-Agents, the shipped hyperparameters, which follow "
        "RL-Baselines3-Zoo; for DQN on CartPole-v1 and LunarLander-v3 the `CartPole-v1-rlzoo` and "
        "`LunarLander-v3-rlzoo` entries, RL-Zoo's settings as SB3 runs them with kd_rl's default 3-step "
        "returns where SB3 bootstraps after one step, since the plain entries trained the zoo's teachers "
        "with others) and Stable-Baselines3 2.x with RL-Zoo's hyperparameters, trained one "
        "after the other seed by seed in the same run (SB3 in a throwaway venv the script makes). "
        "Both evaluate greedily every few thousand env steps over 20 episodes (100 on MountainCar-v0, "
        "see below the table) seeded apart from training and stop at the first evaluation that reaches "
        "Gymnasium's threshold; the budget is "
        "RL-Zoo's step count for the environment. Wall seconds count from the start of training, "
        "compilation and evaluations included. SB3 runs with one PyTorch thread (its fastest setting "
        "for small networks on CPU), TensorFlow with its defaults. Target (issue #16): kd_rl needs no "
        "more env steps and no more wall time than SB3 (medians of 3 seeds) for DQN and PPO on "
        "CartPole-v1, Acrobot-v1 and LunarLander-v3. On MountainCarContinuous-v0 both run SAC with "
        "RL-Zoo's settings; SB3 explores with gSDE, kd_rl with Ornstein-Uhlenbeck action noise "
        "([Continuous control](continuous.md#mountaincarcontinuous-v0-exploring-before-there-is-anything-to-learn)). "
        "On Pendulum-v1 both run SAC with RL-Zoo's entry; Gymnasium sets no threshold there, and issue #16 "
        "sets -200 (and 250 for BipedalWalker-v3, where Gymnasium says 300). MountainCar-v0 runs PPO "
        "only, `best.yml`'s choice there ([the zoo](zoo.md#shipped-teachers) says why DQN falls short of -110). Rows "
        "without an SB3 partner were run with `--no-sb3`. "
        "What differs between the two implementations is "
        "listed in [the CLI reference](cli.md#next-to-stable-baselines3).",
    ),
    (
        "dqn_init",
        "DQN's initial weights",
        "kd_rl's DQN with RL-Zoo's CartPole-v1 settings as Stable-Baselines3 runs them ([256, 256], "
        "constant learning rate, vanilla DQN, 50,000 env steps), started from TF-Agents' "
        "initialisation (`init: tf_agents`, He-normal layers and an output layer near -0.2) and from "
        "PyTorch's `nn.Linear` default that SB3 uses (`init: torch`), 3 seeds each, stopping at the "
        "first 20-episode greedy evaluation (every 2,500 env steps) that reaches 475.",
    ),
    (
        "dqn_n_step",
        "DQN's multi-step targets",
        "kd_rl's DQN with one-step targets (`n_step: 1`) and with 3-step returns (`n_step: 3`, the "
        "default for new entries), everything else equal: RL-Zoo's CartPole-v1 and LunarLander-v3 "
        "settings as Stable-Baselines3 runs them (`CartPole-v1-rlzoo`, `LunarLander-v3-rlzoo`), and "
        "Acrobot-v1 with the untuned `default` entry, what an environment without an entry gets. Each "
        "seed stops at the first 20-episode greedy evaluation that reaches the threshold. The seeds "
        "(10 and up) are not the 0-2 of the side-by-side table above. "
        "[How the targets are built](cli.md#multi-step-dqn-targets-n_step).",
    ),
    (
        "latency",
        "Batch-1 action latency",
        "The time to choose one action, as a deployed agent pays at every step: teacher and "
        "50-unit student as an eager Keras 3 call, a `tf.function`, the TFLite float32 export in "
        "LiteRT (`ai_edge_litert`; the interpreter alone, and through kd_rl's `TFLitePolicy` "
        "wrapper), the TFLite int8 export through `TFLitePolicy`, and `NumpyPolicy`. Target: the "
        "student's fastest exported path <= 5 µs median and >= 100x faster than the eager Keras "
        "call.",
    ),
    (
        "throughput",
        "Distillation throughput",
        "Samples per second of `make_distill_step` with stored teacher logits (as in the live "
        "loop) at batch 64, 256 and 1024, with and without XLA (`jit_compile=True`), called with "
        "one batch per call and with a stack of 100 batches per call (`[steps, batch, obs_dim]`, "
        "what `distill_policy` passes: a round's updates in one call). Every call into TensorFlow "
        "has a fixed cost (measured below for an empty `tf.function`) on top of the graph's own "
        "dispatch, so with one batch per call that cost dominates at small batches. Target: "
        ">= 1,000,000 samples/s at batch 1024.",
    ),
    (
        "export_check",
        "How faithful are the exports?",
        "A distilled student (CartPole-v1: 50 units; LunarLander-v3: 256 units) exported to TFLite "
        "float32, TFLite int8 and NumPy (TFLite files run in LiteRT); each export is compared with "
        "the Keras student on 10,000 states the student visits (argmax agreement) and on the same "
        "100 seeded episodes, its return scored against the Keras student's as a normalised score. "
        "Targets: >= 99.5% agreement for the float exports, >= 98% for int8, a normalised score "
        "within 0.01 of 1.\n\n"
        "The decisive-states column shows where int8 disagrees: on states whose top-two logit gap "
        "is at least 4 steps of the int8 output scale, against near-ties, states where the student "
        "itself barely prefers one action. A student distilled at T = 0.01 copies the teacher's "
        "Q-value gaps, and a policy that balances a pole (or hovers a lander) spends much of its "
        "time near its own decision boundary, so near-ties are common among the states it visits. "
        "The next section measures what other quantisation schemes do about it.",
    ),
    (
        "int8_study",
        "Can int8 do better? Quantisation variants",
        "The same kind of students (default KL students, and students distilled with the NLL loss, "
        "whose margins are larger), converted after float-exact rewrites of the network: "
        "per-feature standardisation of the input folded into the first layer (one input scale "
        "then suits every feature), logits centred across actions, cross-layer weight equalisation "
        "(which helps where Dense weights share one scale per tensor; the results say how many "
        "scales the converter gave), quantisation-aware fine-tuning with "
        "`tf.quantization.fake_quant_*`, and, for reference, int16 activations with int8 weights "
        "(not full int8). Agreement with the Keras student on 10,000 visited states, in LiteRT.\n\n"
        "`kd-rl export --format tflite-int8` stays the plain conversion: one self-contained file "
        "that any TFLite runtime reads without extra preprocessing. Where every decision must match "
        "the Keras student, export `tflite` (float32).",
    ),
    (
        "compression",
        "The compression sweep",
        "Students of 100, 50, 25, 12, 6 and 3 hidden units distilled with the default settings "
        "from the large CartPole-v1 teacher (10,000 labelled states) and the LunarLander-v3 "
        "teacher (50,000), 3 seeds each: parameters, file bytes of each export format, "
        "batch-1 latency (median µs of the TFLite float32 export in the LiteRT interpreter and of "
        "`NumpyPolicy`, seed-0 student, all timed in one process) and return and normalised score "
        "over 100 episodes per seed. The latencies are comparable with each other, not with the "
        "latency benchmark above: this process has run many distillations first.",
    ),
    (
        "sample_efficiency",
        "Sample efficiency: distillation against learning from scratch",
        "Environment steps until a 50-unit network reaches a normalised score of 0.95 on "
        "CartPole-v1 (first 20-episode evaluation at or above the threshold the table states), by "
        "distillation from the zoo teacher (student-driven, evaluated every 100 env steps) and by "
        "DQN from scratch with the `CartPole-v1` hyperparameters and 50 hidden units (evaluated "
        "every 1,000 env steps), 3 seeds each. The teacher's own training is not counted for "
        "distillation; the table states it, both up to the teacher's best snapshot and for its "
        "whole run. Distillation's gain is that one trained teacher yields students of any size "
        "for a few thousand env steps each.",
    ),
    (
        "scaling",
        "Scale-out: collection on Ray actors",
        "Labelled states per second of student-driven collection in one process and on 1, 2 and 4 "
        "Ray actors, for a cheap teacher (the zoo's CartPole-v1 DQN) and an expensive one (a 2x1024 "
        "MLP), with the fixed cost of a round and the actors' start-up; then a projection from the "
        "1-actor rate and the learner's measured update rate to 64 actors. On 2 shared cores more "
        "than one actor cannot run faster; the projection assumes a core per actor "
        "(see [Scaling out](scaling.md)).",
    ),
    (
        "teacher_envs",
        "Parallel environments for teacher training",
        "Env steps per second of `make_batched_env` stepping 2 and 4 environments serially in one "
        "process against `parallel=True` (TF-Agents' `ParallelPyEnvironment`, a process per "
        "environment), for a cheap, a mid and a slow simulator, random actions. A ratio above 1 is "
        "what `parallel=True` buys on this machine. Then whole DQN and SAC training runs with "
        "`n_envs: 1`, with 4 environments stepped together and with 4 in processes "
        "(`parallel_envs: true`).",
    ),
    (
        "continuous",
        "Continuous control: Gaussian teachers into small students",
        "The zoo's Gaussian teachers (Pendulum-v1's SAC, tanh-squashed; LunarLanderContinuous-v3's and "
        "BipedalWalker-v3's PPO, plain Gaussians whose means are clipped to the bounds) distilled with the "
        "Gaussian KL (kd_rl's "
        "default, decoupled form) on student-driven data into one-layer students, 3 seeds per size: "
        "parameters, float32 TFLite bytes, the batch-1 latency of the student's deterministic action "
        "(LiteRT interpreter and NumPy), and the normalised score over 100 episodes. Then the losses "
        "at equal data budgets (the KL decoupled and exact, MSE on the means, NLL): the return kept, "
        "the action error, and the student's action noise against the "
        "teacher's (sigma_s / sigma_t; see [Continuous control](continuous.md)). Each environment's "
        "tables name the command and CPU that measured them. Targets: on Pendulum-v1 a student with "
        "at most 1/10 of the teacher's parameters keeps >= 95% of the normalised score; on "
        "LunarLanderContinuous-v3 the smallest student that keeps >= 95%; on BipedalWalker-v3 a student "
        "with at most 1/15 of the parameters keeps >= 90% (its students: tanh, the teacher's observation "
        "normaliser, one log-std per dimension, as the table says); the TFLite action takes <= 5 us.",
    ),
    (
        "multitask",
        "Multi-task distillation: four teachers, one student",
        "The zoo's CartPole-v1, Acrobot-v1, MountainCar-v0 and LunarLander-v3 DQN teachers into one "
        "`MultiTaskStudent` with at most 1/10 of their summed parameters, 3 seeds; against four "
        "single-task students with the same total parameters and labelled states; and transfer to "
        "the last task from a trunk trained on the other three (see "
        "[Multi-task distillation](multitask.md)). Targets: a geometric mean of normalised scores "
        ">= 0.95 (Rusu et al. 2016: 0.893 on Atari), no task below 0.85.",
    ),
    (
        "kickstart",
        "Kickstarting",
        "DQN students trained on the reward plus a decaying distillation term (see "
        "[Kickstarting](kickstarting.md)), 3 seeds per case, against the same student from scratch "
        "(same hyperparameters and budget; the speed-up runs' λ decays linearly from λ0 = 1 on "
        "CartPole-v1 and λ0 = 10 on LunarLander-v3, where λ0 = 1 was too weak: both are shown). "
        "Targets: from a strong teacher into a student at most "
        "half as wide, >= 5x fewer env steps to the solved score (CartPole-v1 475, LunarLander-v3 "
        "200); from a teacher scoring 40-70% of 475, a final score above the teacher's that closes "
        "at least half the gap to 475, where pure distillation stays at the teacher's level; and "
        "what a constant λ does instead of a linear decay.",
    ),
]

COMMANDS = {
    "distill_cartpole": "python benchmarks/distill_targets.py cartpole",
    "distill_compression": "python benchmarks/distill_targets.py compression",
    "distill_collect": "python benchmarks/distill_targets.py collect",
    "temperature": "python benchmarks/temperature.py",
    "teachers": "python benchmarks/teachers.py",
    "dqn_init": "python benchmarks/dqn_init.py",
    "dqn_n_step": "python benchmarks/dqn_n_step.py",
    "latency": "python benchmarks/latency.py",
    "throughput": "python benchmarks/throughput.py",
    "export_check": "python benchmarks/export_check.py",
    "int8_study": "python benchmarks/int8_study.py",
    "compression": "python benchmarks/compression.py",
    "sample_efficiency": "python benchmarks/sample_efficiency.py",
    "scaling": "python benchmarks/scaling.py",
    "teacher_envs": "python benchmarks/teacher_envs.py",
    "kickstart": "python benchmarks/kickstart.py",
    "continuous": "python benchmarks/continuous.py",
    "multitask": "python benchmarks/multitask.py --steps 20000",
}


def figures() -> dict[str, list[str]]:
    from kd_rl import plots

    results, docs = results_dir(), docs_dir()
    made = {}
    sweep = results / "compression.json"
    if sweep.exists():
        data = json.loads(sweep.read_text())["results"]
        pairs = {
            env: [(m["student_params"], m["student_mean_return"]) for s in r["sizes"].values() for m in s["runs"]]
            for env, r in data.items()
        }
        for env, r in data.items():
            seeds = len(next(iter(r["sizes"].values()))["runs"])
            fig = plots.plot_compression_curve(
                {env: pairs[env]},
                teacher={env: (r["teacher_params"], r["teacher_mean_return"])},
                title=f"{env}: the compression sweep ({seeds} seeds per size)",
            )
            name = f"img/sweep_{env}.png"
            plots.save(fig, docs / name)
            made.setdefault("compression", []).append(name)
    temperature = results / "temperature.json"
    if temperature.exists():
        from temperature import FIGURE
        from temperature import figure as temperature_figure

        plots.save(temperature_figure(json.loads(temperature.read_text())), docs / FIGURE)
        made["temperature"] = [FIGURE]
    eff = results / "sample_efficiency.json"
    if eff.exists():
        data = json.loads(eff.read_text())
        curves = {
            f"{r['method']} seed {r['seed']}": {
                "env_steps": [c[0] for c in r["curve"]],
                "mean_return": [c[1] for c in r["curve"]],
            }
            for r in data["runs"]
        }
        fig = plots.plot_training_curve(
            curves, title="50-unit network on CartPole-v1: distilled vs DQN from scratch", solved=data["threshold"]
        )
        fig.axes[0].set_xscale("log")
        fig.axes[0].set_xlabel("environment steps (log scale)")
        plots.save(fig, docs / "img/sample_efficiency.png")
        made["sample_efficiency"] = ["img/sample_efficiency.png"]
    kick = results / "kickstart.json"
    if kick.exists():
        from kickstart import FIGURES
        from kickstart import figure as kickstart_figure

        data = json.loads(kick.read_text())
        for which, name in FIGURES.items():
            plots.save(kickstart_figure(data, which), docs / name)
        made["kickstart"] = list(FIGURES.values())
    teach = results / "teachers.json"
    if teach.exists():
        import matplotlib.pyplot as plt

        data = json.loads(teach.read_text())
        runs = [r for r in data["runs"] if "framework" in r]
        pairs = sorted({(r["env"], r["algo"]) for r in runs})
        if pairs:
            cols = min(len(pairs), 4)
            rows = -(-len(pairs) // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
            for ax in axes.flat[len(pairs) :]:
                ax.set_visible(False)
            for ax, (env, algo) in zip(axes.flat, pairs):
                for r in runs:
                    if (r["env"], r["algo"]) != (env, algo):
                        continue
                    color, style = ("C0", "-") if r["framework"] == "kd_rl" else ("C1", "--")
                    label = f"{r['framework']}" if r["seed"] == min(x["seed"] for x in runs) else None
                    steps = [c[0] for c in r["curve"]]
                    ax.plot(
                        steps, [c[1] for c in r["curve"]], style, color=color, marker="o", markersize=2, label=label
                    )
                ax.axhline(data["cases"][env]["threshold"], color="grey", linestyle=":")
                ax.set(title=f"{env} {algo}", xlabel="env steps")
                ax.grid(alpha=0.3)
            for row in axes:
                row[0].set_ylabel("greedy evaluation return")
            axes[0][0].legend()
            fig.suptitle("Teachers: kd_rl (solid) and Stable-Baselines3 (dashed), each seed until the threshold")
            fig.tight_layout()
            plots.save(fig, docs / "img/teachers.png")
            made["teachers"] = ["img/teachers.png"]
    return made


def main() -> None:
    from kd_rl._io import write_text

    made = figures()
    parts = [INTRO]
    for name, title, text in SECTIONS:
        parts.append(f"## {title}\n\n{text}\n\n```text\n{COMMANDS[name]}\n```\n")
        result = results_dir() / f"{name}.md"
        parts.append(result.read_text() if result.exists() else "Not measured yet: run the command above.\n")
        for image in made.get(name, []):
            parts.append(f"\n![{title}]({image})\n")
    write_text(docs_dir() / "benchmarks.md", "\n".join(parts))
    print("wrote", docs_dir() / "benchmarks.md")


if __name__ == "__main__":
    main()
