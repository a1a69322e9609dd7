"""The notification domain: the last step of the reward saga, and the user's notice feed.

It turns other domains' events into notices for one user (``CharacterAcquired`` from character,
``ProfileUpdated`` from my), stores them in ``eco2_notification`` and pushes them live over SSE.
It publishes no events of its own. The shape follows :mod:`domains` (model, repository, live
fan-out, http, reactions, service).
"""
