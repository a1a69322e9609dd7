"""WAL to Kafka relay, consumer runtime, projectors."""
