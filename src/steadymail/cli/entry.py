"""The `steadymail` executable: point prometheus-client at the shared directory, then run the CLI.

prometheus-client picks single- or multiprocess mode when it is first imported, so the
directory must be in the environment before anything imports it (the CLI's modules do).
"""

import os


def main() -> None:
    """Entry point of the `steadymail` command and of `python -m steadymail`."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        from steadymail.config import load_settings

        try:
            directory = load_settings().resolved_prometheus_dir()
            directory.mkdir(parents=True, exist_ok=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        except (ValueError, OSError):  # a bad config (or directory) is the command's to report
            pass
    from steadymail.cli.main import main as run

    run()
