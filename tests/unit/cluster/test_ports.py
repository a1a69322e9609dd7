from __future__ import annotations

import pytest

from cluster import ports


class _FakeSocket:
    def __init__(self, port: int) -> None:
        self.port = port
        self.closed = False

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def close(self) -> None:
        self.closed = True


def test_pick_ports_skips_forbidden_and_excluded_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([5432, 41001, 6379, 9092, 41002, 8265, 10001, 41003, 41004])
    handed: list[_FakeSocket] = []

    def fake_bind(_port: int) -> _FakeSocket:
        handed.append(_FakeSocket(next(offered)))
        return handed[-1]

    monkeypatch.setattr(ports, "_bind", fake_bind)

    picked = ports.pick_ports(3, exclude=frozenset({41002}))

    assert picked == [41001, 41003, 41004]
    assert all(sock.closed for sock in handed)


def test_forbidden_ports_cover_the_standard_servers() -> None:
    assert {5432, 6379, 5672, 9092, 8265, 10001} <= ports.FORBIDDEN_PORTS


def test_pick_port_range_never_spans_a_forbidden_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "is_port_free", lambda _port: True)
    monkeypatch.setattr(ports, "_RANGE_LOW", 9995)
    monkeypatch.setattr(ports, "_RANGE_HIGH", 10012)

    for _ in range(50):
        first = ports.pick_port_range(5)
        assert 10001 not in range(first, first + 5)


def test_pick_port_range_gives_up_with_a_retriable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "is_port_free", lambda _port: False)

    with pytest.raises(ports.PortError) as failure:
        ports.pick_port_range(10, attempts=3)
    assert failure.value.retriable is True
