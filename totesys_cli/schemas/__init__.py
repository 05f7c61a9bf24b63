"""The schemas, declared once: the source, the warehouse, and how both travel as Arrow.

DDL, Arrow schemas, COPY column lists, the quarantine entry's columns, the generator,
every step and the tests read these declarations, so a column or a star table is
declared in exactly one place; the stack's Glue columns are written from them
(`deploy/columns.py`, checked by a test).
"""

from totesys_cli.schemas.model import (
    DIMENSIONS,
    FACTS,
    STARS,
    STREAMED_SOURCES,
    WHOLE_SOURCES,
    Star,
    star,
)
from totesys_cli.schemas.source import SOURCE, SOURCE_TABLES, source_key, source_table
from totesys_cli.schemas.summaries import SUMMARIES
from totesys_cli.schemas.warehouse import (
    DELETIONS,
    DIMENSION_VERSIONS,
    LINEAGE,
    LOADED_RUNS,
    META,
    META_SCHEMA,
    QUARANTINE,
    RUNS,
    STAR_TABLES,
    WAREHOUSE,
    data_columns,
    latest_view_name,
    star_table,
)

__all__ = [
    "DELETIONS",
    "DIMENSIONS",
    "DIMENSION_VERSIONS",
    "FACTS",
    "LINEAGE",
    "LOADED_RUNS",
    "META",
    "META_SCHEMA",
    "QUARANTINE",
    "RUNS",
    "SOURCE",
    "SOURCE_TABLES",
    "STARS",
    "STAR_TABLES",
    "STREAMED_SOURCES",
    "SUMMARIES",
    "WAREHOUSE",
    "WHOLE_SOURCES",
    "Star",
    "data_columns",
    "latest_view_name",
    "source_key",
    "source_table",
    "star",
    "star_table",
]
