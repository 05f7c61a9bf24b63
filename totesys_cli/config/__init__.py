"""Configuration: every setting declared once (`settings`), database URLs and secrets
(`urls`), profiles in a totesys.toml (`profiles`), and how AWS clients are made (`aws`).
Pure values, no I/O but Secrets Manager's."""
