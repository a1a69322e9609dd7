"""Eco² model SIMULATOR: a local OpenAI-compatible endpoint for development and load tests.

It is not a real model. Answers are deterministic functions of the request (see README.md);
latency, faults and rate limits come from a :class:`~model_sim.config.SimConfig`.
"""
