"""Gateway routing table: segment-aware prefixes, longest first, public vs signed-in, and the
headers a client may not set."""

from __future__ import annotations

import pytest

from runtime.gateway import upstream_headers
from runtime.routes import route_of


@pytest.mark.parametrize(
    ("path", "service", "sign_in"),
    [
        ("/api/v1/auth/dev-login", "auth", False),
        ("/api/v1/scan", "serve", True),
        ("/api/v1/scan/0b1c/events", "streams", True),
        ("/api/v1/scan/0b1c/result", "streams", True),
        ("/api/v1/scan/{job_id}/events", "streams", True),
        ("/api/v1/scan/categories", "streams", False),
        ("/api/v1/scan/history", "readmodels", True),
        ("/api/v1/character/catalog", "character", False),
        ("/api/v1/character/leaderboard", "readmodels", True),
        ("/api/v1/users/me", "my", True),
        ("/api/v1/users/me/page", "readmodels", True),
        ("/api/v1/users/me/characters", "my", True),
        ("/api/v1/notifications/stream", "notification", True),
        ("/api/v1/locations/centers", "location", False),
        ("/api/v1/images/scan", "image", True),
        ("/api/v1/images/upload/scan/2026/11/25/a.png", "image", False),
        ("/api/v1/images/objects/scan/2026/11/25/a.png", "image", False),
    ],
)
def test_paths_route_to_their_service(path: str, service: str, sign_in: bool) -> None:
    route = route_of(path)
    assert route is not None
    assert (route.service, route.sign_in) == (service, sign_in)


@pytest.mark.parametrize(
    "path",
    ["/internal/characters/onboard", "/api/v1/admin/scan/reprocess", "/api/v1/scanner", "/"],
)
def test_internal_admin_and_unknown_paths_are_not_routed(path: str) -> None:
    assert route_of(path) is None


def test_client_identity_headers_are_replaced_by_ext_authz_ones() -> None:
    headers = upstream_headers(
        {"X-User-ID": "mallory", "x-auth-provider": "forged", "Cookie": "s_access=t", "Host": "h"},
        {"x-user-id": "alice", "x-auth-provider": "dev"},
    )
    assert headers.getall("x-user-id") == ["alice"]
    assert headers.getall("x-auth-provider") == ["dev"]
    assert headers["cookie"] == "s_access=t"
    assert "host" not in headers


def test_public_routes_forward_no_identity_at_all() -> None:
    headers = upstream_headers({"X-User-ID": "mallory"}, {})
    assert "x-user-id" not in headers


def test_wildcard_routes_match_one_segment_and_envoy_gets_the_same_match() -> None:
    import re

    from runtime.routes import ROUTES

    events = next(r for r in ROUTES if r.prefix == "/api/v1/scan/*/events")
    for path, expected in [
        ("/api/v1/scan/0b1c/events", True),
        ("/api/v1/scan/0b1c/events/", True),
        ("/api/v1/scan/events", False),
        ("/api/v1/scan/a/b/events", False),
        ("/api/v1/scanner/0b1c/events", False),
    ]:
        assert events.matches(path) is expected, path
        assert (re.match(events.regex(), path) is not None) is expected, path
