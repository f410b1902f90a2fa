"""scripts/docs_browser_check.py finds what a reader would see as broken, on two hand-made pages.

The full check of the real site runs in `make test` after the strict docs build; this test
only shows, in a few seconds, that the check fails where it must: a raw formula, a request
to another host, a console error, a table cut off at 1280 px. Skipped without Chromium
or Playwright (`make test` installs both before its browser check).
"""

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "docs_browser_check.py"


def _load_check():
    spec = importlib.util.spec_from_file_location("docs_browser_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(body: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body>"
        f"<article class='md-content__inner md-typeset'>{body}</article></body></html>"
    )


GOOD = _page(
    "<h1>Fine</h1><p>A formula typeset: <span class='katex'>x</span>, a cost of $5,"
    " and code: <code>$HOME \\(x\\)</code>.</p>"
    "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
)
BROKEN = _page(
    "<h1>Broken</h1><p>Left as source: \\(T^2\\) and $x + y$.</p>"
    "<img src='https://example.com/x.png' alt='x'>"
    "<div style='width: 600px; overflow-x: auto'><table style='width: 2000px'>"
    "<tr><th>key</th><th>ratio</th></tr><tr><td>1</td><td>2</td></tr></table></div>"
    "<script>console.error('boom')</script>"
)


@pytest.fixture(scope="module")
def check():
    pytest.importorskip("playwright.sync_api")
    module = _load_check()
    chromium = os.environ.get("KD_RL_CHROMIUM") or shutil.which("chromium") or module.CHROMIUM
    if not os.path.exists(chromium):
        pytest.skip(f"no Chromium at {chromium}")
    return module, chromium


def test_check_passes_a_good_page_and_names_each_problem_of_a_broken_one(check, tmp_path):
    module, chromium = check
    site = tmp_path / "site"
    (site / "broken").mkdir(parents=True)
    (site / "index.html").write_text(GOOD, encoding="utf-8")
    (site / "broken" / "index.html").write_text(BROKEN, encoding="utf-8")

    problems = module.check_site(site, tmp_path, chromium)

    assert "index" not in problems, problems.get("index")
    found = "\n".join(problems["broken/"])
    assert "raw formula text (\\( \\) \\[ or \\]) left" in found
    assert "raw formula text ($...$) left" not in found  # one report per text node: the first pattern
    assert "request leaves localhost: https://example.com/x.png" in found
    assert "console error: boom" in found
    assert "image not loaded" in found
    assert "table 1 does not fit 1280 px; cut off: key, ratio" in found


def test_raw_dollar_formula_is_reported(check, tmp_path):
    module, chromium = check
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(_page("<p>Unrendered: $x + y$ here.</p>"), encoding="utf-8")

    problems = module.check_site(site, tmp_path, chromium)

    assert problems == {"index": ['raw formula text ($...$) left: "...Unrendered: $x + y$ here...."']}


def test_broken_links_names_a_missing_page_and_a_missing_anchor(tmp_path):
    module = _load_check()  # a static check of the built HTML: no browser
    site = tmp_path / "site"
    (site / "concepts").mkdir(parents=True)
    (site / "notebooks" / "01").mkdir(parents=True)
    (site / "concepts" / "index.html").write_text(_page("<h2 id='the-loss'>The loss</h2>"))
    (site / "index.html").write_text(
        _page("<a href='concepts/#the-loss'>ok</a> <a href='https://example.com/x'>away</a> <a href='#'>top</a>")
    )
    notebook = (
        "<a href='../../concepts/'>ok</a> <a href='../../concepts/#the-gradient'>x</a> <a href='../docs/a.md'>y</a>"
    )
    (site / "notebooks" / "01" / "index.html").write_text(_page(notebook))
    assert module.broken_links(site) == {
        "notebooks/01/": [
            "broken link ../../concepts/#the-gradient: no #the-gradient there",
            "broken link ../docs/a.md: no such file in the site",
        ]
    }
