"""The read side (CQRS): projectors that build read models in Valkey from the event stream, the
read API that answers from them, and the rebuild from the event stores.

:mod:`~cdc.readmodels.projections` (one module per read model), :mod:`~cdc.readmodels.api`
(the HTTP service), :mod:`~cdc.consumers.rebuild` (``eco2 cdc rebuild``),
:mod:`~cdc.readmodels.store` (Valkey helpers).
"""
