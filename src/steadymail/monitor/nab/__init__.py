"""The Numenta Anomaly Benchmark: read a corpus, run a detector over it, score the results."""
