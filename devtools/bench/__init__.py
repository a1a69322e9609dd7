"""``eco2 bench …``: each benchmark prints JSON with its figures, the command that made them and
the machine (:mod:`devtools.bench.machine`). Load generators only target 127.0.0.1."""
