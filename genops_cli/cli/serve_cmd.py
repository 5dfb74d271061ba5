"""`genops serve`: health, readiness, Prometheus metrics and JSON cost/run endpoints over the ledger."""

from __future__ import annotations

import typer

from genops_cli.cli.common import finite, handle_errors, info, load_cli_settings, open_cli_ledger, warn


@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to bind. Loopback by default; another address exposes the ledger's "
                                  "totals to that network (no authentication: put a proxy in front)."),
    port: int = typer.Option(9464, "--port", min=0, max=65535, help="TCP port (0 picks a free one)."),
    refresh: float = typer.Option(15.0, "--refresh", min=0.0, max=86400.0, callback=finite,
                                  help="Seconds between ledger reads; scrapes in between get the cached values."),
) -> None:
    """Serve /health, /ready, /metrics (Prometheus) and /v1/costs, /v1/runs (JSON) from the ledger, read-only.

    Examples:

      genops serve                                   # http://127.0.0.1:9464/metrics

      genops serve --host 0.0.0.0 --port 9464        # in a container, behind a Service

      genops --ledger postgresql://genops@db/genops serve --refresh 30
    """
    from genops_cli.errors import UsageError

    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise UsageError("genops serve needs prometheus_client: pip install 'genops-cli[service]'") from exc
    from genops_cli.service.server import is_loopback, make_server

    if not host.strip():
        raise UsageError("--host '': give an address to bind (127.0.0.1, or 0.0.0.0 for every interface)")
    settings = load_cli_settings()
    ledger = open_cli_ledger(settings)
    if not is_loopback(host):
        warn(f"serving on {host}: anyone who can reach it can read spend totals; there is no authentication")
    try:
        server = make_server(ledger, settings, host=host, port=port, refresh_seconds=refresh)
    except (OSError, UnicodeError, TypeError, ValueError) as exc:  # TypeError: a host name that cannot be encoded
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"--host {host!r} --port {port}: cannot bind ({reason}); check --host (an address of this "
                         "machine) and pick a free --port") from exc
    bound_host, bound_port = server.server_address[:2]
    info(f"genops serve: http://{bound_host}:{bound_port}/metrics (ledger {ledger.display}, refresh {refresh:g} s)")
    _stop_on_sigterm(server)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _stop_on_sigterm(server: object) -> None:
    """SIGTERM (a Kubernetes rollout) stops the server cleanly: shutdown() must come from another thread."""
    import signal
    import threading

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()  # type: ignore[attr-defined]

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
