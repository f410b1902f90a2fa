"""A finished distillation run as a folder ready for the Hugging Face Hub.

`package_run` turns a ``kd-rl distill`` run folder (``student.keras`` and
``metrics.json``) into what the Hub's reinforcement-learning model cards hold,
in the schema Stable-Baselines3, RL-Zoo and CleanRL use:

* ``README.md``: YAML metadata (``library_name: kd_rl``, ``tags`` with the
  environment id, ``reinforcement-learning`` and ``knowledge-distillation``,
  and a ``model-index`` with one result, ``mean_reward`` as ``"MEAN +/- STD"``)
  above a Markdown body: what the model is, the returns, the parameters, the
  command, how to load and evaluate it, how to upload the folder.
* ``student.keras`` (a copy), ``student.tflite`` (`kd_rl.export.export_model`),
  and ``student.onnx`` (the ``onnx`` extra; not for a recurrent student, which
  exports to TFLite with its state as an input and an output).
* ``config.json`` (the run's `kd_rl.config.DistillConfig` settings) and
  ``results.json`` (returns, normalised score, parameters, command, episodes,
  seeds, the machine).
* ``replay.mp4``: one episode of the student (`kd_rl.record.record`).

``mean_reward`` is over the run's own per-episode returns when its
``metrics.json`` holds them (``student_returns``); otherwise the student is
evaluated here (`kd_rl.evaluate.run_episodes`) on ``episodes`` seeded episodes,
by default from the run's final-evaluation seed, and ``results.json`` says so.

The card is checked offline with huggingface_hub's own parsers before the
folder is made; the folder is built beside ``out`` and renamed into place, so a
failure leaves nothing. Nothing is uploaded: that needs a Hub account and the
network (``HfApi().upload_folder``, shown in the card and in docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np

from kd_rl import __version__
from kd_rl._io import atomic_dir, cpu_name, error_summary, write_json, write_text
from kd_rl._validate import check_int, check_seed
from kd_rl.config import LOSS_NAMES, DistillConfig, cli_settings
from kd_rl.errors import KdRlError, MissingDependency
from kd_rl.evaluate import check_model_fits_env, episode_seeds, run_episodes
from kd_rl.export import export_model, require_format, supported_formats
from kd_rl.models import load_policy
from kd_rl.record import check_renders, record, require_video

__all__ = ["INSTALL_HINT", "TAGS", "package_run", "mean_reward", "model_card", "validate_model_card"]

INSTALL_HINT = 'pip install "kd_rl[hub]"'
#: Tags every card has, after the environment id.
TAGS = ("reinforcement-learning", "knowledge-distillation", "kd_rl")
_CARD, _CONFIG, _RESULTS, _REPLAY = "README.md", "config.json", "results.json", "replay.mp4"


def require_hub() -> None:
    """Raise `MissingDependency` naming the ``hub`` extra unless huggingface_hub imports."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as err:
        raise MissingDependency(f"packaging a run for the Hub needs huggingface_hub ({err}): {INSTALL_HINT}") from None


def mean_reward(returns) -> str:
    """``"MEAN +/- STD"`` of ``returns`` (population std, two decimals): the Hub's ``mean_reward`` value."""
    return f"{float(np.mean(returns)):.2f} +/- {float(np.std(returns)):.2f}"


def package_run(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    episodes: int = 10,
    seed: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Write a Hub-ready folder for the ``kd-rl distill`` run in ``run_dir``.

    Args:
        run_dir: A finished single-task distillation run (``student.keras``, ``metrics.json``).
        out: Folder to write; refused if it holds files, unless ``overwrite``.
        episodes: Episodes of the student's evaluation, when ``metrics.json``
            holds no per-episode returns.
        seed: Seed of that evaluation (`kd_rl.evaluate.episode_seeds`) and of
            the replay; default the run's final-evaluation seed (``eval_seed``).
        overwrite: Replace what ``out`` holds (only once the new folder is complete).

    Returns:
        ``{"path", "files", "mean_reward", "results"}``: ``results`` is what results.json holds.

    Raises:
        KdRlError: For a missing or unfinished run folder, a multi-task run, a
            non-empty ``out`` without ``overwrite``, or a card huggingface_hub
            does not accept; nothing is written.
        MissingDependency: If huggingface_hub, or imageio for the replay, is not installed.
    """
    require_hub()
    run_dir, out = Path(run_dir), Path(out)
    metrics = _read_run(run_dir)
    episodes = check_int("episodes", episodes)
    seed = check_seed(metrics.get("eval_seed", 0) if seed is None else seed)
    if out.exists() and not out.is_dir():
        raise KdRlError(f"out folder {str(out)!r} is a file")
    if out.resolve() == run_dir.resolve() or out.resolve() in run_dir.resolve().parents:
        # --overwrite would replace the folder that holds the run being packaged
        raise KdRlError(f"out folder {str(out)!r} holds the run folder itself: choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise KdRlError(f"out folder {str(out)!r} is not empty; pass --overwrite to replace what it holds")

    env_id, env_kwargs = metrics["env_id"], metrics.get("env_kwargs") or None
    require_video(".mp4")
    require_format("onnx")  # student.onnx
    check_renders(env_id, env_kwargs)  # the replay: fail before anything is written

    student = load_policy(run_dir / "student.keras")
    check_model_fits_env(student, env_id, "student", env_kwargs)

    with atomic_dir(out, overwrite=overwrite) as stage:  # built beside out, renamed into place when complete
        results = _build(stage, run_dir, metrics, student, env_id, env_kwargs, episodes, seed)
    return {
        "path": str(out),
        "files": sorted(p.name for p in out.iterdir()),
        "mean_reward": results["mean_reward"],
        "results": results,
    }


def _read_run(run_dir: Path) -> dict:
    """The run's metrics, or a one-line error for a folder that is not a finished single-task distill run."""
    if not run_dir.is_dir():
        raise KdRlError(f"run folder {str(run_dir)!r} does not exist (or is not a folder)")
    for name in ("metrics.json", "student.keras"):
        if not (run_dir / name).is_file():
            raise KdRlError(
                f"{str(run_dir)!r} is not a finished kd-rl distill run: it has no {name} "
                "(a run writes it when it ends; an interrupted run continues with kd-rl distill --resume)"
            )
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KdRlError(f"{str(run_dir / 'metrics.json')!r} is not valid JSON: {error_summary(err)}") from None
    if not isinstance(metrics, dict) or ("student_mean_return" not in metrics and "tasks" not in metrics):
        raise KdRlError(f"{str(run_dir / 'metrics.json')!r} is not the metrics of a kd-rl distill run")
    if "tasks" in metrics or not isinstance(metrics.get("env_id"), str):
        raise KdRlError(
            f"{str(run_dir)!r} is a multi-task run; kd-rl package takes single-task runs (one environment per card)"
        )
    return metrics


def _build(stage: Path, run_dir: Path, metrics: dict, student, env_id, env_kwargs, episodes, seed) -> dict:
    """Write every file into ``stage``; return what results.json holds."""
    shutil.copyfile(run_dir / "student.keras", stage / "student.keras")
    export_model(student, "tflite", stage / "student.tflite")
    if "onnx" in supported_formats(student):  # a recurrent student's state has no ONNX input here
        export_model(student, "onnx", stage / "student.onnx")
    evaluation = _student_returns(student, metrics, env_id, env_kwargs, episodes, seed)
    replay = record(student, env_id, stage / _REPLAY, episodes=1, seed=seed, env_kwargs=env_kwargs)

    config = {f.name: metrics[f.name] for f in fields(DistillConfig) if f.name in metrics}
    write_json(stage / _CONFIG, config)
    command, command_source = _command(metrics, run_dir)
    results = {
        "kd_rl_version": __version__,
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "teacher": metrics.get("teacher"),
        "mean_reward": mean_reward(evaluation["returns"]),
        "student": evaluation,
        # Teacher, student and a random policy on the same episodes: the run's final evaluation.
        "run_evaluation": {
            "episodes": metrics.get("eval_episodes"),
            "seed": metrics.get("eval_seed"),
            "teacher_mean_return": metrics.get("teacher_mean_return"),
            "teacher_std_return": metrics.get("teacher_std_return"),
            "student_mean_return": metrics.get("student_mean_return"),
            "student_std_return": metrics.get("student_std_return"),
            "random_mean_return": metrics.get("random_mean_return"),
            "agreement": metrics.get("agreement"),
        },
        "normalised_score": metrics.get("normalised_score"),
        "parameters": {
            "teacher": metrics.get("teacher_params"),
            "student": metrics.get("student_params"),
            "compression": metrics.get("compression"),
        },
        "command": command,
        "command_source": command_source,
        "replay": {
            "file": _REPLAY,
            "seed": seed,
            "return": replay["returns"][0],
            "length": replay["lengths"][0],
            "frames": replay["frames"],
        },
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
    }
    files = sorted([p.name for p in stage.iterdir()] + [_RESULTS, _CARD])
    results["files"] = files
    write_json(stage / _RESULTS, results)
    write_text(stage / _CARD, model_card(results, metrics))
    validate_model_card(stage / _CARD, env_id, results["mean_reward"])
    return results


def _student_returns(student, metrics: dict, env_id, env_kwargs, episodes: int, seed: int) -> dict:
    """The student's per-episode returns: the run's own if metrics.json holds them, else evaluated now."""
    recorded = metrics.get("student_returns")
    if isinstance(recorded, list) and recorded and all(isinstance(r, int | float) for r in recorded):
        returns = [float(r) for r in recorded]
        seed = metrics.get("eval_seed", 0)
        seeds = metrics.get("student_seeds") or episode_seeds(seed, len(returns))
        source = "the run's final evaluation, as metrics.json records it"
    else:
        stats = run_episodes(student, env_id, episodes, seed=seed, env_kwargs=env_kwargs)
        returns, seeds = [float(r) for r in stats.returns], stats.seeds
        source = "evaluated when the folder was made: metrics.json holds no per-episode returns"
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "episodes": len(returns),
        "returns": returns,
        "seed": seed,
        "seeds": [int(s) for s in seeds],
        "source": source,
    }


def _command(metrics: dict, run_dir: Path) -> tuple[str | None, str]:
    """The command that made the run, and where it comes from.

    ``kd-rl distill`` records its settings, not its command line: the command is
    rebuilt from them (`kd_rl.config.cli_settings`), one flag per setting that
    differs from its default. Settings that only say when to evaluate or
    checkpoint are left out; a resolved default (the temperature) is written out.
    """
    if metrics.get("command"):
        return str(metrics["command"]), "as metrics.json records it"
    teacher = metrics.get("teacher")
    if not teacher or metrics.get("loss") not in LOSS_NAMES:
        return None, "not known: the run was made through the Python API (no teacher name, or a custom loss)"
    parts = ["kd-rl", "distill", "--teacher", str(teacher), "--env", metrics["env_id"], "--out", str(run_dir)]
    skipped = {"checkpoint_every", "eval_every", "curve_episodes"}  # when to measure, not what is learned
    for s in cli_settings():
        if s.scope == "multi" or s.name in skipped or s.name not in metrics:
            continue
        value, default = metrics[s.name], s.single_default
        if s.kind == "hidden":
            value = tuple(value) if isinstance(value, list | tuple) else (value,)
            default = tuple(default) if isinstance(default, list | tuple) else (default,)
        if value is None or value == default:
            continue
        if s.kind in ("flag", "negated_flag"):
            parts.append(s.flag)
        elif s.kind == "hidden":
            parts += [s.flag, ",".join(map(str, value))]
        elif s.kind == "conv":
            parts += [s.flag, ",".join(":".join(map(str, c)) for c in value) or "none"]
        elif s.kind == "json":
            parts += [s.flag, json.dumps(value, sort_keys=True)]
        else:
            parts += [s.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts), "rebuilt from the settings in metrics.json, since kd-rl distill does not record it"


def _fmt(value, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def model_card(results: dict, metrics: dict) -> str:
    """README.md for the Hub: YAML metadata made with huggingface_hub's ``ModelCardData``, then Markdown."""
    from huggingface_hub import EvalResult, ModelCardData

    env_id = results["env_id"]
    name = f"kd_rl student for {env_id}"
    data = ModelCardData(
        library_name="kd_rl",
        tags=[env_id, *TAGS],
        model_name=name,
        eval_results=[
            EvalResult(
                task_type="reinforcement-learning",
                task_name="reinforcement-learning",
                dataset_type=env_id,
                dataset_name=env_id,
                metric_type="mean_reward",
                metric_name="mean_reward",
                metric_value=results["mean_reward"],
            )
        ],
    )
    student, run, params = results["student"], results["run_evaluation"], results["parameters"]
    teacher = results["teacher"] or "(not recorded)"
    kwargs = results["env_kwargs"]
    env_flags = f" --env-kwargs {shlex.quote(json.dumps(kwargs, sort_keys=True))}" if kwargs else ""
    make = f", {json.dumps(kwargs, sort_keys=True)}" if kwargs else ""
    hidden = ",".join(map(str, metrics.get("hidden_units") or [])) or "?"
    score = results["normalised_score"]
    command = results["command"]
    how_made = (
        f"```bash\n{command}\n```\n\nThe command is {results['command_source']}."
        if command
        else f"The command is {results['command_source']}."
    )
    onnx = "- `student.onnx`: the student for ONNX Runtime.\n" if "student.onnx" in results["files"] else ""
    recurrent = int(metrics.get("student_recurrent") or 0)  # a student that carries a state through episodes
    tflite = (
        "the student for LiteRT (float32): one step, with its recurrent state as an input (`state`) and an "
        "output (`next_state`)"
        if recurrent
        else "the student for LiteRT (float32, batch 1)"
    )
    use = (
        "state = model.initial_state(1)  # zeros: an episode's start\n"
        "outputs, state = model.step(observations, state)  # one step; carry the state to the next\n"
        "actions = model.actions_from_outputs(np.asarray(outputs))  # deterministic actions"
        if recurrent
        else "actions = model.act(observations)  # deterministic actions"
    )
    replay = results["replay"]
    body = f"""
# {name}

A {metrics.get("student_class", "StudentModel")} (hidden units {hidden}, {_fmt(params["student"], ",")} parameters)
that acts in the Gymnasium environment `{env_id}`{make}, distilled with
kd_rl {results["kd_rl_version"]} (knowledge distillation for reinforcement learning) from the teacher
`{teacher}` ({_fmt(params["teacher"], ",")} parameters, {_fmt(params["compression"], ".1f")}x as many).
It is a Keras 3 model; `student.tflite` is the same policy for LiteRT (TensorFlow Lite).

## Results

`mean_reward` above: **{results["mean_reward"]}** over {student["episodes"]} greedy episodes (seed
{student["seed"]}; {student["source"]}).

The run's final evaluation put the teacher, the student and a uniformly random policy on the same
{_fmt(run["episodes"], "d")} seeded episodes (seed {_fmt(run["seed"], "d")}):

| policy | mean return | std |
|---|---|---|
| teacher `{teacher}` | {_fmt(run["teacher_mean_return"])} | {_fmt(run["teacher_std_return"])} |
| student (this model) | {_fmt(run["student_mean_return"])} | {_fmt(run["student_std_return"])} |
| random policy | {_fmt(run["random_mean_return"])} | |

Normalised score (student − random) / (teacher − random): **{_fmt(score, ".3f")}**
(0 is a random policy, 1 the teacher). Agreement with the teacher's actions on the states the student
visited: {_fmt(run["agreement"], ".3f")}.

| | parameters |
|---|---|
| teacher | {_fmt(params["teacher"], ",")} |
| student | {_fmt(params["student"], ",")} |

`replay.mp4` shows one episode of the student (seed {replay["seed"]}, return {replay["return"]:.1f}).

## How it was made

{how_made}

Every setting of the run is in `config.json`; the numbers above, with the episodes, seeds and the
machine, are in `results.json`.

## Files

- `student.keras`: the student (Keras 3).
- `student.tflite`: {tflite}.
{onnx}- `config.json`: the distillation settings.
- `results.json`: returns, normalised score, parameters, command, episodes and seeds.
- `replay.mp4`: one episode of the student.

## Use it

With kd_rl installed (`pip install .` in a clone of kd_rl):

```python
import kd_rl  # noqa: F401  (registers kd_rl's model classes with Keras)
import keras
import numpy as np

model = keras.saving.load_model("student.keras")
observations = np.zeros((1, model.observation_dim), np.float32)  # float32 [batch, obs_dim]
{use}
```

```bash
kd-rl evaluate student.keras --env {env_id}{env_flags} --episodes 100
kd-rl evaluate student.tflite --env {env_id}{env_flags} --episodes 100
kd-rl record student.keras --env {env_id}{env_flags} --out replay.mp4
```

## Upload it yourself

This folder was made offline; to share it, log in to the Hub (`hf auth login`, or set `HF_TOKEN`) and run:

```python
from huggingface_hub import HfApi

api = HfApi()
api.create_repo("YOUR-NAME/kd_rl-{env_id}", repo_type="model", exist_ok=True)
api.upload_folder(folder_path="THIS-FOLDER", repo_id="YOUR-NAME/kd_rl-{env_id}", repo_type="model")
```
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def validate_model_card(path: str | os.PathLike, env_id: str, expected_reward: str) -> None:
    """Check a card with huggingface_hub's own parsers, offline.

    ``metadata_load`` reads the YAML block, ``model_index_to_eval_results``
    the ``model-index``, and ``ModelCard.load`` the whole card (a local path:
    nothing is downloaded). The card must say ``library_name: kd_rl``, carry
    the tags, and hold exactly one ``reinforcement-learning`` result on
    ``env_id`` with ``mean_reward`` equal to ``expected_reward``.

    Raises:
        KdRlError: Naming what huggingface_hub refused or what is missing.
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    path = Path(path)
    try:
        meta = metadata_load(path) or {}
        _, results = model_index_to_eval_results(meta["model-index"])
        card = ModelCard.load(path)  # a Path: always read from disk
    except Exception as err:
        raise KdRlError(f"model card {str(path)!r} does not parse with huggingface_hub: {error_summary(err)}") from None
    problems = []
    if meta.get("library_name") != "kd_rl":
        problems.append(f"library_name is {meta.get('library_name')!r}, not 'kd_rl'")
    missing = [tag for tag in (env_id, *TAGS) if tag not in (meta.get("tags") or [])]
    if missing:
        problems.append(f"tags lack {missing}")
    if len(results) != 1:
        problems.append(f"model-index holds {len(results)} results, not 1")
    else:
        (result,) = results
        expected = ("reinforcement-learning", env_id, env_id, "mean_reward", expected_reward)
        got = (result.task_type, result.dataset_type, result.dataset_name, result.metric_type, result.metric_value)
        if got != expected:
            problems.append(f"its result is {got}, not {expected}")
    if card.data.eval_results is None or len(card.data.eval_results) != 1:
        problems.append("ModelCard reads no single eval result")
    if problems:
        raise KdRlError(f"model card {str(path)!r} is not a valid Hub card: {'; '.join(problems)}")
