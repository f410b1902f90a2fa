"""The ``kd-rl`` command line: a thin layer over the library.

Every subcommand parses its arguments, calls one library function and prints
the result. A `kd_rl.errors.KdRlError` (bad input kd_rl recognised) or an
``OSError`` (a missing file, a full disk) becomes one line on stderr and exit
status 2; anything else is an internal error, one line and exit status 1; no
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import sys
import warnings

from kd_rl.errors import KdRlError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), as for every other bad input."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _quiet_imports(debug: bool = False) -> None:
    """Import TensorFlow and Keras without their start-up noise.

    TensorFlow's C++ start-up lines (oneDNN, CUDA on a CPU-only machine) say
    nothing useful to a kd-rl user, so stderr is silenced at the
    file-descriptor level while they load (not with --debug). TF-Agents is
    imported only by ``train-teacher`` (`kd_rl.teachers` silences it itself).
    """
    import kd_rl  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if debug:
        import keras  # noqa: F401
        import tensorflow as tf

        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            import keras  # noqa: F401
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tf.get_logger().setLevel("ERROR")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0, got {text!r}")
    return value


#: Seeds are 32-bit (kd_rl._validate.MAX_SEED; not imported here: `kd-rl --help` stays free of NumPy).
_MAX_SEED = 2**32 - 1


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= _MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {_MAX_SEED}, got {text!r}")
    return value


def _float_type(rule: str, accept):
    """An argparse type: a finite float for which ``accept(value)`` holds, else an error saying ``rule``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is None or value != value or value in (float("inf"), float("-inf")) or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {rule}, got {text!r}")
        return value

    return parse


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


_positive_float = _float_type("a number > 0", lambda v: v > 0)
_fraction = _float_type("a number from 0 to 1", lambda v: 0 <= v <= 1)
_nonnegative_float = _float_type("a number >= 0", lambda v: v >= 0)
_finite_float = _float_type("a finite number", lambda v: True)


def _json_object(text: str) -> str:
    """``--env-kwargs``: checked to be a JSON object here, parsed again by the library."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"continuous\": true}}': {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"continuous\": true}}', got {text!r}")
    return text


def _hidden(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not units or any(u <= 0 for u in units):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return units


def _conv(text: str) -> tuple[tuple[int, int, int], ...]:
    """``--conv``: ``16:3:1,32:3:2`` (filters:kernel:stride per convolution), or ``none`` (an MLP)."""
    if text.strip().lower() == "none":
        return ()
    try:
        layers = tuple(tuple(int(v) for v in part.split(":")) for part in text.split(","))
    except ValueError:
        layers = ()
    if not layers or any(len(layer) != 3 or min(layer) <= 0 for layer in layers):
        raise argparse.ArgumentTypeError(
            f"expected FILTERS:KERNEL:STRIDE of positive integers per convolution, comma-separated "
            f"(e.g. 16:3:1), or none, got {text!r}"
        )
    return layers


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


# ----------------------------------------------------------------- commands


def _cmd_article(args) -> int:
    from kd_rl.examples.article import run

    run(temperature=args.temperature, distill_steps=args.distill_steps, seed=args.seed)
    return 0


def _cmd_zoo(args) -> int:
    from kd_rl.zoo import list_zoo

    entries = list_zoo()
    if args.markdown:
        from kd_rl.zoo import zoo_table

        print(zoo_table())
        return 0
    if args.json:
        _print_json(entries)
        return 0
    print(f"{'name':28s} {'algo':5s} {'outputs':9s} {'params':>8s} {'mean return':>12s} {'episodes':>9s}")
    for e in entries:
        print(
            f"{e['name']:28s} {e.get('algo', '?'):5s} {e.get('outputs', '?'):9s} {e.get('params', 0):8d} "
            f"{e.get('mean_return', float('nan')):8.1f} ± {e.get('std_return', float('nan')):<5.1f}"
            f"{e.get('eval_episodes', 0):6d}"
        )
    return 0


def _cmd_train_teacher(args) -> int:
    from kd_rl.config import TeacherConfig, cli_settings
    from kd_rl.teachers import train_teacher

    values = {s.name: getattr(args, s.name) for s in cli_settings(TeacherConfig) if getattr(args, s.name) is not None}
    if "overrides" in values:
        values["overrides"] = json.loads(values["overrides"])  # a JSON object: checked by the parser
    values["env_kwargs"] = _env_kwargs(args)
    metrics = train_teacher(
        TeacherConfig(env_id=args.env, **values),
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=args.command_line,
    )
    print(
        f"{args.env} {metrics['algo']}: mean return {metrics['mean_return']:.1f} ± {metrics['std_return']:.1f} "
        f"over {metrics['eval_episodes']} episodes after {metrics['env_steps']} env steps "
        f"({metrics['wall_seconds']:.0f} s); wrote {os.path.join(args.out, 'teacher.keras')}"
    )
    return 0


def _task_of(model, env_id: str | None):
    """A multi-task student's path for ``env_id``; any other model as it is."""
    from kd_rl.multitask import MultiTaskStudent

    if not isinstance(model, MultiTaskStudent):
        return model
    if env_id is None:
        raise KdRlError(f"the model is a multi-task student: name its task with --env (one of {model.task_ids})")
    return model.for_task(env_id)


def _cmd_evaluate(args) -> int:
    from kd_rl.evaluate import check_model_fits_env, evaluate_model
    from kd_rl.policies import load_any_policy

    model = _task_of(load_any_policy(args.model), args.env)
    env_kwargs = _env_kwargs(args)
    check_model_fits_env(model, args.env, "model", env_kwargs)
    result = evaluate_model(
        model, args.env, episodes=args.episodes, seed=args.seed, latency=False, env_kwargs=env_kwargs,
        max_steps=args.max_episode_steps, sensor_noise=not args.no_sensor_noise,
    )  # fmt: skip
    result = {k: v for k, v in result.items() if k not in ("returns", "lengths")}
    result.setdefault("params", None)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{args.env}: mean return {result['mean_return']:.2f} ± {result['std_return']:.2f} "
            f"(min {result['min_return']:.1f}, max {result['max_return']:.1f}) over {result['episodes']} episodes"
            + (f"; {result['params']} parameters" if result["params"] else "")
        )
    if result.get("capped_episodes"):
        print(
            f"note: {result['capped_episodes']} of {result['episodes']} episodes did not end by themselves and were "
            f"cut at {result['max_episode_steps']} steps (--max-episode-steps)",
            file=sys.stderr,
        )
    return 0


#: argparse keywords for each kind of config setting (kd_rl.config's field metadata).
_KINDS = {
    "positive_int": {"type": _positive_int},
    "nonnegative_int": {"type": _nonnegative_int},
    "seed": {"type": _seed},
    "positive_float": {"type": _positive_float},
    "fraction": {"type": _fraction},
    "hidden": {"type": _hidden},
    "conv": {"type": _conv},
    "json": {"type": _json_object},
    "float": {"type": _finite_float},
    "nonnegative_float": {"type": _nonnegative_float},
    "str": {},
    "flag": {"action": "store_true", "default": None},
    "negated_flag": {"action": "store_false", "default": None},
}


def _add_config_options(parser, config_class=None) -> None:
    """A command's options, one per setting of its `kd_rl.config` class that has a flag (default `DistillConfig`)."""
    from kd_rl.config import cli_settings

    for s in cli_settings(config_class):
        kwargs = dict(_KINDS.get(s.kind, {}))
        if s.kind == "choice":
            kwargs["choices"] = list(s.choices)
        if s.metavar:
            kwargs["metavar"] = s.metavar
        scope = {"single": " (single-task runs)", "multi": "", "both": ""}[s.scope]
        default = s.single_default if s.scope != "multi" else s.multi_default
        shown = "" if s.kind in ("flag", "negated_flag") or default is None else f" (default {default})"
        if s.scope == "both" and s.multi_default != s.single_default and s.multi_default is not None:
            multi = ",".join(map(str, s.multi_default)) if isinstance(s.multi_default, tuple) else s.multi_default
            shown = f" (default {s.single_default}; multi-task {multi})"
        if s.shown and "default" not in s.help:
            shown = f" (default: {s.shown})".replace("%", "%%")
        parser.add_argument(s.flag, dest=s.name, help=s.help + scope + shown, **kwargs)


def _config_from_args(args):
    """The run's `DistillConfig`, single-task (one --teacher/--env pair) or multi-task (several), from the flags.

    Raises:
        KdRlError: For a single-task option in a multi-task run, or the reverse.
    """
    from kd_rl.config import DistillConfig, cli_settings

    settings = cli_settings()
    given = {s.name: getattr(args, s.name) for s in settings if getattr(args, s.name, None) is not None}
    multi = len(args.env) > 1
    wrong = [s.flag for s in settings if s.name in given and s.scope == ("single" if multi else "multi")]
    if wrong and multi:
        raise KdRlError(f"{', '.join(wrong)}: not available for multi-task runs (several --teacher/--env pairs)")
    if wrong:
        raise KdRlError(f"{', '.join(wrong)} is for multi-task students (several --teacher/--env pairs)")
    if multi:
        return DistillConfig(env_id=tuple(args.env), **given)
    if "env_kwargs" in given:
        given["env_kwargs"] = _env_kwargs(args)
    return DistillConfig(env_id=args.env[0], **given)


def _env_kwargs(args) -> dict | None:
    from kd_rl.envs import parse_env_kwargs

    return parse_env_kwargs(getattr(args, "env_kwargs", None))


def _cmd_distill(args) -> int:
    from kd_rl.distill import distill_policy
    from kd_rl.models import load_policy

    if len(args.teacher) != len(args.env):
        raise KdRlError(
            f"give one --env per --teacher, in pairs: got {len(args.teacher)} --teacher and {len(args.env)} --env"
        )
    config = _config_from_args(args)
    if len(args.teacher) > 1:
        return _distill_multitask(args, config)
    teacher = load_policy(args.teacher[0])
    _, m = distill_policy(
        teacher,
        config,
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        teacher_name=str(args.teacher[0]),
        command=args.command_line,
    )
    score = m["normalised_score"]
    print(
        f"teacher {m['teacher_mean_return']:.1f} ({m['teacher_params']} params) -> "
        f"student {m['student_mean_return']:.1f} ({m['student_params']} params, {m['compression']:.1f}x smaller), "
        f"normalised score {'n/a' if score is None else f'{score:.3f}'} (random policy {m['random_mean_return']:.1f}), "
        f"agreement {m['agreement']:.3f}"
        + (f" (mean action error {m['action_error']:.3f} of the range)" if m.get("action_error") is not None else "")
        + f", {m['loss']}"
        + (f" at T={m['temperature']:g}" if m["temperature"] else "")
        + f", {m['labelled_states']} labelled states, "
        f"{m['train_seconds']:.1f} s; wrote {os.path.join(args.out, 'student.keras')}"
    )
    _print_profile(m["profile"], [m["eval_cache_status"]])
    return 0


def _print_profile(profile: dict, cache: list[dict]) -> None:
    """Where a run's time went (`kd_rl.timing.RunProfile.table`) and what the evaluation cache served."""
    from kd_rl.timing import RunProfile

    served = sum(status == "hit" for c in cache for status in c.values())
    print("where the time went (wall seconds):")
    print("\n".join("  " + line for line in RunProfile.table(profile).splitlines()))
    print(
        f"  evaluation cache: {served} of {sum(len(c) for c in cache)} fixed-policy evaluations served "
        "(the teacher's and the random policy's; --no-cache to recompute)"
    )


def _distill_multitask(args, config) -> int:
    from kd_rl.models import load_policy
    from kd_rl.multitask import distill_multitask

    teachers = [load_policy(t) for t in args.teacher]
    _, m = distill_multitask(
        teachers, config, out_dir=args.out, overwrite=args.overwrite, progress=not args.no_progress,
        teacher_names=[str(t) for t in args.teacher], resume=args.resume,
    )  # fmt: skip
    for t in m["tasks"]:
        score = t["normalised_score"]
        print(
            f"{t['env_id']}: teacher {t['teacher_mean_return']:.1f} -> student {t['student_mean_return']:.1f}, "
            f"normalised score {'n/a' if score is None else f'{score:.3f}'} "
            f"(random {t['random_mean_return']:.1f}), agreement {t['agreement']:.3f}"
        )
    gm = m["geometric_mean_score"]
    print(
        f"one student, {m['student_params']} params for {len(m['tasks'])} tasks ({m['compression']:.1f}x fewer than "
        f"the teachers' {m['teacher_params']}); geometric mean score {'n/a' if gm is None else f'{gm:.3f}'}; "
        f"{m['train_seconds']:.1f} s; wrote {os.path.join(args.out, 'student.keras')}"
    )
    _print_profile(m["profile"], [t["eval_cache_status"] for t in m["tasks"]])
    return 0


def _cmd_demo(args) -> int:
    from kd_rl.demo import run_demo

    run_demo(out_dir=args.out, teacher=args.teacher, seed=args.seed, progress=not args.no_progress)
    return 0


def _cmd_plot(args) -> int:
    from kd_rl.plots import plot_runs

    path = plot_runs(args.run_dirs, args.out)
    print(f"wrote {path}")
    return 0


def _cmd_export(args) -> int:
    from kd_rl.export import FOLDER_FORMATS, check_summary, export_model
    from kd_rl.models import load_policy

    model = _task_of(load_policy(args.model), args.env)
    env = args.env
    if env is None and args.format in ("tflite-int8", "tflm", "tflm-float"):
        from kd_rl.zoo import ZOO_DIR, zoo_entry

        if str(args.model) in {p.name for p in ZOO_DIR.iterdir()}:
            env = zoo_entry(str(args.model))["env_id"]
    path = export_model(
        model, args.format, args.out, env_id=env, seed=args.seed, env_kwargs=_env_kwargs(args), source=str(args.model)
    )
    if args.format in FOLDER_FORMATS:
        files = sorted(path.iterdir())
        print(f"wrote {path}/: " + ", ".join(f"{f.name} ({os.path.getsize(f)} bytes)" for f in files))
        if (path / "export.json").is_file():
            record = json.loads((path / "export.json").read_text())
            print(
                f"checked in the tflite-micro interpreter on {record['check']['states']} visited states: "
                f"{check_summary(record['check'])}; tensor arena {record['tensor_arena_bytes']} bytes; "
                f"operators {', '.join(record['operators'])}"
            )
    else:
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    return 0


def _cmd_convert(args) -> int:
    from kd_rl._io import save_model
    from kd_rl.models import load_policy

    if not str(args.out).endswith(".keras"):
        raise KdRlError(f"--out must end in .keras, got {args.out!r}")
    model = load_policy(args.model)  # reads kd_rl 0.1 (Keras 2) files as Keras 3 models
    if args.output_type is not None:
        from kd_rl.models import PolicyModel

        if not isinstance(model, PolicyModel):
            raise KdRlError(f"--output-type needs a kd_rl TeacherModel/StudentModel, got {type(model).__name__}")
        model.output_type = args.output_type
    save_model(model, args.out)
    print(f"wrote {args.out} (Keras 3, {model.count_params()} parameters)")
    return 0


def _cmd_record(args) -> int:
    from kd_rl.record import record

    result = record(
        args.model, args.env, args.out, episodes=args.episodes, seed=args.seed, teacher=args.teacher,
        env_kwargs=_env_kwargs(args), fps=args.fps, max_steps=args.max_steps,
    )  # fmt: skip
    line = (
        f"wrote {result['path']} ({result['frames']} frames at {result['fps']:g} fps); "
        f"returns {', '.join(f'{r:.1f}' for r in result['returns'])}"
    )
    if result["teacher_returns"] is not None:
        line += f"; teacher returns {', '.join(f'{r:.1f}' for r in result['teacher_returns'])}"
    seeds = result["seeds"]
    print(line + (f" (seed {seeds[0]})" if len(seeds) == 1 else f" (seeds {seeds[0]}..{seeds[-1]})"))
    return 0


def _cmd_package(args) -> int:
    from kd_rl.package import package_run

    result = package_run(args.run_dir, args.out, episodes=args.episodes, seed=args.seed, overwrite=args.overwrite)
    student = result["results"]["student"]
    print(
        f"wrote {result['path']}: mean_reward {result['mean_reward']} over {student['episodes']} episodes; "
        f"{', '.join(result['files'])}"
    )
    return 0


# ----------------------------------------------------------------- parser


_ENV_KWARGS_HELP = "arguments for gymnasium.make, a JSON object, e.g. '{\"continuous\": true}'"


def build_parser() -> argparse.ArgumentParser:
    from kd_rl.config import EXPORT_FORMATS, TeacherConfig  # no TensorFlow: `kd-rl --help` stays fast

    parser = _Parser(prog="kd-rl", description="Knowledge distillation for reinforcement learning.")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("demo", help="distil the shipped CartPole-v1 teacher and tell the story (make demo)")
    p.add_argument("--out", default="runs/demo", help="folder for the run, plots and summary (default runs/demo)")
    p.add_argument("--teacher", default="CartPole-v1-dqn", help="zoo name or .keras path")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("distill", help="distil a teacher into a smaller student on a live environment")
    p.add_argument(
        "--teacher",
        required=True,
        action="append",
        help="teacher .keras file or zoo name (see kd-rl zoo); several --teacher/--env pairs make a multi-task student",
    )
    p.add_argument(
        "--env", required=True, action="append", help="Gymnasium environment id, e.g. CartPole-v1 (one per --teacher)"
    )
    p.add_argument("--out", required=True, help="run folder to write")
    _add_config_options(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("train-teacher", help="train a TF-Agents DQN, PPO or SAC teacher")
    p.add_argument("--env", required=True, help="Gymnasium id, or an alias from the hyperparameter file")
    p.add_argument("--out", required=True, help="run folder to write")
    _add_config_options(p, TeacherConfig)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true")
    group.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_train_teacher)

    p = sub.add_parser("evaluate", help="mean and std return of a model (.keras, .tflite, .npz or zoo name)")
    p.add_argument("model")
    p.add_argument("--env", required=True)
    p.add_argument("--episodes", type=_positive_int, default=100)
    p.add_argument(
        "--max-episode-steps",
        type=_positive_int,
        help="end an episode after this many steps (default: the environment's own time limit; 27,000 steps "
        "for an environment without one)",
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--env-kwargs", type=_json_object, help=_ENV_KWARGS_HELP)
    p.add_argument(
        "--no-sensor-noise",
        action="store_true",
        help="a student trained with sensor noise (--student-obs-noise) sees clean observations (default: its noise)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("zoo", help="list the shipped teachers and their scores")
    p.add_argument("--json", action="store_true", help="print the metrics of every teacher as JSON")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the docs)")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("plot", help="draw the fitting chart from run folders")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser(
        "export", help="export a model to TFLite (float or int8), ONNX, a TFLM C array, plain C or NumPy"
    )
    p.add_argument("model")
    p.add_argument(
        "--format",
        required=True,
        choices=list(EXPORT_FORMATS),
        help="tflite, tflite-int8, onnx, numpy: one file; tflm (int8), tflm-float, c: a folder of files",
    )
    p.add_argument("--out", required=True, help="the file (.tflite, .onnx, .npz) or, for tflm and c, a new folder")
    p.add_argument(
        "--env",
        help="environment for int8 calibration and TFLM check states (default: from the model's zoo metrics); "
        "for a multi-task student, the task to export",
    )
    p.add_argument("--env-kwargs", type=_json_object, help=_ENV_KWARGS_HELP)
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("convert", help="re-save a kd_rl 0.1 (Keras 2) .keras file as a Keras 3 file")
    p.add_argument("model", help=".keras file (or zoo name)")
    p.add_argument("--out", required=True, help=".keras file to write")
    p.add_argument(
        "--output-type",
        choices=["q_values", "logits"],  # kd_rl 0.1 files are discrete: not OUTPUT_TYPES' gaussian
        help="what the model outputs (0.1 files do not say; a DQN teacher's are q_values: T = 0.01 by default)",
    )
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("record", help="video (MP4 or GIF) of seeded episodes, beside the teacher's if given")
    p.add_argument(
        "model",
        help=".keras, .tflite, .onnx or .npz file, a C or TFLM export folder, or zoo name; it acts deterministically",
    )
    p.add_argument("--env", required=True, help="Gymnasium environment id; it must render to 'rgb_array'")
    p.add_argument("--out", required=True, help="video file to write: .mp4 or .gif")
    p.add_argument("--episodes", type=_positive_int, default=1, help="episodes, one after another (default 1)")
    p.add_argument("--seed", type=_seed, default=0, help="episode i is reset with seed S + i (default 0)")
    p.add_argument("--teacher", help="a second model (same forms), shown on the right on the same seeds")
    p.add_argument("--env-kwargs", type=_json_object, help=_ENV_KWARGS_HELP)
    p.add_argument("--fps", type=_positive_float, help="frames per second (default: the environment's render_fps)")
    p.add_argument(
        "--max-steps", type=_positive_int, help="end an episode after this many steps (default: its time limit)"
    )
    p.set_defaults(func=_cmd_record)

    p = sub.add_parser("package", help="a Hugging Face Hub-ready folder from a distill run (card, models, video)")
    p.add_argument("run_dir", help="a finished kd-rl distill run folder (student.keras and metrics.json)")
    p.add_argument("--out", required=True, help="folder to write; refused if it holds files, unless --overwrite")
    p.add_argument(
        "--episodes",
        type=_positive_int,
        default=10,
        help="episodes of the student's evaluation for mean_reward, when metrics.json holds no per-episode "
        "returns (default 10)",
    )
    p.add_argument(
        "--seed", type=_seed, help="seed of that evaluation and of the replay (default: the run's evaluation seed)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds once the new folder is complete")
    p.set_defaults(func=_cmd_package)

    p = sub.add_parser("article", help="the article's example, reproduced and corrected")
    p.add_argument("--temperature", type=_positive_float, default=4.0)
    p.add_argument("--distill-steps", type=_positive_int, default=1500)
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=_cmd_article)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kd-rl``; returns the exit status.

    Bad input (a `kd_rl.errors.KdRlError`, or an ``OSError`` such as a missing
    file or a full disk) is one line on stderr and exit 2; anything else (a
    ``ValueError`` TensorFlow raised deep inside, say) is an internal error,
    one line and exit 1; ``--debug`` shows the traceback instead.
    Python warnings raised while a command runs (Gymnasium's environment
    checker, say) are printed one line each after it succeeds, and dropped when
    it fails, so that an error stays the one line on stderr.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "numpy" not in sys.modules:
        # kd_rl's NumPy forward passes multiply small matrices, where OpenBLAS's threads only wait on each
        # other and on TensorFlow's (a convolutional teacher acted 6 times slower on 2 cores): one thread,
        # unless the caller chose. Set before NumPy loads its BLAS; a process that imported it is left alone.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted before or after the subcommand
    try:
        args = build_parser().parse_args(argv)
        args.command_line = "kd-rl " + " ".join(shlex.quote(a) for a in argv)
        _quiet_imports(debug)
        if debug:
            return args.func(args)
        with warnings.catch_warnings(record=True) as caught:  # the filters in force still apply
            status = args.func(args)
        for message in dict.fromkeys(f"{w.category.__name__}: {w.message}".splitlines()[0] for w in caught):
            print(f"kd-rl: warning: {message}", file=sys.stderr)
        return status
    except _UsageError as err:
        print(str(err), file=sys.stderr)
        return 2
    except (KdRlError, OSError) as err:
        # Bad input kd_rl recognised (KdRlError: a value out of range, an unusable file, environment or resume;
        # MissingDependency, a KdRlError, for an optional package), or the machine's files: a missing or
        # unreadable file, a folder we may not write, a full disk.
        if debug:
            raise
        print(f"kd-rl: error: {err}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kd-rl: interrupted (a run with checkpoints continues with --resume)", file=sys.stderr)
        return 130
    except Exception as err:  # a bug, not bad input: still one line, and --debug shows where
        if debug:
            raise
        print(
            f"kd-rl: internal error: {type(err).__name__}: {err}".splitlines()[0]
            + " (run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
