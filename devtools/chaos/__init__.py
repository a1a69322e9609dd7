"""``eco2 chaos``: faults, model faults and overload against the running local stack under a
signed-in load, and an audit of what the users were promised afterwards.

* :mod:`.load` — careful virtual users (scans, chat messages) through the gateway: they resubmit a
  refused or dropped submit with the same idempotency key and follow each job's stream to its
  end across dropped connections, as a well-written client does;
* :mod:`.faults` — the ways a part of the stack is broken (SIGKILL, freeze, a Serve replica, an
  AI worker node, the model's faults), one table of scenarios;
* :mod:`.audit` — after the load: every accepted job final, none lost, no reward or ownership
  twice, no chat answer lost or twice, the read models equal to the event stores;
* :mod:`.run` — one scenario or all of them, the figures as JSON, exit 1 on a loss or a duplicate.
"""
