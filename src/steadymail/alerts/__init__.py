"""Alert manager (dedup, resolve, timeline, silences), notifiers, incident export."""
