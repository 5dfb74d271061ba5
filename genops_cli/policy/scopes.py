"""Budget scopes: `global`, `team:NAME`, `project:NAME`, `customer:ID`, `environment:NAME`, `pipeline:NAME`,
`user:ID`."""

from __future__ import annotations

from genops_cli.errors import ConfigError
from genops_cli.models import Attribution

SCOPE_KINDS = ("global", "team", "project", "customer", "environment", "pipeline", "user")

#: scope kind -> runs table column it filters on
SCOPE_COLUMNS = {
    "team": "team",
    "project": "project",
    "customer": "customer_id",
    "environment": "environment",
    "pipeline": "pipeline_name",
    "user": "user_id",
}


def parse_scope(scope: str, where: str = "SCOPE") -> tuple[str, str | None]:
    """'team:ml' -> ('team', 'ml'); 'global' -> ('global', None). Raises ConfigError naming `where`."""
    scope = scope.strip()
    if scope == "global":
        return "global", None
    kind, sep, name = scope.partition(":")
    if not sep or kind not in SCOPE_KINDS or kind == "global" or not name:
        raise ConfigError(
            f"{where}: bad budget scope {scope!r}; use global, team:NAME, project:NAME, customer:ID, "
            "environment:NAME, pipeline:NAME or user:ID"
        )
    return kind, name


def scopes_for_run(attribution: Attribution, pipeline_name: str) -> list[str]:
    """Every scope a run with this attribution counts toward."""
    scopes = ["global"]
    values = {
        "team": attribution.team,
        "project": attribution.project,
        "customer": attribution.customer_id,
        "environment": attribution.environment,
        "pipeline": pipeline_name,
        "user": attribution.user_id,
    }
    scopes += [f"{kind}:{value}" for kind, value in values.items() if value]
    return scopes
