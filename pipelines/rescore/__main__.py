"""``python -m pipelines.rescore …``: the rescoring job with settings from the environment."""

from pipelines.rescore.job import main

main()
