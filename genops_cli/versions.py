"""The versions recorded on every run (`runs.genops_version`, `runs.haystack_version`) and shown by `--version`.

    genops_version()    # "0.1.0"
"""

from __future__ import annotations

import functools


@functools.cache  # importlib.metadata reads files: ~0.6 ms a call, once per run otherwise
def genops_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genops-cli")
    except PackageNotFoundError:
        return "0+unknown"


@functools.cache
def haystack_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("haystack-ai")
    except PackageNotFoundError:
        return "unknown"
