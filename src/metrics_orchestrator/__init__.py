"""metrics-orchestrator: a reactive control plane for metric computations."""

__version__ = "0.1.0"
