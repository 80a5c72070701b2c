"""Watching: service health, stalled sends, and the monitor process that turns them into alerts."""
