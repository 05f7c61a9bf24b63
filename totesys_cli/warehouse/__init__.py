"""The warehouse's own logic, apart from PostgreSQL's plumbing (`db`): its shape, which
`init` creates and every load checks (`shape`), and the summaries kept current in the
load's transaction (`upkeep`)."""
