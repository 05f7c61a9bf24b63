"""Watching a run: its log lines, text or JSON to CloudWatch (`logs`), and progress bars
on a terminal (`progress`)."""
