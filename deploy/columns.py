"""Write the Glue tables' columns in totesys.yaml from the schemas (`schemas.catalog`).

    python deploy/columns.py          # rewrite each table's Columns in place
    python deploy/columns.py --check  # exit 1 if the template differs from the schemas

A column is declared once, in `totesys_cli/schemas/`; the template's copy is written
from there, and the test suite checks that it is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from totesys_cli.schemas import STAR_TABLES
from totesys_cli.schemas.catalog import columns

TEMPLATE = Path(__file__).with_name("totesys.yaml")


def generated(text: str) -> str:
    """The template with every Glue table's Columns written from the schemas."""
    lines, out, table = text.splitlines(keepends=True), [], None
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if found := re.match(r"\s+Name: (\w+)\s*$", line):
            table = found[1] if found[1] in STAR_TABLES else table
        if table is not None and re.match(r"\s+Columns:\s*$", line):
            indent = " " * (len(line) - len(line.lstrip()) + 2)
            while index < len(lines) and lines[index].startswith(f"{indent}- {{Name: "):
                index += 1  # the old columns, replaced below
            for name, kind, comment in columns(table):
                shown = f'"{kind}"' if "," in kind else kind
                said = f", Comment: {comment}" if comment else ""
                out.append(f"{indent}- {{Name: {name}, Type: {shown}{said}}}\n")
            table = None
    return "".join(out)


def main(argv: list[str]) -> int:
    text = TEMPLATE.read_text()
    new = generated(text)
    if "--check" in argv:
        if new != text:
            print(f"{TEMPLATE} differs from the schemas: run python deploy/columns.py")
            return 1
        return 0
    TEMPLATE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
