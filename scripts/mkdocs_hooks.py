"""MkDocs hooks (``hooks:`` in mkdocs.yml): the notebooks in ``notebooks/`` become site pages.

The notebooks live in ``notebooks/``, outside ``docs/``, and are not copied into git twice:
at build time each ``notebooks/NAME.ipynb`` is added to the site as the page
``notebooks/NAME/`` (rendered with its committed outputs by mkdocs-jupyter) and listed
in the nav section that holds ``notebooks.md``. A Markdown link written for GitHub,
``../notebooks/NAME.ipynb`` from a page in ``docs/``, is pointed at that page; in a
notebook, links written for GitHub and Jupyter (``../docs/PAGE.md#anchor``,
``NAME.ipynb``) are pointed at the site's pages.
nbconvert's loaders of MathJax and Mermaid, which fetch from a CDN, are taken out of
the notebook pages: KaTeX typesets their formulas like the rest of the site's.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
OVERVIEW = "notebooks.md"
_GITHUB_LINK = re.compile(r"\]\(\.\./notebooks/([^)\s/]+\.ipynb)")
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)
# In a rendered notebook: href="../docs/PAGE.md#anchor" or href="NAME.ipynb#anchor".
_NOTEBOOK_LINK = re.compile(r'href="(\.\./docs/[^"#]+\.md|[^"#/:]+\.ipynb)(#[^"]*)?"')


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def _add_to_section(nav, pages: list[str]) -> bool:
    """Append ``pages`` to the nav list that holds ``OVERVIEW``; False if there is none."""
    if isinstance(nav, list):
        entries = [next(iter(item.values())) if isinstance(item, dict) else item for item in nav]
        if OVERVIEW in entries:
            nav.extend(page for page in pages if page not in entries)
            return True
        return any(_add_to_section(entry, pages) for entry in entries)
    return False


def on_config(config):
    pages = [f"notebooks/{path.name}" for path in _notebooks()]
    if config["nav"] is not None and not _add_to_section(config["nav"], pages):
        raise ValueError(f"mkdocs.yml: nav has no section with {OVERVIEW} to list the notebooks in")
    return config


# Before mkdocs-jupyter's on_files (priority 0), which turns .ipynb files into pages.
@event_priority(50)
def on_files(files, config):
    # A File whose source folder is the repository root, so that its src_uri is
    # notebooks/NAME.ipynb; mkdocs-jupyter's wrapper does not take File.generated's files.
    for path in _notebooks():
        files.append(
            File(f"notebooks/{path.name}", str(NOTEBOOKS.parent), config["site_dir"], config["use_directory_urls"])
        )
    return files


def on_page_markdown(markdown, page, config, files):
    if "/" in page.file.src_uri:  # only pages at the top of docs/ link to ../notebooks/
        return markdown
    return _GITHUB_LINK.sub(r"](notebooks/\1", markdown)


def _loads_from_outside(script: str) -> bool:
    return 'src=""' in script or "MathJax" in script or "://" in script


def _site_link(match, page, files) -> str:
    """``match`` of `_NOTEBOOK_LINK` as the href of the site page it means, relative to ``page``."""
    target, anchor = match.group(1), match.group(2) or ""
    src_uri = target[len("../docs/") :] if target.startswith("../docs/") else f"notebooks/{target}"
    file = files.get_file_from_path(src_uri)
    if file is None:
        raise ValueError(f"{page.file.src_uri}: link to {target}, which is not a page of the site")
    return f'href="{get_relative_url(file.url, page.url)}{anchor}"'


def on_page_content(html, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    html = _NOTEBOOK_LINK.sub(lambda m: _site_link(m, page, files), html)
    return _SCRIPT.sub(lambda m: "" if _loads_from_outside(m.group(0)) else m.group(0), html)
