"""Write the generated option tables into docs/cli.md from kd_rl.config (python scripts/options_table.py).

``kd-rl distill``'s table (`kd_rl.config.DistillConfig`) and ``kd-rl train-teacher``'s
(`kd_rl.config.TeacherConfig`) each sit between two HTML comments in docs/cli.md; ``--check``
exits 1 if one is not what `kd_rl.config.options_markdown` gives (tests/test_config.py runs the
same comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kd_rl.config import DistillConfig, TeacherConfig, options_markdown

CLI_PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
#: The tables: the comments that open and close each, and the config it is generated from.
TABLES = (
    ("<!-- kd_rl.config.options_markdown: begin -->", "<!-- kd_rl.config.options_markdown: end -->", DistillConfig),
    (
        "<!-- kd_rl.config.options_markdown(TeacherConfig): begin -->",
        "<!-- kd_rl.config.options_markdown(TeacherConfig): end -->",
        TeacherConfig,
    ),
)


def with_table(text: str) -> str:
    """``text`` (docs/cli.md) with each generated table between its markers."""
    for begin, end, config_class in TABLES:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = f"{head}{begin}\n{options_markdown(config_class)}\n{end}{tail}"
    return text


def main(argv: list[str]) -> int:
    text = CLI_PAGE.read_text()
    wanted = with_table(text)
    if "--check" in argv:
        return 0 if wanted == text else 1
    CLI_PAGE.write_text(wanted)
    print(f"wrote the option tables into {CLI_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
