"""The operator console: server-rendered pages under /ui, their static files and sessions."""
