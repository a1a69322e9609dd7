"""ext-authz: the gateway's token check (Envoy HTTP ``ext_authz`` compatible).

It verifies the access tokens auth issues (ES256, auth's JWKS, Valkey blacklist) and answers the
gateway with the caller's identity (``x-user-id``, ``x-auth-provider``). No database, no events;
it never calls auth except to fetch the JWKS.
"""
