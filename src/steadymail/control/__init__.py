"""The control plane: knows regions by URL and API key, steers rollouts over their HTTP APIs."""
