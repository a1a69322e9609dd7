"""Gateway routing table: segment-aware prefixes, longest first, public vs signed-in, and the
headers a client may not set."""

from __future__ import annotations

import pytest

from cluster.gateway import route_of, upstream_headers


@pytest.mark.parametrize(
    ("path", "service", "sign_in"),
    [
        ("/api/v1/auth/dev-login", "auth", False),
        ("/api/v1/scan", "serve", True),
        ("/api/v1/scan/0b1c/events", "serve", True),
        ("/api/v1/scan/categories", "serve", False),
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
