"""The notification domain publishes no events: a notice is where the reward saga ends.

Its database still has the kernel's ``event_store`` (every domain database does); nothing appends
to it. The events it reads are modelled, as far as it reads them, in
:mod:`domains.notification.model`.
"""

from __future__ import annotations

AGGREGATE_TYPE = "notification"
