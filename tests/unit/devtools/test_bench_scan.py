"""The scan bench's per-process CPU table names each process of the stack apart."""

from devtools.bench.scan import cpu_ms_per_unit, process_label


def test_the_domain_host_processes_are_named_by_what_they_serve() -> None:
    streams = ["/v/python", "-m", "runtime.domain_host", "--serve", "streams=18871"]
    domains = ["/v/python", "-m", "runtime.domain_host", "--serve", "auth=1", "--serve", "my=2"]
    assert process_label(streams) == "runtime.domain_host[streams]"
    assert process_label(domains) == "runtime.domain_host[auth,my]"


def test_other_processes_keep_their_module_or_actor_name() -> None:
    relay = ["/v/python", "-m", "cdc.relay", "--events=scan=pipelines.scan.events:registry"]
    assert process_label(relay) == "cdc.relay"
    assert process_label(["ray::ServeReplica:scan:ScanIngress.handle_request"]) == (
        "ray::ServeReplica:scan:ScanIngress"
    )
    assert process_label(["/usr/bin/valkey-server", "127.0.0.1:1234"]) is None


def test_cpu_per_unit_keeps_what_counts_and_totals_everything() -> None:
    table = cpu_ms_per_unit({"a": 1.0, "b": 0.0}, {"a": 2.0, "b": 0.00005, "c": 0.5}, scans=100)
    assert table == {"a": 10.0, "c": 5.0, "total": 15.0}
