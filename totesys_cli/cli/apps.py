"""What people open: the dashboard, the report and the demo."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from totesys_cli.cli import options, render
from totesys_cli.observe import logs


def _dashboard():
    """The dashboard's modules, or one line on how to install the dashboard."""
    from totesys_cli.errors import ConfigError

    try:
        from totesys_cli.dashboard import report, server
    except ModuleNotFoundError as err:
        raise ConfigError(
            f"the dashboard and the report need {err.name}, which is not installed",
            "Install them with pip install 'totesys[dashboard]'",
        ) from None
    return report, server


@click.command()
@options.warehouse
@options.lake
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8050, show_default=True, help="Port."
)
@options.setting("token")
@click.option(
    "--no-auth", is_flag=True, help="Serve a reachable address with no token (a WARNING says so)."
)
@click.option(
    "--allow-host",
    "allowed",
    multiple=True,
    help="Another host name requests may use (repeatable); the bind address and "
    "localhost always may.",
)
def dashboard(
    host: str, port: int, token: str | None, no_auth: bool, allowed: tuple[str, ...], **given
) -> None:
    """Serve a live dashboard: the business figures, and the pipeline's own health."""
    import signal

    _, server = _dashboard()

    def terminated(*_) -> None:  # a service manager stops it as Ctrl-C does
        raise KeyboardInterrupt

    settings = options.settings_from(given)
    with server.serving(settings, host, port, token, no_auth, allowed) as httpd:
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"dashboard on http://{shown}:{httpd.effective_port}/ (Ctrl-C stops it)")
        signal.signal(signal.SIGTERM, terminated)
        httpd.run()  # returns on Ctrl-C (waitress closes itself)
    click.echo("dashboard stopped")


@click.command()
@options.warehouse
@click.option(
    "--out",
    required=True,
    help="The HTML file to write, or s3://bucket/key to upload it.",
)
@options.filters
def report(out: str, start, end, currency, **given) -> None:
    """Write the dashboard as one self-contained HTML file that opens with no network."""
    reports, _ = _dashboard()
    settings = options.settings_from(given)
    with logs.step("report"):
        days = (day.date() if day else None for day in (start, end))
        size = reports.report(settings, out, *days, currency)
    click.echo(f"report written to {out} ({size / 1e6:.1f} MB, opens with no network)")


@click.command()
@click.option(
    "--folder",
    type=click.Path(path_type=Path),
    envvar="TOTESYS_DEMO_DIR",
    show_envvar=True,
    help="Where the demo keeps its server and lake [default: ~/.totesys-demo].",
)
@click.option(
    "--scale",
    type=click.FloatRange(min=0.01, max=20),
    default=1.0,
    show_default=True,
    help="Source size; 1 is about today's real database.",
)
@click.option("--stop", is_flag=True, help="Stop the demo's PostgreSQL server and exit.")
@click.pass_context
def demo(ctx: click.Context, folder: Path | None, scale: float, stop: bool) -> None:
    """The whole job on an embedded PostgreSQL and a local lake, no set-up."""
    from totesys_cli.demo import run as show

    folder = folder or show.default_folder()
    if stop:
        stopped = show.stop_demo(folder)
        click.echo("demo server stopped" if stopped else f"no demo server runs in {folder}")
        return
    chosen = ctx.find_root().get_parameter_source("log_level")
    if chosen in (None, click.core.ParameterSource.DEFAULT):
        logging.getLogger(logs.LOGGER_NAME).setLevel(logging.WARNING)  # the tables tell it
    with logs.step("demo"):
        result = show.run_demo(folder, scale=scale, say=click.echo)
    click.echo("\nFirst run:")
    render.run_summary(result.first)
    click.echo("\nSecond run, after the activity:")
    render.run_summary(result.second)
    click.echo("\nverify: source and warehouse reconciled")
    render.verified(result.verified)
    click.echo("\nRevenue by delivery country, per currency (from fact_sales_order_latest):")
    render.table(
        [(country, code, f"{revenue:,.2f}", n) for country, code, revenue, n in result.revenue],
        ("country", "currency", "revenue", "orders"),
    )
    click.echo(show.how_to_explore(result))


COMMANDS = (dashboard, report, demo)
