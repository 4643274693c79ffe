"""netlet: Kubernetes networking in Python, as an offline analyzer and a real one-node lab."""

__version__ = "0.1.0"
