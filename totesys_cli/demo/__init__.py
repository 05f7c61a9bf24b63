"""The demo: a realistic generated source, an embedded PostgreSQL, the whole job."""
