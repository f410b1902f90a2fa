"""Load the built docs site in headless Chromium and check what a reader sees.

    python scripts/docs_browser_check.py                      # builds the site (strict) first
    python scripts/docs_browser_check.py --site-dir SITE      # checks a site already built
    python scripts/docs_browser_check.py --screenshots DIR    # keeps the screenshots in DIR

The site is served on 127.0.0.1 (a free port) and every page is loaded at 1280 x 900 in
Debian's Chromium (/usr/bin/chromium, installed with apt-get if missing), driven by
Playwright's Python API; Playwright's own browser download is never used. On every page:

- no request leaves localhost (each is recorded, and refused), no console error, no
  uncaught exception, no HTTP error, every image loaded;
- no formula left unrendered: no ``$$``, ``\\(``, ``\\)``, ``\\[``, ``\\]``, ``$...$`` or
  ``\\command`` in the text outside code, and no KaTeX error;
- no table wider than its column or than the 1280 px window (the benchmarks tables'
  last columns must be visible without scrolling sideways);
- no broken link: every link within the site (a notebook's links to the docs included)
  leads to a page that exists and, with ``#anchor``, to an element with that id there.

Some pages must show more: concepts the KL, its gradient and the T² argument typeset by
KaTeX, the API reference the losses' formulas, a notebook its committed figures and
every exercise solution closed on first view (its code hidden until its summary is
clicked, which must show it).
Screenshots of the concepts and benchmarks pages are taken for a person to look at;
the checks read the DOM, never pixels. Exit status 1 lists each page and what is wrong
with it; 2 means the check could not run (no Chromium, no Playwright, the build failed).
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As the machine notes say: no first-run work, no background connections to Google.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1280, 900
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
SCREENSHOTS = ("concepts/", "benchmarks/")
MAX_REPORTED = 12  # problems listed per page

# Page -> {heading id: what its section must show}: each section (from the heading to the
# next heading of the same or a higher level) must hold a formula typeset by KaTeX.
MATH_REQUIRED = {
    "concepts/": {
        "knowledge-distillation": "the KL divergence of the distillation loss",
        "policy-distillation": "the three losses",
        "the-gradient-step-by-step": "the gradient of the loss",
        "why-t2-the-size-of-the-gradient-across-temperatures": "the T² argument",
        "what-the-article-gets-wrong": "the article's errors",
    },
    "api/": {
        "kd_rl.losses": "the losses module's formulas",
        "kd_rl.losses.kl_divergence_loss": "kl_divergence_loss's formula",
    },
}
# Counts the KaTeX formulas in the section that a heading opens; -1 if there is no such heading.
SECTION_MATH_JS = r"""
(id) => {
  const heading = document.getElementById(id);
  if (!heading) return -1;
  const level = /^H[1-6]$/.test(heading.tagName) ? Number(heading.tagName[1]) : 7;
  let count = 0;
  for (let node = heading.nextElementSibling; node; node = node.nextElementSibling) {
    if (/^H[1-6]$/.test(node.tagName) && Number(node.tagName[1]) <= level) break;
    count += node.matches(".katex") ? 1 : node.querySelectorAll(".katex").length;
  }
  return count;
}
"""

# Runs in the page: what a reader would see as broken.
PAGE_PROBLEMS_JS = r"""
() => {
  const problems = [];
  const article = document.querySelector("article.md-content__inner");
  if (!article) return ["no Material article on the page: is the theme mkdocs-material?"];

  // Formulas left as source: text outside code, outside KaTeX's own output.
  const skip = "pre, code, kbd, script, style, textarea, .katex";
  const raw = [
    [/\$\$/, "$$"],
    [/\\[()[\]]/, "\\( \\) \\[ or \\]"],
    [/\$[^\s$](?:[^$]*[^\s$])?\$/, "$...$"],
    [/\\[A-Za-z]{2,}/, "a \\command"],
  ];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(skip)) continue;
    for (const [pattern, what] of raw) {
      const match = pattern.exec(node.textContent);
      if (match) {
        const at = Math.max(0, match.index - 30);
        const context = node.textContent.slice(at, match.index + 50).replace(/\s+/g, " ");
        problems.push(`raw formula text (${what}) left: "...${context}..."`);
        break;
      }
    }
  }
  for (const error of article.querySelectorAll(".katex-error")) {
    problems.push(`KaTeX error: ${error.title || error.textContent}`);
  }

  // Images that did not load.
  for (const image of article.querySelectorAll("img")) {
    if (!image.complete || image.naturalWidth === 0) {
      problems.push(`image not loaded: ${image.getAttribute("src").slice(0, 80)}`);
    }
  }

  // Tables whose columns are cut off: wider than their scroll box or than the window.
  article.querySelectorAll("table").forEach((table, index) => {
    const box = table.closest(".md-typeset__scrollwrap") || table.parentElement;
    const limit = Math.min(window.innerWidth, box.getBoundingClientRect().right, table.getBoundingClientRect().right);
    const header = [...table.rows[0].cells];
    const hidden = header.filter((cell) => cell.getBoundingClientRect().right > limit + 1);
    if (hidden.length || table.scrollWidth > table.clientWidth + 1) {
      const names = (hidden.length ? hidden : header.slice(-1)).map((cell) => cell.textContent.trim());
      problems.push(`table ${index + 1} does not fit ${window.innerWidth} px; cut off: ${names.join(", ")}`);
    }
  });
  return problems;
}
"""


def _chromium() -> str:
    """The Chromium binary, installed from Debian's packages when it is missing."""
    found = os.environ.get("KD_RL_CHROMIUM") or (CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"))
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _fail_to_run(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium) "
            "or set KD_RL_CHROMIUM to a Chromium binary"
        )
    print("docs check: Chromium missing; installing Debian's chromium package with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            _fail_to_run(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    if not os.path.exists(CHROMIUM):
        _fail_to_run(f"apt-get installed chromium but there is no {CHROMIUM}")
    return CHROMIUM


def _fail_to_run(message: str) -> None:
    print(f"docs check could not run: {message}", file=sys.stderr)
    sys.exit(2)


def _build(site_dir: Path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site_dir)]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
        _fail_to_run("`mkdocs build --strict` failed (its messages are above)")


def _pages(site_dir: Path) -> list[str]:
    """Every page of the site as a path relative to its root, e.g. "" or "concepts/"."""
    pages = []
    for index in sorted(site_dir.rglob("index.html")):
        relative = index.parent.relative_to(site_dir).as_posix()
        if relative.split("/")[0] not in ("assets", "search"):
            pages.append("" if relative == "." else relative + "/")
    return pages


class _LinksAndIds(html.parser.HTMLParser):
    """A page's ``<a href>`` values and element ids."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(attributes["id"])
        if tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"])


def broken_links(site_dir: Path) -> dict[str, list[str]]:
    """{page: [problems]} for links within the site to a missing page or a missing ``#anchor``."""
    parsed: dict[Path, _LinksAndIds] = {}

    def parse(path: Path) -> _LinksAndIds:
        if path not in parsed:
            parsed[path] = _LinksAndIds()
            parsed[path].feed(path.read_text(encoding="utf-8"))
        return parsed[path]

    problems: dict[str, list[str]] = {}
    for page_path in _pages(site_dir):
        source = site_dir / page_path / "index.html"
        for href in parse(source).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc:
                continue  # another site, mailto:, data:
            target = site_dir / unquote(urljoin("/" + page_path, parts.path).lstrip("/")) if parts.path else source
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.setdefault(page_path or "index", []).append(f"broken link {href}: no such file in the site")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in parse(target).ids:
                problems.setdefault(page_path or "index", []).append(f"broken link {href}: no #{parts.fragment} there")
    return problems


def _serve(site_dir: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS


def check_site(site_dir: Path, screenshots: Path, chromium: str) -> dict[str, list[str]]:
    """Load every page of ``site_dir``; return {page: [problems]} for the pages with any."""
    from playwright.sync_api import sync_playwright

    server = _serve(site_dir)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: dict[str, list[str]] = {}
    try:
        with sync_playwright() as playwright:
            # launch() starts Chromium with a new, empty profile of its own.
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, color_scheme="light")
                for page_path in _pages(site_dir):
                    found = _check_page(context, base, page_path, screenshots)
                    if found:
                        problems[page_path or "index"] = found
            finally:
                browser.close()
    finally:
        server.shutdown()
    return problems


def _check_page(context, base: str, page_path: str, screenshots: Path) -> list[str]:
    found: list[str] = []

    def route(route):
        if _is_local(route.request.url):
            route.continue_()
        else:
            found.append(f"request leaves localhost: {route.request.url}")
            route.abort("blockedbyclient")

    page = context.new_page()
    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and found.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: found.append(f"uncaught exception: {e}"))
    page.on("response", lambda r: r.status >= 400 and found.append(f"HTTP {r.status}: {r.url}"))
    try:
        page.goto(base + page_path, wait_until="load")
        page.wait_for_load_state("networkidle")
        page.evaluate("document.fonts.ready.then(() => true)")
        found.extend(page.evaluate(PAGE_PROBLEMS_JS))
        for heading, what in MATH_REQUIRED.get(page_path, {}).items():
            count = page.evaluate(SECTION_MATH_JS, heading)
            if count < 1:
                where = "no heading with that id" if count < 0 else "no formula typeset by KaTeX there"
                found.append(f"section #{heading} ({what}): {where}")
        if page_path.startswith("notebooks/") and page_path != "notebooks/":
            found.extend(_notebook_problems(page, ROOT / f"{page_path.rstrip('/')}.ipynb"))
        if page_path in SCREENSHOTS:
            page.screenshot(path=str(screenshots / f"{page_path.strip('/')}.png"), full_page=False)
    finally:
        page.close()
    return found


def _notebook_problems(page, notebook: Path) -> list[str]:
    """A notebook page must show the outputs and figures committed in its .ipynb."""
    if not notebook.exists():
        return []
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    outputs = [output for cell in cells for output in cell.get("outputs", [])]
    figures = sum(any(kind.startswith("image/") for kind in output.get("data", {})) for output in outputs)
    shown = page.locator(".jupyter-wrapper .jp-OutputArea-output").count()
    shown_figures = page.locator(".jupyter-wrapper .jp-OutputArea-output :is(img, svg)").count()
    problems = []
    if outputs and not shown:
        problems.append(f"{notebook.name} has {len(outputs)} committed outputs; the page shows none")
    if shown_figures < figures:
        problems.append(f"{notebook.name} has {figures} committed figures; the page shows {shown_figures}")
    return problems + _solution_problems(page, notebook.name, cells)


def _solution_problems(page, name: str, cells: list[dict]) -> list[str]:
    """Every solution cell is closed on first view (javascripts/solutions.js) and opens on a click."""
    solutions = sum("solution" in cell.get("metadata", {}).get("tags", []) for cell in cells)
    closed = page.locator("details.kd-solution")
    problems = []
    if closed.count() != solutions:
        problems.append(f"{name} has {solutions} solution cells; the page closes {closed.count()} of them")
    code = page.locator(".celltag_solution .jp-InputArea")
    visible = sum(code.nth(i).is_visible() for i in range(code.count()))
    if visible:
        problems.append(f"{name}: {visible} solution code cells are visible on first view")
    if closed.count():
        closed.first.locator("summary").click()
        if not closed.first.locator(".jp-InputArea").first.is_visible():
            problems.append(f"{name}: opening a solution does not show its code")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site-dir", type=Path, help="a built site (default: build one with mkdocs --strict)")
    parser.add_argument("--screenshots", type=Path, help="where to keep the screenshots (default: a temp folder)")
    args = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        _fail_to_run("Playwright's Python package is missing: pip install -c requirements.txt -e '.[dev]'")
    chromium = _chromium()

    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="kd-rl-docs-"))
    site_dir = args.site_dir
    if site_dir is None:
        site_dir = work / "site"
        _build(site_dir)
    elif not (site_dir / "index.html").exists():
        _fail_to_run(f"no built site in {site_dir} (no index.html)")
    screenshots = args.screenshots or work / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    problems = check_site(site_dir.resolve(), screenshots, chromium)
    for page_path, found in broken_links(site_dir.resolve()).items():
        problems.setdefault(page_path, []).extend(found)
    seconds = time.perf_counter() - start
    pages = len(_pages(site_dir))
    if problems:
        print(f"docs check FAILED: {len(problems)} of {pages} pages in {site_dir}", file=sys.stderr)
        for page_path, found in problems.items():
            for problem in found[:MAX_REPORTED]:
                print(f"  {page_path}: {problem}", file=sys.stderr)
            if len(found) > MAX_REPORTED:
                print(f"  {page_path}: ... and {len(found) - MAX_REPORTED} more", file=sys.stderr)
        return 1
    if args.site_dir is None:  # the site this check built; kept above for a look when it fails
        shutil.rmtree(site_dir)
    print(f"docs check: {pages} pages load offline, every formula typeset, no broken link ({seconds:.1f} s)")
    print(f"docs check: screenshots of {', '.join(SCREENSHOTS)} in {screenshots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
