"""Bounded contexts, one package each, each with its own database."""
