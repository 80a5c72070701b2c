"""Changing safely: flags, rollout plans, gates, the rollout controller and the risk policy."""
