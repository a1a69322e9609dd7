"""Bounded contexts, one package each, with their own database (architecture.md §3, §5).

Every domain package has the same shape, so a reader knows where a thing lives:

``domains/<name>/``
    ``model.py``      the domain's rules: plain Python (stdlib + pydantic + ``eco2.events``);
                      no FastAPI, asyncpg, Kafka or Ray here (import-linter enforces it).
    ``events.py``     its events (``eco2.events.Event`` subclasses, past tense, ``schema_version``)
                      and ``AGGREGATE_TYPE``; they reach Kafka as ``outbox.event.<aggregate type>``.
    ``repository.py`` the adapter on its own database (asyncpg); a state change and its events are
                      written in ONE transaction (``eco2.eventstore.append``, same connection).
    ``http.py``       its FastAPI routes; errors are ``eco2.errors`` types, mapped by
                      ``eco2.http.install_error_handlers``; the caller is ``eco2.http.CurrentUser``
                      (the gateway sets ``X-User-ID`` after ext-authz; services never parse tokens).
    ``reactions.py``  its event reactions: ``cdc.consumers.ConsumerSpec``\\ s whose handlers write
                      their effect (and any new events) on the inbox transaction's connection.
    ``service.py``    the composition root: ``create_app(settings) -> FastAPI`` (the lifespan
                      opens the domain's own pool, sized by ``settings.services.pool_max``, and
                      closes it) and ``consumers(settings) -> list[ConsumerSpec]``.
    ``migrations/``   ``NNN_name.sql``, applied to ``eco2_<name>`` by ``eco2.migrations``.

Domains never import each other (an independence contract); they learn from events or call each
other's HTTP API (``settings.services.<name>_url``). ``runtime.domain_host`` runs them: one
process per domain in Kubernetes, co-hosted in one process by the local launcher.
"""
