"""Batch rescoring of stored scans (architecture.md §6c, docs/rescoring.md).

Reruns the chosen stages of completed scans through the same stage logic and model client as
Ray Serve, under a request/token budget, records each outcome in ``scan_rescorings`` and appends
``ScanRescored`` where the outcome changed.

Modules, in the order the data flows:

* :mod:`.options` — what a run is (stages, model, rules version, selection) and its run id;
* :mod:`.store` — the candidate scans, the rescoring rows and their events (asyncpg);
* :mod:`.budget` — the token bucket and the 429 back-off every model call goes through;
* :mod:`.rescorer` — one scan: the stage calls and the state machine's transition, no I/O of
  its own besides the model client;
* :mod:`.worker` — one batch of scan ids, start to commit (asyncio, no Ray);
* :mod:`.ray_job` — the thin Ray Data shell around the worker (the only module importing Ray);
* :mod:`.report` — the Markdown and PNG report;
* :mod:`.cli` — ``eco2 rescore`` and ``python -m pipelines.rescore`` (the RayJob's entry point).
"""
