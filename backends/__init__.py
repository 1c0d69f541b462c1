"""Backends: the only modules of portanet that import a concrete array library."""
