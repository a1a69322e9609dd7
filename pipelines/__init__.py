"""Scan and chat pipelines: rules dataset and retrieval, stage logic, reward policy, app graphs."""
