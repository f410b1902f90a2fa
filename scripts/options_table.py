"""Write ``kd-rl distill``'s option table into docs/cli.md from kd_rl.config (python scripts/options_table.py).

The table sits between two HTML comments in docs/cli.md; ``--check`` exits 1 if it is not what
`kd_rl.config.options_markdown` gives (tests/test_config.py runs the same comparison).
"""

from __future__ import annotations

import sys
from pathlib import Path

from kd_rl.config import options_markdown

CLI_PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
BEGIN = "<!-- kd_rl.config.options_markdown: begin -->"
END = "<!-- kd_rl.config.options_markdown: end -->"


def with_table(text: str) -> str:
    """``text`` (docs/cli.md) with the generated table between the markers."""
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{options_markdown()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = CLI_PAGE.read_text()
    wanted = with_table(text)
    if "--check" in argv:
        return 0 if wanted == text else 1
    CLI_PAGE.write_text(wanted)
    print(f"wrote the option table into {CLI_PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
