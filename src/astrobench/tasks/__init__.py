"""Downstream tasks, one file each; metrics are pure functions in ``metrics``."""
