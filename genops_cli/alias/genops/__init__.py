"""The integration guide's import path, `genops.providers.haystack`, for the genops-cli distribution.

pyproject.toml installs this folder as the top-level package `genops` (package-dir mapping), so the guide's
`from genops.providers.haystack import auto_instrument` and `genops.__version__` work. The code lives in
`genops_cli.api`; these modules only re-export it (one set of classes, one auto_instrument state).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("genops-cli")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
