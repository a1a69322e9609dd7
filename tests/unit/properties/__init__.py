"""Property tests (``hypothesis``) of the parsers: model output, events on their way through the
outbox and the WAL, and the resume ids and cursors of streams and pages."""
