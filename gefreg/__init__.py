"""gefreg: curate a registry of scientific service images."""

__version__ = "0.1.0"
