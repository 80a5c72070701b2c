"""The HTTP interface: REST under /v1, captured mail, health and metrics."""
