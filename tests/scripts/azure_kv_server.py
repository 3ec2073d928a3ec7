#!/usr/bin/env python3
"""An Azure Key Vault (secrets) and its Microsoft identity platform token
endpoint, on loopback over TLS, written from the published references: the Key
Vault REST API (https://learn.microsoft.com/rest/api/keyvault/secrets/: set, get,
update, delete, get/purge/recover deleted, list with nextLink; error bodies
{"error": {"code", "message"}}; soft delete; 401 challenges naming the
authority and resource) and the OAuth 2.0 client credentials grant
(https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow,
with the OpenID configuration document MSAL reads). No emulator of Key Vault
installs on this machine, so the tests run the broker's `azure-key-vault`
provider against this one, and check it with the official
`azure-keyvault-secrets` and `azure-identity` clients from PyPI.

Usage: azure_kv_server.py DIR
  - clients are the lines `TENANT CLIENT_ID CLIENT_SECRET` of DIR/clients, read
    again on every login;
  - it makes a CA (DIR/ca.pem) and a certificate for 127.0.0.1 signed by it;
  - once listening, the port is written to DIR/port.
Test-only control, outside the API:
  POST /_test/faults {"status": 429, "times": 2, "retry_after": 1, "method": "PUT",
      "path": "/secrets"} answers the next `times` requests (of that method and
      path prefix, if given) with that status;
  POST /_test/config {"token_ttl": 3600, "deleting_ms": 0, "purge_protection": false}
      (a deletion takes `deleting_ms` to finish, as on the real service);
  POST /_test/revoke makes every token issued so far invalid;
  GET /_test/stats answers {"logins": N, "secrets": N, "deleted": N}.
"""

import base64
import json
import re
import secrets as random
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

from test_server import Faults, JsonHandler, serve

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
API_VERSION = re.compile(r"^(\d+\.\d+|\d{4}-\d{2}-\d{2})(-preview(\.\d+)?)?$")
MAX_VALUE = 25 * 1024
RESOURCE = "https://vault.azure.net"

lock = threading.Lock()
# lower-case name -> {"name", "versions": [bundle without id]}
live = {}
# lower-case name -> {"secret", "deleted", "ready_at"}
deleted = {}
tokens = {}  # token -> expiry (monotonic)
faults = Faults()
state = {
    "token_ttl": 3600,
    "deleting_ms": 0,
    "purge_protection": False,
    "logins": 0,
}


def error(code, name, message, inner=None):
    body = {"error": {"code": name, "message": message}}
    if inner:
        body["error"]["innererror"] = {"code": inner}
    return code, body


def not_found(name):
    return error(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently "
        "deleted this secret you may be able to recover it using the correct recovery "
        "command.",
    )


def unix():
    return int(time.time())


class Handler(JsonHandler):
    content_type = "application/json; charset=utf-8"

    def base(self):
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def fault(self, method, path):
        injected = faults.take(method, path)
        if not injected:
            return None
        code, headers = injected
        names = {429: "Throttled", 409: "Conflict", 503: "ServiceUnavailable"}
        _, body = error(code, names.get(code, "InternalServerError"), f"injected {code}")
        return code, body, headers

    def handle_any(self, method):
        url = urlsplit(self.path)
        raw = self.raw_body()
        if url.path.startswith("/_test/"):
            return self.control(method, url.path, raw)
        injected = self.fault(method, url.path)
        if injected:
            return self.answer(*injected)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) >= 2 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return self.answer(200, self.openid(parts[0]))
        if parts[1:] == ["oauth2", "v2.0", "token"]:
            if method != "POST":
                return self.answer(405, {"error": "invalid_request"})
            return self.answer(*self.token(parts[0], raw))
        # The vault.
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if not API_VERSION.match(query.get("api-version", "")):
            return self.answer(
                *error(400, "BadParameter", "The request URI contains an invalid or missing api-version.")
            )
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with lock:
            valid = token in tokens and tokens[token] > time.monotonic()
        if not valid:
            tenant = self.first_tenant()
            challenge = (
                f'Bearer authorization="{self.base()}/{tenant}", resource="{RESOURCE}"'
            )
            message = (
                "AKV10000: Request is missing a Bearer or PoP token."
                if token is None
                else "AKV10022: Invalid audience or expired token."
            )
            return self.answer(
                *error(401, "Unauthorized", message), headers=[("WWW-Authenticate", challenge)]
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.answer(*error(400, "BadParameter", "The request body is not JSON."))
        with lock:
            code, out = self.route(method, parts, query, body)
        self.answer(code, out)

    def first_tenant(self):
        for line in open(CLIENTS).read().splitlines():
            if line.split():
                return line.split()[0]
        return "common"

    def openid(self, tenant):
        base = f"{self.base()}/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"{base}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        }

    def token(self, tenant, raw):
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "AADSTS70003: The app requested an unsupported grant type.",
            }
        clients = [line.split() for line in open(CLIENTS).read().splitlines() if line.split()]
        known = [c for c in clients if c[0] == tenant and c[1] == form.get("client_id")]
        if not known:
            return 400, {
                "error": "unauthorized_client",
                "error_description": f"AADSTS700016: Application with identifier "
                f"'{form.get('client_id')}' was not found in the directory '{tenant}'.",
                "error_codes": [700016],
            }
        if form.get("client_secret") != known[0][2]:
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the "
                "secret being sent in the request is the client secret value, not the client "
                "secret ID.",
                "error_codes": [7000215],
            }
        scopes = form.get("scope", "").split()
        if scopes != [f"{RESOURCE}/.default"]:
            return 400, {
                "error": "invalid_scope",
                "error_description": f"AADSTS70011: The provided value for the input parameter "
                f"'scope' is not valid: {form.get('scope')!r}.",
            }
        access = random.token_urlsafe(32)
        with lock:
            ttl = state["token_ttl"]
            tokens[access] = time.monotonic() + ttl
            state["logins"] += 1
        return 200, {
            "token_type": "Bearer",
            "expires_in": ttl,
            "ext_expires_in": ttl,
            "access_token": access,
        }

    def control(self, method, path, raw):
        body = json.loads(raw) if raw else {}
        with lock:
            if path == "/_test/faults" and method == "POST":
                faults.set(body)
            elif path == "/_test/config" and method == "POST":
                state.update({k: body[k] for k in ("token_ttl", "deleting_ms", "purge_protection") if k in body})
            elif path == "/_test/revoke" and method == "POST":
                tokens.clear()
            elif path == "/_test/stats":
                return self.answer(
                    200, {"logins": state["logins"], "secrets": len(live), "deleted": len(deleted)}
                )
            else:
                return self.answer(404, {})
        self.answer(200, {})

    # Key Vault ---------------------------------------------------------------

    def bundle(self, secret, version=None):
        v = secret["versions"][-1] if version is None else version
        out = {
            "value": v["value"],
            "id": f"{self.base()}/secrets/{secret['name']}/{v['version']}",
            "attributes": dict(v["attributes"]),
        }
        for key in ("contentType", "tags"):
            if v.get(key) is not None:
                out[key] = v[key]
        return out

    def item(self, secret):
        v = secret["versions"][-1]
        out = {"id": f"{self.base()}/secrets/{secret['name']}", "attributes": dict(v["attributes"])}
        for key in ("contentType", "tags"):
            if v.get(key) is not None:
                out[key] = v[key]
        return out

    def deleted_bundle(self, entry, with_value=False):
        out = self.bundle(entry["secret"])
        if not with_value:
            out.pop("value", None)
        name = entry["secret"]["name"]
        out.update(
            {
                "recoveryId": f"{self.base()}/deletedsecrets/{name}",
                "deletedDate": entry["deleted"],
                "scheduledPurgeDate": entry["deleted"] + 90 * 86400,
            }
        )
        return out

    def route(self, method, parts, query, body):
        if parts == ["secrets"] and method == "GET":
            return self.list(query)
        if len(parts) >= 2 and parts[0] in ("secrets", "deletedsecrets"):
            name = parts[1]
            if not NAME.match(name):
                return error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
            key = name.lower()
            rest = parts[2:]
            if parts[0] == "deletedsecrets":
                return self.deleted_route(method, key, name, rest)
            secret = live.get(key)
            if method == "PUT" and not rest:
                return self.set(key, name, body)
            if method == "GET" and rest == ["versions"]:
                if not secret:
                    return not_found(name)
                items = []
                for v in secret["versions"]:
                    item = {"id": f"{self.base()}/secrets/{secret['name']}/{v['version']}",
                            "attributes": dict(v["attributes"])}
                    if v.get("tags") is not None:
                        item["tags"] = v["tags"]
                    items.append(item)
                return 200, {"value": items, "nextLink": None}
            if method == "GET" and len(rest) <= 1:
                if not secret:
                    return not_found(name)
                version = self.version(secret, rest[0] if rest else "")
                if version is None:
                    return not_found(name)
                if not version["attributes"].get("enabled", True):
                    return error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
                return 200, self.bundle(secret, version)
            if method == "PATCH" and len(rest) <= 1:
                if not secret:
                    return not_found(name)
                version = self.version(secret, rest[0] if rest else "")
                if version is None:
                    return not_found(name)
                for key_ in ("contentType", "tags"):
                    if body and key_ in body:
                        version[key_] = body[key_]
                if body and isinstance(body.get("attributes"), dict):
                    version["attributes"].update(body["attributes"])
                version["attributes"]["updated"] = unix()
                out = self.bundle(secret, version)
                out.pop("value")
                return 200, out
            if method == "DELETE" and not rest:
                if not secret:
                    return not_found(name)
                del live[key]
                ready = time.monotonic() + state["deleting_ms"] / 1000
                deleted[key] = {"secret": secret, "deleted": unix(), "ready_at": ready}
                return 200, self.deleted_bundle(deleted[key])
        return error(404, "NotFound", "The requested resource was not found.")

    def version(self, secret, version):
        if version in ("", None):
            return secret["versions"][-1]
        for v in secret["versions"]:
            if v["version"] == version:
                return v
        return None

    def set(self, key, name, body):
        if key in deleted:
            if deleted[key]["ready_at"] > time.monotonic():
                return error(
                    409,
                    "Conflict",
                    f"Secret {name} is currently being deleted.",
                    "ObjectIsBeingDeleted",
                )
            return error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            return error(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(body["value"].encode("utf-8")) > MAX_VALUE:
            return error(400, "BadParameter", f"The secret value exceeds the maximum size of {MAX_VALUE} bytes.")
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, dict) or len(tags) > 15):
            return error(400, "BadParameter", "Tags must be an object of at most 15 string values.")
        now = unix()
        attributes = {
            "enabled": True,
            "created": now,
            "updated": now,
            "recoveryLevel": "Recoverable" if state["purge_protection"] else "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        for k in ("enabled", "exp", "nbf"):
            if isinstance(body.get("attributes"), dict) and k in body["attributes"]:
                attributes[k] = body["attributes"][k]
        version = {
            "version": uuid.uuid4().hex,
            "value": body["value"],
            "contentType": body.get("contentType"),
            "tags": tags,
            "attributes": attributes,
        }
        secret = live.setdefault(key, {"name": name, "versions": []})
        secret["versions"].append(version)
        return 200, self.bundle(secret)

    def deleted_route(self, method, key, name, rest):
        entry = deleted.get(key)
        if entry is None or entry["ready_at"] > time.monotonic():
            if method == "DELETE" and entry is not None:
                return error(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
            return error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if method == "GET" and not rest:
            return 200, self.deleted_bundle(entry)
        if method == "DELETE" and not rest:
            if state["purge_protection"]:
                return error(
                    403,
                    "Forbidden",
                    "Operation 'purge' is not allowed because purge protection is enabled for "
                    f"this vault. Key Vault service will automatically purge it after the "
                    f"retention period has passed. Vault: {self.base()}",
                )
            del deleted[key]
            return 204, None
        if method == "POST" and rest == ["recover"]:
            del deleted[key]
            live[key] = entry["secret"]
            out = self.bundle(entry["secret"])
            out.pop("value")
            return 200, out
        return error(404, "NotFound", "The requested resource was not found.")

    def list(self, query):
        try:
            top = int(query.get("maxresults", "25"))
        except ValueError:
            top = 0
        if not 1 <= top <= 25:
            return error(400, "BadParameter", "invalid maxresults: it must be between 1 and 25")
        start = 0
        if "$skiptoken" in query:
            try:
                start = int(base64.urlsafe_b64decode(query["$skiptoken"]).decode())
            except ValueError:
                return error(400, "BadParameter", "invalid $skiptoken")
        names = sorted(live)
        page = names[start : start + top]
        next_link = None
        if start + top < len(names):
            token = base64.urlsafe_b64encode(str(start + top).encode()).decode()
            next_link = (
                f"{self.base()}/secrets?api-version={query['api-version']}"
                f"&$skiptoken={token}&maxresults={top}"
            )
        return 200, {"value": [self.item(live[n]) for n in page], "nextLink": next_link}


if __name__ == "__main__":
    import os

    DIR = sys.argv[1]
    CLIENTS = os.path.join(DIR, "clients")
    serve(Handler, DIR, tls_ca_name="azure test CA")
