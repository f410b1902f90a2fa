"""The notebooks are lessons (issue #19): what each must hold, read from the committed files.

`make test` also executes every notebook in fast mode (nbmake); these checks are about their
shape: valid nbformat, learning goals, exercises whose solutions run, a summary, committed
outputs without TensorFlow's start-up noise, and a row in both course tables.
"""

import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d)", re.MULTILINE)


def test_the_course_has_ten_lessons():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_each_notebook_is_a_lesson(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # e.g. no outputs on a markdown cell
    markdown = ["".join(c.source) for c in nb.cells if c.cell_type == "markdown"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert markdown[0].startswith("# ") and "You will learn" in markdown[0], f"{path.name}: goals at the top"
    assert any(re.search(r"^## Summary", m, re.MULTILINE) for m in markdown), f"{path.name}: a summary at the end"
    assert sum("Exercise" in m for m in markdown) >= 2, f"{path.name}: 2-4 exercises"
    solutions = [c for c in code if c.source.startswith("# Solution (runs in CI)")]
    assert len(solutions) >= 2 and all("assert" in c.source for c in solutions), f"{path.name}: checked solutions"
    assert all("solution" in c.metadata.get("tags", []) for c in solutions), f"{path.name}: solutions tagged"
    assert sum("What you should see" in m for m in markdown) >= 2, f"{path.name}: what a learner should see"
    # Committed with the outputs of a full run, figures included, and none of TF's start-up noise.
    ran = [c for c in code if c.outputs]
    assert len(ran) >= len(code) // 2, f"{path.name}: committed without outputs"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), f"{path.name}: an error"
    streams = "".join("".join(o.get("text", "")) for c in code for o in c.outputs if o.get("output_type") == "stream")
    assert not NOISE.search(streams), f"{path.name}: TensorFlow log lines in the committed outputs"
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert figures >= 1, f"{path.name}: at least one figure"


@pytest.mark.parametrize("table", ["notebooks/README.md", "docs/notebooks.md"])
def test_both_course_tables_list_every_notebook(table):
    text = (ROOT / table).read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"{path.name})" in text, f"{table} does not link {path.name}"
    assert "coming" not in text, f"{table} still announces a lesson as coming"


def _install_cell():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import notebook_install_cell
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return notebook_install_cell


def test_first_cells_install_kd_rl_only_when_missing():
    wanted = _install_cell().install_cell()
    for path in NOTEBOOKS:
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        source = "".join(first["source"])
        assert 'find_spec("kd_rl") is None' in source and "tf-agents==0.19.0" in source, path.name
        assert source == wanted, f"{path.name}: run python scripts/notebook_install_cell.py"


def _run_install_cell(folder, monkeypatch):
    """Run the install cell in ``folder`` as on a runtime without kd_rl; return the pip commands it ran."""
    import importlib.util
    import subprocess

    calls = []
    monkeypatch.chdir(folder)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kwargs: calls.append(cmd))
    exec(compile(_install_cell().install_cell(), "install-cell", "exec"), {})
    return calls


def test_the_install_cell_takes_an_uploaded_wheel_then_a_clone(tmp_path, monkeypatch):
    wheel = tmp_path / "kd_rl-0.2.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    calls = _run_install_cell(tmp_path, monkeypatch)
    assert calls[0][-1] == f"{wheel}[teachers,box2d,video,minatar]" and "tf-agents==0.19.0" in calls[1]
    calls = _run_install_cell(ROOT / "notebooks", monkeypatch)  # no wheel here: the clone above
    assert calls[0][-1] == f"{ROOT}[teachers,box2d,video,minatar]"
    if not Path("/content/kd_rl").exists():
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(RuntimeError, match="upload the kd_rl wheel"):
            _run_install_cell(empty, monkeypatch)


#: A parenthesis that quotes a committed output: "(0.998 when this notebook was saved)".
SAVED = re.compile(r"\(([^()]*?)when this notebook was saved[^()]*\)")
NUMBER = re.compile(r"[−-]?\d[\d,]*(?:\.\d+)?")


def _normalise(text: str) -> str:
    return text.replace("−", "-").replace(",", "")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_numbers_said_to_be_the_saved_outputs_are_in_them(path):
    """Prose that quotes this notebook's own outputs ("... when this notebook was saved") quotes them truly."""
    nb = nbformat.read(path, as_version=4)
    outputs = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            outputs.append("".join(out.get("text", "")))
            outputs.append("".join(out.get("data", {}).get("text/plain", "")))
    printed = _normalise("\n".join(outputs))
    missing = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for quoted in SAVED.findall(cell.source):
            for number in NUMBER.findall(quoted):
                if _normalise(number) not in printed:
                    missing.append(f"{number} in ({quoted.strip()} ...)")
    assert not missing, f"{path.name}: numbers said to be this notebook's outputs but not in them: {missing}"


def test_colab_links_come_from_setup_cfgs_repository_and_only_from_it():
    gen = _install_cell()
    assert gen.repository_url() == ""  # no public address yet: no link, and the cell's REPOSITORY is empty
    link = gen.colab_link("https://github.com/acme/kd_rl.git", "01_article_reproduced.ipynb")
    assert link == "https://colab.research.google.com/github/acme/kd_rl/blob/main/notebooks/01_article_reproduced.ipynb"
    assert gen.colab_link("https://gitlab.com/acme/kd_rl", "01.ipynb") is None and gen.colab_link("", "x") is None
    title = "# 01 — A lesson\n\nIntro."
    with_link = gen.title_cell(title, link)
    assert with_link.splitlines()[2].startswith("[Open in Colab](" + link)
    assert gen.title_cell(with_link, link) == with_link  # idempotent
    assert gen.title_cell(with_link, None) == title  # and removed again without an address
    for path in NOTEBOOKS:  # today's notebooks carry no link
        first = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        assert "[Open in Colab](" not in first.source
