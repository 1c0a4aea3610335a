"""The ``galton`` command line.

``galton serve`` runs the Label Studio ML backend on waitress (a production WSGI server,
pure Python). More commands (``sync``, ``gate``, ``score``, ``report``) join the same
group. Exit codes: 0 ok, 2 usage or configuration error, 1 anything else.
"""

from __future__ import annotations

import logging
import sys

import click

__all__ = ["main"]

log = logging.getLogger(__name__)
EXIT_CONFIG = 2


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry full URLs


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="galton", prog_name="galton")
def main() -> None:
    """galton: quality control for human-labelled data (consensus, rater scores, flags).

    Configuration comes from environment variables (see `galton serve --help`).
    """


@main.command()
@click.option("--host", default=None, help="Interface to listen on (default $GALTON_HOST or 127.0.0.1; "
              "use 0.0.0.0 in a container).")
@click.option("--port", type=int, default=None, help="Port (default $GALTON_PORT or 9090).")
@click.option("--threads", type=int, default=None, help="HTTP request threads (default $GALTON_HTTP_THREADS or 8).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
def serve(host: str | None, port: int | None, threads: int | None, log_level: str) -> None:
    """Run the Label Studio ML backend (GET /health, POST /setup, /predict, /webhook).

    \b
    Environment:
      LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY   where galton pulls and writes back
      GALTON_STATE_URL                         sqlite:///.galton/backend.sqlite3 or a PostgreSQL URL
      GALTON_BASIC_AUTH_USER/_PASSWORD         basic auth Label Studio sends (ML backend settings)
      GALTON_WEBHOOK_SECRET                    value of the X-Galton-Secret header on webhooks
      GALTON_AUTH=off                          run without authentication (explicit)
      GALTON_METHOD, GALTON_WORKER_THREADS     consensus method, background job threads

    Connect it in Label Studio: Project > Settings > Model > Connect Model, URL of this
    server, "Use for interactive preannotations" off, basic auth as configured.
    """
    _configure_logging(log_level)
    try:
        from waitress import serve as waitress_serve

        from .app import create_app
        from .settings import Settings, SettingsError
        from .state import StateError
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        click.echo(f"galton serve needs the backend extra: pip install 'galton[backend]' ({error})", err=True)
        sys.exit(EXIT_CONFIG)
    try:
        settings = Settings.from_env()
        if host is not None or port is not None or threads is not None:
            settings = settings.with_(host=host or settings.host, port=settings.port if port is None else port,
                                      http_threads=threads or settings.http_threads)
        app = create_app(settings)
    except (SettingsError, StateError) as error:
        click.echo(f"galton serve: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    log.info("galton backend on http://%s:%d (method %s, %d job threads, state %s)", settings.host, settings.port,
             settings.review.method, settings.worker_threads, app.extensions["galton"].store)
    waitress_serve(app, host=settings.host, port=settings.port, threads=settings.http_threads,
                   ident="galton", clear_untrusted_proxy_headers=True)


if __name__ == "__main__":  # pragma: no cover
    main()
