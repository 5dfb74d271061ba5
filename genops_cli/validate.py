"""`python -m genops_cli.validate [PIPELINE] [--provider NAME] [--fix-issues] [--yes] [--json]`: the guide's
validation script, the same command as `genops validate` (one engine)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from genops_cli.cli.app import app

    app(args=["validate", *(sys.argv[1:] if argv is None else argv)], prog_name="genops")


if __name__ == "__main__":
    main()
