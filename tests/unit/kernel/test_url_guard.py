from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import pytest

from eco2 import url_guard
from eco2.errors import InvalidInput, Unavailable

ALLOWED = ("cdn.eco2.local",)


def _lookup(table: dict[str, list[str]]) -> url_guard.Lookup:
    async def lookup(host: str) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return lookup


async def test_an_allow_listed_host_is_accepted_without_a_lookup() -> None:
    await url_guard.check("https://CDN.eco2.local/scan/a.jpg", ALLOWED, lookup=_lookup({}))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "http"),
        ("https://127.0.0.1/a.jpg", "IP address"),
        ("https://[::1]/a.jpg", "IP address"),
        ("http://169.254.169.254/latest/meta-data", "IP address"),
        ("https://localhost/a.jpg", "non-public"),
        ("https:///nohost.jpg", "no host"),
        ("https://a:b@cdn.eco2.local/a.jpg", "credentials"),
        ("https://cdn.eco2.local/" + "a" * 2100, "longer than"),
        ("http://[::1/x.jpg", "not a valid URL"),  # urlsplit's own ValueError: was a 500
        ("http://[evil]/x.jpg", "not a valid URL"),
    ],
)
async def test_unsafe_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        await url_guard.check(url, ALLOWED)
    assert refused.value.code == "invalid_image_url"


@pytest.mark.parametrize(
    "answers",
    [
        ["127.0.0.1"],
        ["10.0.0.1"],
        ["169.254.169.254"],
        ["::1"],
        ["fe80::1"],
        ["::ffff:10.0.0.1"],
        ["64:ff9b::a00:1"],
        ["100.64.0.1"],
        ["224.0.0.1"],
        ["93.184.216.34", "10.0.0.1"],
    ],
)
async def test_a_name_resolving_to_any_non_public_address_is_refused(answers: list[str]) -> None:
    with pytest.raises(InvalidInput, match="non-public") as refused:
        await url_guard.check(
            "https://images.example/a.jpg", ALLOWED, lookup=_lookup({"images.example": answers})
        )
    assert refused.value.code == "invalid_image_url"


async def test_a_name_resolving_only_to_public_addresses_is_accepted() -> None:
    table = {"images.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]}
    await url_guard.check("https://images.example/a.jpg", ALLOWED, lookup=_lookup(table))


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(InvalidInput, match="does not resolve"):
        await url_guard.check("https://nowhere.example/a.jpg", ALLOWED, lookup=_lookup({}))


async def test_a_resolver_failing_for_now_is_retriable() -> None:
    async def failing(host: str) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(Unavailable) as failed:
        await url_guard.check("https://images.example/a.jpg", ALLOWED, lookup=failing)
    assert failed.value.retriable


async def test_the_policy_sees_host_and_address() -> None:
    seen: list[tuple[str, str]] = []

    def policy(host: str, address: url_guard.IPAddress) -> bool:
        seen.append((host, str(address)))
        return True

    table = {"images.test": ["127.0.0.1"]}
    await url_guard.check("http://images.test/a.png", (), lookup=_lookup(table), policy=policy)
    assert seen == [("images.test", "127.0.0.1")]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),  # IPv4-mapped: judged by the IPv4 address inside
        ("::ffff:127.0.0.1", False),
        ("2002:0808:0808::1", True),  # 6to4 of a public address
        ("2002:0a00:0001::1", False),  # 6to4 of 10.0.0.1
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("ff02::1", False),
    ],
)
def test_is_public(address: str, public: bool) -> None:
    assert url_guard.is_public(ipaddress.ip_address(address)) is public
