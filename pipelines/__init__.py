"""The job pipelines composed on Ray Serve (scan; chat will join it), their pipeline-neutral
parts (``jobs``), the read side of their jobs (``read_service``), the rules dataset and the
reward policy (``rules``)."""
