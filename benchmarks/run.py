"""Run benchmark experiments by name: each is a row of ``experiments.yml``.

    python benchmarks/run.py NAME [NAME ...] [--PARAM VALUE ...]
    python benchmarks/run.py --list

A row names the function that runs the experiment (``script.function``, a
module of ``benchmarks/``) and the parameters it is called with. The function
returns its results as ``(data, table)``, or yields them as they accumulate;
each is written at once to ``results/NAME.json`` and ``NAME.md`` by
`_common.write_results` (under ``$KD_RL_BENCH_OUT`` if set).

Every parameter of an experiment function that is a number, a string, a list
of those or a switch is an option, declared by the function's signature: its
type from the annotation, its help from the docstring's ``Args:``, its default
from the row. ``--seeds 0 1`` sets ``seeds`` of each named experiment that has
it; ``--max-steps 500`` caps the step budgets of a quick try; a switch off by
default is ``--report-only``, one on by default ``--no-sb3``.

The benchmark scripts hand their arguments here with their own name, so the
commands in the results and on the benchmarks page still run
(``python benchmarks/teachers.py --envs MountainCar-v0 --algos ppo``): such a
command runs the script's rows, picked by function name where it has several
(``python benchmarks/distill_targets.py cartpole collect``).
"""

from __future__ import annotations

import os

# As `kd-rl` does (kd_rl/cli.py): OpenBLAS on one thread for kd_rl's small NumPy matrices, set before
# NumPy loads it, unless the caller chose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import inspect  # noqa: E402
import re  # noqa: E402
import types  # noqa: E402
import typing  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import experiments, write_results

_SCALARS = (int, float, str)


def experiment_function(row: dict):
    """The function a row names: ``"script.function"`` from the module ``benchmarks/script.py``."""
    module, _, name = row["run"].partition(".")
    return getattr(importlib.import_module(module), name)


def _argument_help(fn) -> dict[str, str]:
    """Each parameter's description in the ``Args:`` section of ``fn``'s docstring."""
    _, _, section = (inspect.getdoc(fn) or "").partition("\nArgs:\n")
    helps, name = {}, None
    for line in section.splitlines():
        if not line.strip():
            break
        entry = re.fullmatch(r" {4}(\w+): (.*)", line)
        if entry:
            name, helps[entry[1]] = entry[1], entry[2]
        elif name:
            helps[name] += " " + line.strip()
    return helps


def _argparse_keywords(annotation, default) -> dict | None:
    """``add_argument`` keywords for a parameter (None: not an option, such as a table of cases)."""
    if annotation is bool:
        return {"action": "store_false" if default else "store_true"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None: an X
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = others[0] if len(others) == 1 else None
    if annotation in _SCALARS:
        return {"type": annotation}
    if typing.get_origin(annotation) is list and typing.get_args(annotation)[0] in _SCALARS:
        return {"type": typing.get_args(annotation)[0], "nargs": "*"}
    return None


def options(row: dict) -> dict[str, tuple[dict, str, object]]:
    """A row's command-line options: parameter -> (``add_argument`` keywords, help, the row's value)."""
    fn = experiment_function(row)
    hints = typing.get_type_hints(fn)
    helps = _argument_help(fn)
    out = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        default = row["params"].get(name, parameter.default)
        keywords = _argparse_keywords(hints.get(name), default)
        if keywords is not None:
            out[name] = (keywords, helps.get(name, ""), default)
    return out


def _flag(param: str, keywords: dict) -> str:
    """The option of a parameter: ``--max-steps`` for ``max_steps``, ``--no-sb3`` for a switch ``sb3`` on by default."""
    return ("--no-" if keywords.get("action") == "store_false" else "--") + param.replace("_", "-")


def _parser(description: str, names: dict, takes: dict) -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The command line of the experiments ``takes`` (name -> `options`), and each parameter's option.

    Raises:
        ValueError: if two experiments' parameters of one name would be different options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("names", nargs="*", metavar="NAME", help="experiments to run: " + ", ".join(names))
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    declared: dict[str, tuple[dict, str]] = {}  # parameter -> (keywords, the first help text found)
    for name, opts in takes.items():
        for param, (keywords, text, _) in opts.items():
            first, first_text = declared.setdefault(param, (keywords, text))
            if keywords != first:
                raise ValueError(f"parameter {param!r} of {name} is an option {keywords}, elsewhere {first}")
            declared[param] = (first, first_text or text)
    flags = {}
    for param, (keywords, text) in declared.items():
        switch = "action" in keywords  # its row value is the flag's absence: not worth repeating
        having = [name if switch else f"{name}: {o[param][2]}" for name, o in takes.items() if param in o]
        if keywords.get("action") == "store_false":
            text = f"turn off: {text}"
        flags[param] = _flag(param, keywords)
        help_text = f"{text} [{'; '.join(having)}]".replace("%", "%%")
        parser.add_argument(flags[param], dest=param, default=argparse.SUPPRESS, help=help_text, **keywords)
    return parser, flags


def main(argv: list[str] | None = None, script: str | None = None) -> None:
    """Run the experiments that ``argv`` names, with its options over the rows' parameters.

    With ``script`` (a benchmark script's path), the candidates are that script's rows,
    named by their function; none named runs them all.
    """
    rows = experiments()
    description = "Run benchmark experiments, the rows of benchmarks/experiments.yml."
    if script:
        module = Path(script).stem
        rows = {name: row for name, row in rows.items() if row["run"].partition(".")[0] == module}
        names = {row["run"].partition(".")[2]: name for name, row in rows.items()}
        description = importlib.import_module(module).__doc__.splitlines()[0]
    else:
        names = {name: name for name in rows}
    takes = {name: options(row) for name, row in rows.items()}
    parser, flags = _parser(description, names, takes)
    args = vars(parser.parse_args(argv))
    if args.pop("list"):
        for name, row in rows.items():
            doc = (inspect.getdoc(experiment_function(row)) or "").partition("\n")[0]
            print(f"{name:20} {row['run']:34} {doc}")
        return
    asked = args.pop("names")
    unknown = [n for n in asked if n not in names]
    if unknown:
        parser.error(f"unknown experiment {', '.join(unknown)}: expected one of {', '.join(names)}")
    if not asked and not script:
        parser.error("name at least one experiment (--list lists them)")
    chosen = [names[n] for n in asked] or list(rows)
    for param in args:
        if not any(param in takes[name] for name in chosen):
            parser.error(f"{flags[param]}: not a parameter of {', '.join(chosen)}")

    calls = []
    for name in chosen:
        fn = experiment_function(rows[name])
        params = {**rows[name]["params"], **{k: v for k, v in args.items() if k in takes[name]}}
        try:
            inspect.signature(fn).bind(**params)
        except TypeError as err:
            parser.error(f"{name}: {err}")
        calls.append((name, fn, params))
    for name, fn, params in calls:
        results = fn(**params)
        for data, table in results if inspect.isgeneratorfunction(fn) else [results]:
            write_results(name, data, table)


if __name__ == "__main__":
    main()
