"""The shared kernel of Eco² on Ray.

Settings, event envelope, telemetry, database and Kafka helpers, and the CLI.

Kept small and free of domain knowledge; every other package may import it, it imports none of them
(except the CLI, which is an entry point and wires commands lazily).
"""
