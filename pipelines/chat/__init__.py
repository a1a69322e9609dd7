"""The chat pipeline (domain.md §9): a posted message is classified (intent, and vision when an
image comes with it), the routed intents' tools run in parallel under their budgets and
policies, and the answer streams token by token in the 이코 persona; the conversation is the
chat domain's (``domains/chat``).

Read in order: ``app.py`` (the Serve ingress) → ``intake.py`` → ``machine.py`` (the steps and
transitions) → ``runner.py`` → ``intents.py`` (budgets, policies, routing) → ``gather.py`` →
``tools/`` → ``stages.py`` (TextStage, VisionStage) → ``store.py``; the read side is ``reads.py``
and ``views.py``.
"""
