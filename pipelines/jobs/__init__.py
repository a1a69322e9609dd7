"""Pipeline-neutral parts of a job pipeline (scan now, chat next).

Read in the order a job passes through them:

* :mod:`~pipelines.jobs.tasks` — the jobs one process runs: a task each, leases renewed, jobs
  whose runner died resumed from their last committed stage (the reconciler);
* :mod:`~pipelines.jobs.stage_calls` — calling a Ray Serve stage deployment with the retry
  policy every pipeline shares;
* :mod:`~pipelines.jobs.progress` — client progress events: published per job to Valkey, kept
  as a short history, fanned out to the processes that stream them;
* :mod:`~pipelines.jobs.streams` — the SSE stream of one job (history or snapshot first, live
  events, ``Last-Event-ID`` resume), served by the read side outside Ray Serve.

A pipeline brings its own state machine, runner, store and views; nothing here knows scan.
"""
