"""Remit: governed, per-task credentials for AI agents.

Importing this package pulls in nothing but the version, so the agent SDK stays light.
"""

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
