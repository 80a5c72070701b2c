"""steadymail: a self-hosted email sending platform whose sends never stall silently."""

__version__ = "0.1.0"
