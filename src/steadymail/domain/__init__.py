"""Pure rules and types: states, transitions, policies. No I/O, imports nothing of ours."""
