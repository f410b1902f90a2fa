"""The benchmarks' data files agree with their code: experiments.yml, rl_zoo.yml and page.md (no benchmark runs)."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import report  # noqa: E402
import run  # noqa: E402
from _common import experiments  # noqa: E402

EXPERIMENTS = experiments()


def test_data_files_load():
    assert EXPERIMENTS
    zoo = yaml.safe_load((BENCHMARKS / "rl_zoo.yml").read_text())
    assert set(zoo) == {"source", "hyperparams"}
    for algo, entries in zoo["hyperparams"].items():
        for env_id, entry in entries.items():
            assert isinstance(entry["n_timesteps"], int | float), (algo, env_id)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_row_calls_its_function(name):
    row = EXPERIMENTS[name]
    assert set(row) == {"run", "params"}, name
    fn = run.experiment_function(row)
    inspect.signature(fn).bind(**row["params"])  # every parameter accepted, none missing
    run.options(row)  # every annotation the runner reads resolves


def test_every_results_file_has_a_row():
    names = {path.stem for path in (BENCHMARKS / "results").glob("*.json")}
    assert names <= set(EXPERIMENTS), names - set(EXPERIMENTS)


def test_page_has_a_section_per_experiment():
    page = report.PAGE.read_text()
    markers = report.MARKER.findall(page)
    assert sorted(markers) == sorted(EXPERIMENTS)
    sections = re.split(r"^## ", page, flags=re.MULTILINE)[1:]
    assert sections[0].startswith("Findings\n") and not report.MARKER.findall(sections[0])  # the summary first
    for section in sections[1:]:
        assert len(report.MARKER.findall(section)) == 1, section.partition("\n")[0]


def test_teacher_budgets_come_from_rl_zoo():
    import teachers
    from _sb3_peer import ZOO

    cases = teachers._budgets(EXPERIMENTS["teachers"]["params"]["cases"])
    for env_id, case in cases.items():
        for algo, budget in case["budget"].items():
            if env_id in ZOO.get(algo, {}):
                assert budget == ZOO[algo][env_id]["n_timesteps"], (env_id, algo)


def test_runner_lists_the_experiments():
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py"), "--list"], capture_output=True, text=True, check=True
    )
    listed = [line.split()[0] for line in done.stdout.splitlines()]
    assert listed == list(EXPERIMENTS)
