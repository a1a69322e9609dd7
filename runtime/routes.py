"""The public route table: which service answers which path, and whether it needs sign-in.

One table for the local gateway (:mod:`runtime.gateway`) and for Envoy in Kubernetes
(:mod:`cluster.k8s` renders it). A route is a path prefix matched segment by segment; a ``*``
segment matches any one segment (a job id). The most specific route wins: more segments first,
then more literal ones. ``/internal/...`` and ``/api/v1/admin/...`` match nothing: they are
never routed from outside.
"""

from __future__ import annotations

from dataclasses import dataclass

WILDCARD = "*"


@dataclass(frozen=True)
class Route:
    prefix: str
    service: str
    """A ``settings.services.<service>_url`` name."""
    sign_in: bool = True
    shed: bool = False
    """Its ``POST`` starts a job the service may refuse under load (503 ``overloaded``): the
    gateway throttles it adaptively (:mod:`runtime.throttle`)."""
    upload: bool = False
    """Its body is a file that streams on to the service, which counts its bytes itself (up to
    ``settings.image.max_bytes``); every other body is held to ``settings.api.max_body_bytes``."""

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.prefix.rstrip("/").split("/"))

    @property
    def literal(self) -> bool:
        return WILDCARD not in self.segments

    def matches(self, path: str) -> bool:
        parts = path.split("/")
        pattern = self.segments
        if len(parts) < len(pattern):
            return False
        return all(p in (WILDCARD, s) for p, s in zip(pattern, parts, strict=False))

    def regex(self) -> str:
        """The same match as an anchored regular expression (Envoy's ``safe_regex``)."""
        body = "/".join("[^/]+" if s == WILDCARD else _escape(s) for s in self.segments)
        return f"^{body}(/.*)?$"


def _escape(segment: str) -> str:
    return "".join(f"\\{c}" if c in r".^$*+?()[]{}|\\" else c for c in segment)


def _specificity(route: Route) -> tuple[int, int]:
    return len(route.segments), sum(s != WILDCARD for s in route.segments)


ROUTES: tuple[Route, ...] = tuple(
    sorted(
        (
            Route("/api/v1/auth", "auth", sign_in=False),
            # Commands that need a model go to Ray Serve; what a client only reads (job
            # streams, results, the category list) to the read side.
            Route("/api/v1/scan", "serve", shed=True),
            Route("/api/v1/scan/*/events", "streams"),
            Route("/api/v1/scan/*/result", "streams"),
            Route("/api/v1/scan/categories", "streams", sign_in=False),
            Route("/api/v1/scan/history", "readmodels"),
            Route("/api/v1/chat", "chat"),
            Route("/api/v1/chat/*/messages", "serve", shed=True),
            Route("/api/v1/chat/*/input", "serve"),
            Route("/api/v1/chat/*/events", "streams"),
            Route("/api/v1/chat/*/result", "streams"),
            Route("/api/v1/chat/search", "readmodels"),
            Route("/api/v1/character/catalog", "character", sign_in=False),
            Route("/api/v1/character/leaderboard", "readmodels"),
            Route("/api/v1/character", "character"),
            Route("/api/v1/users/me/page", "readmodels"),
            Route("/api/v1/users", "my"),
            Route("/api/v1/notifications", "notification"),
            Route("/api/v1/locations", "location", sign_in=False),
            # The presigned upload URL carries its own HMAC signature; objects are the local CDN.
            Route("/api/v1/images/upload", "image", sign_in=False, upload=True),
            Route("/api/v1/images/objects", "image", sign_in=False),
            Route("/api/v1/images", "image"),
        ),
        key=_specificity,
        reverse=True,
    )
)


def route_of(path: str) -> Route | None:
    return next((r for r in ROUTES if r.matches(path)), None)
