"""What every command module of the command line shares: the exit codes, the usage error and the
printing of a rendered table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def print_table(rendered: Any, fmt: str, out: str | None) -> None:
    """A rendered table to the terminal or a file (rich tables through a rich console)."""
    if fmt == "rich":
        from rich.console import Console

        if out:
            with open(out, "w") as handle:
                Console(file=handle, width=200).print(rendered)
        else:
            Console().print(rendered)
    elif out:
        Path(out).write_text(rendered)
    else:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
