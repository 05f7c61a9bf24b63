"""totesys: incremental ETL from the totesys OLTP database into a star-schema warehouse."""

__version__ = "0.1.0"
