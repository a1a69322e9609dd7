"""The auth domain: sign-in (OAuth Kakao/Google/Naver, dev-login), ES256 tokens, sessions.

It issues the access/refresh tokens that ext-authz (``domains.authz``) checks at the gateway,
publishes its public keys as a JWKS, and owns the ``user`` aggregate (``UserRegistered``,
``UserSignedIn``). Its routes are public: ``/api/v1/auth/*`` needs no sign-in.
"""
