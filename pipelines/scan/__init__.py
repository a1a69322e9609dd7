"""The scan pipeline: vision → rules → answer → reward, durable per stage."""
