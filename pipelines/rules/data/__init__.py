"""Shipped JSON data of pipelines.rules (a package only so wheels include the files)."""
