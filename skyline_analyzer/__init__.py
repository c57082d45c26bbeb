"""skyline-analyzer: a faithful Python 3 re-implementation of the Skyline Analyzer (v1.2.8)."""

__version__ = "0.1.0"
