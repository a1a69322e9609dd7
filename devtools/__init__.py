"""What measures and checks the project, never shipped with it: benchmarks and load generators
(:mod:`devtools.bench`), the offline manifest validator (:mod:`devtools.manifests`). No
production module imports this package (an import contract keeps it so); the ``eco2`` CLI
mounts its commands when it is installed (a development checkout)."""
