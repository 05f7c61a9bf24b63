"""`totesys report`: the dashboard as one self-contained HTML file, to a folder or S3."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import urllib.parse
from pathlib import Path

from totesys_cli.config.settings import Settings
from totesys_cli.dashboard import document, queries
from totesys_cli.dashboard.reading import Warehouse, filters, open_warehouse
from totesys_cli.errors import ConfigError, RuntimeFailure


def report(
    settings: Settings,
    out: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    currency: str | None = None,
) -> int:
    """`totesys report`: the warehouse's dashboard, filtered, written to `out` (a file or
    s3://bucket/key); returns its size."""
    warehouse = open_warehouse(settings)
    try:
        warehouse.check()
        chosen = filters(start, end, currency, warehouse.currencies(), ("--from", "--to"))
        return write_report(warehouse, chosen, out)
    finally:
        warehouse.close()


def write_report(warehouse: Warehouse, filters: queries.Filters, out: str) -> int:
    """The report as one self-contained file (plotly.js inlined); returns its size."""
    with warehouse.reading() as reading:
        rendered = reading.rendered(filters)
    html = document.render(
        rendered.page, plotly_js=document.plotly_js().decode(), figures=rendered.figures
    )
    body = html.encode()
    if out.startswith("s3://"):
        _put_s3(out, body)
    else:
        _write_atomically(Path(out), body)
    return len(body)


def _write_atomically(path: Path, body: bytes) -> None:
    """Whole or not at all: a reader never sees half a report."""
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {path}: {folder} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", delete=False) as tmp:
            try:
                tmp.write(body)
                tmp.close()
                os.replace(tmp.name, path)
            except OSError:
                os.unlink(tmp.name)
                raise
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror}") from None


def _put_s3(url: str, body: bytes) -> None:
    import botocore.exceptions

    from totesys_cli.config import aws

    parsed = urllib.parse.urlparse(url)
    if not parsed.netloc or not parsed.path.strip("/"):
        raise ConfigError(f"{url} names no object; give s3://bucket/path/report.html")
    try:
        aws.client("s3").put_object(
            Bucket=parsed.netloc,
            Key=parsed.path.lstrip("/"),
            Body=body,
            ContentType="text/html; charset=utf-8",
        )
    except botocore.exceptions.BotoCoreError as err:
        raise RuntimeFailure(f"could not write {url}: {err}") from None
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        raise ConfigError(f"could not write {url}: {code or err}") from None
