"""Disposal-rule knowledge of Eco²: taxonomy, situation tags, rules, characters and reward policy.

Plain Python over shipped JSON data (``data/``); nothing here imports Ray or touches the network.
Korean labels are data and are kept byte for byte (see ``docs/domain.md`` sections 3-6 and 8).
"""
