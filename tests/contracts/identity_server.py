"""An App Service style managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER,
api-version 2019-08-01), so that azure-identity's real code path issues the tokens.

Tokens are random and remembered with their audience: the other contract servers
accept a token only for their own audience, as Azure does.
"""

from __future__ import annotations

import secrets
import threading
import time

import trustme

from .https import HttpsServer, Reply, Request

PATH = "/msi/token"


class IdentityServer:
    def __init__(self, ca: trustme.CA, client_id: str):
        self.header_secret = secrets.token_hex(16)
        self.client_id = client_id
        self.issued: dict[str, str] = {}  # token -> resource
        self.client_ids: list[str | None] = []  # the client_id each token request named (None: system-assigned)
        self._lock = threading.Lock()
        self.server = HttpsServer(ca, self._handle)
        self.endpoint = self.server.url + PATH

    def _handle(self, request: Request) -> Reply:
        if request.path != PATH or request.method != "GET":
            return Reply(404, {"error": "not_found"})
        if request.headers.get("x-identity-header") != self.header_secret:
            return Reply(401, {"error": "unauthorized", "error_description": "X-IDENTITY-HEADER missing or wrong"})
        if request.query.get("api-version") != "2019-08-01" or not request.query.get("resource"):
            return Reply(400, {"error": "invalid_request", "error_description": "api-version and resource are required"})
        self.client_ids.append(request.query.get("client_id"))
        if request.query.get("client_id", self.client_id) != self.client_id:
            return Reply(400, {"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity found "
                                                            "for specified ClientId/ResourceId/PrincipalId."})
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.issued[token] = request.query["resource"].rstrip("/")
        return Reply(200, {"access_token": token, "expires_on": str(int(time.time()) + 3600),
                           "resource": request.query["resource"], "token_type": "Bearer", "client_id": self.client_id})

    def audience_of(self, token: str | None) -> str | None:
        with self._lock:
            return self.issued.get(token or "")

    def close(self) -> None:
        self.server.close()
