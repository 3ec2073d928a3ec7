"""A Google Cloud Secret Manager and its OAuth 2.0 token endpoint, on loopback
over TLS, written from the published references: the Secret Manager REST API v1
(https://cloud.google.com/secret-manager/docs/reference/rest: secrets create,
get, patch with updateMask, delete, list with page tokens; versions addVersion,
get, access with the payload's CRC32C, enable/disable/destroy; the `latest`
alias; google.rpc.Status errors) and service account authorization (the JWT
bearer grant of RFC 7523 at the token URI, and self-signed JWTs as Google's
client libraries send them). No emulator of Secret Manager installs on this
machine, so the tests run the broker's `gcp-secret-manager` provider against
this one, and check it with the official `google-cloud-secret-manager` client
over its REST transport.

Usage: gcp_sm_server.py DIR

DIR/keys/*.json are the service account keys whose assertions it accepts (read
at each request), DIR/tokens the plain bearer tokens it accepts (one per line).
At start it creates a service account, as Google's console does, and writes its
key to DIR/keys/secret-broker.json (project om-test-project), its CA to
DIR/ca.pem and then its port to DIR/port. The token URI is
https://localhost:PORT/token (another origin than the API, as on Google).

Test-only control, outside the API:
  POST /_test/faults {"status": 429, "times": 2, "retry_after": 1, "method": "POST",
                      "path": "/v1/..."}
  POST /_test/config {"token_ttl": 3600}
  POST /_test/revoke {}   every access token issued so far stops working
  POST /_test/corrupt {"secret": "name"}   flips a bit of the latest version's
                                             stored data, keeping its CRC32C
  GET  /_test/stats   {"logins", "secrets", "versions"}
"""

import base64
import glob
import json
import re
import secrets as random
import sys
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote, urlsplit

import google_crc32c
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from test_server import Faults, JsonHandler, serve

SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
PROJECT = re.compile(r"^[a-z0-9-]{1,30}$")
PROJECT_NUMBER = "614298051735"
MAX_PAYLOAD = 64 * 1024
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_JWT_LIFE = 3600
SKEW = 300

lock = threading.Lock()
# secret id -> {"secret": resource without name, "versions": [version dicts]}
store = {}
tokens = {}  # access token -> expiry (monotonic)
faults = Faults()
state = {"token_ttl": 3600, "logins": 0}


def status(code, name, message):
    return code, {"error": {"code": code, "message": message, "status": name}}


def now_text():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def crc32c(data):
    return google_crc32c.value(data)


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def keys():
    """client_email -> (key id, public key) of every service account key in DIR/keys."""
    out = {}
    for path in glob.glob(f"{DIR}/keys/*.json"):
        with open(path) as f:
            info = json.load(f)
        private = serialization.load_pem_private_key(info["private_key"].encode(), None)
        out[info["client_email"]] = (info.get("private_key_id"), private.public_key())
    return out


def verify_jwt(jwt):
    """The claims of a JWT signed (RS256) by a known service account key, or an
    error text."""
    parts = jwt.split(".")
    if len(parts) != 3:
        return None, "not a JWT"
    try:
        header = json.loads(b64url(parts[0]))
        claims = json.loads(b64url(parts[1]))
        signature = b64url(parts[2])
    except ValueError:
        return None, "the JWT does not decode"
    if header.get("alg") != "RS256":
        return None, "the JWT is not RS256"
    known = keys().get(claims.get("iss"))
    if not known:
        return None, "Invalid JWT: the issuer is no service account here"
    key_id, public = known
    if "kid" in header and header["kid"] != key_id:
        return None, "Invalid JWT Signature."
    try:
        public.verify(
            signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:
        return None, "Invalid JWT Signature."
    t = time.time()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return None, "Invalid JWT: iat and exp are required"
    if iat > t + SKEW or exp < t - SKEW or exp - iat > MAX_JWT_LIFE:
        return None, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
    return claims, None


class Handler(JsonHandler):
    content_type = "application/json; charset=UTF-8"

    def base(self, host="127.0.0.1"):
        return f"https://{host}:{self.server.server_address[1]}"

    def handle_any(self, method):
        url = urlsplit(self.path)
        raw = self.raw_body()
        if url.path.startswith("/_test/"):
            return self.control(method, url.path, raw)
        injected = faults.take(method, url.path)
        if injected:
            code, headers = injected
            names = {429: "RESOURCE_EXHAUSTED", 409: "ABORTED", 503: "UNAVAILABLE"}
            return self.answer(
                *status(code, names.get(code, "INTERNAL"), f"injected {code}"), headers=headers
            )
        if url.path == "/token":
            if method != "POST":
                return self.answer(405, {"error": "invalid_request"})
            return self.answer(*self.token(raw))
        if not self.authorized():
            return self.answer(
                *status(
                    401,
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                ),
                headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')],
            )
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.answer(*status(400, "INVALID_ARGUMENT", "Invalid JSON payload received."))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with lock:
            code, out = self.route(method, unquote(url.path), query, body)
        self.answer(code, out)

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        token = auth[len("Bearer "):]
        with lock:
            if tokens.get(token, 0) > time.monotonic():
                return True
        plain = [t.strip() for t in open(f"{DIR}/tokens").read().splitlines() if t.strip()]
        if token in plain:
            return True
        # A self-signed JWT, as the client libraries send for service accounts.
        claims, _ = verify_jwt(token)
        return claims is not None

    def token(self, raw):
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != JWT_BEARER:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type: " + form.get("grant_type", ""),
            }
        claims, problem = verify_jwt(form.get("assertion", ""))
        if claims is None:
            return 400, {"error": "invalid_grant", "error_description": problem}
        # Google's token endpoint takes its own URL as the audience (what the
        # client libraries write whatever the token URI), or this server's.
        if claims.get("aud") not in (GOOGLE_TOKEN_URL, f"{self.base('localhost')}/token"):
            return 400, {
                "error": "invalid_grant",
                "error_description": "Invalid JWT: Failed audience check.",
            }
        if CLOUD_PLATFORM not in claims.get("scope", "").split():
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."}
        access = "ya29." + random.token_urlsafe(48)
        with lock:
            ttl = state["token_ttl"]
            tokens[access] = time.monotonic() + ttl
            state["logins"] += 1
        return 200, {"access_token": access, "expires_in": ttl, "token_type": "Bearer"}

    def control(self, method, path, raw):
        body = json.loads(raw) if raw else {}
        with lock:
            if path == "/_test/faults" and method == "POST":
                faults.set(body)
            elif path == "/_test/config" and method == "POST":
                state.update({k: body[k] for k in ("token_ttl",) if k in body})
            elif path == "/_test/revoke" and method == "POST":
                tokens.clear()
            elif path == "/_test/corrupt" and method == "POST":
                latest = store[body["secret"]]["versions"][-1]
                data = bytearray(latest["data"])
                data[0] ^= 1
                latest["data"] = bytes(data)
            elif path == "/_test/stats":
                versions = sum(len(e["versions"]) for e in store.values())
                return self.answer(
                    200, {"logins": state["logins"], "secrets": len(store), "versions": versions}
                )
            else:
                return self.answer(404, {})
        self.answer(200, {})

    # Secret Manager ----------------------------------------------------------

    def route(self, method, path, query, body):
        m = re.match(r"^/v1/projects/([^/]+)/secrets(?:/([^/:]+))?(?::(addVersion))?"
                     r"(?:/versions(?:/([^/:]+))?(?::(access|enable|disable|destroy))?)?$", path)
        if not m:
            return status(404, "NOT_FOUND", f"The requested URL {path} was not found.")
        project, secret_id, add, version, verb = m.groups()
        if not PROJECT.match(project):
            return status(400, "INVALID_ARGUMENT", f"Invalid project [{project}].")
        if secret_id is None:
            if method == "GET":
                return self.list(query)
            if method == "POST":
                return self.create(query.get("secretId", ""), body or {})
            return status(405, "METHOD_NOT_ALLOWED", "method not allowed")
        resource = f"projects/{PROJECT_NUMBER}/secrets/{secret_id}"
        entry = store.get(secret_id)
        if entry is None:
            return status(404, "NOT_FOUND", f"Secret [{resource}] not found or has no versions.")
        if add:
            if method != "POST":
                return status(405, "METHOD_NOT_ALLOWED", "method not allowed")
            return self.add_version(secret_id, entry, body or {})
        if version is not None or path.endswith("/versions"):
            return self.version(method, secret_id, entry, version, verb)
        if method == "GET":
            return 200, self.secret(secret_id)
        if method == "PATCH":
            return self.patch(secret_id, entry, query, body or {})
        if method == "DELETE":
            etag = query.get("etag")
            if etag and etag != entry["secret"]["etag"]:
                return status(409, "ABORTED", "The etag provided does not match the secret.")
            del store[secret_id]
            return 200, {}
        return status(405, "METHOD_NOT_ALLOWED", "method not allowed")

    def secret(self, secret_id):
        return {"name": f"projects/{PROJECT_NUMBER}/secrets/{secret_id}", **store[secret_id]["secret"]}

    def check_metadata(self, secret):
        for key, value in (secret.get("labels") or {}).items():
            if not re.match(r"^[a-z][a-z0-9_-]{0,62}$", key) or not re.match(
                r"^[a-z0-9_-]{0,63}$", str(value)
            ):
                return f"Invalid label [{key}]."
        notes = secret.get("annotations") or {}
        size = sum(len(k) + len(str(v)) for k, v in notes.items())
        if size > 16 * 1024:
            return "The total size of annotations must be less than 16KiB."
        for key in notes:
            name = key.split("/", 1)[-1]
            if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$", name):
                return f"Invalid annotation key [{key}]."
        return None

    def create(self, secret_id, body):
        if not SECRET_ID.match(secret_id):
            return status(
                400,
                "INVALID_ARGUMENT",
                "Secret ID must be 1-255 characters of letters, numbers, dashes and underscores.",
            )
        if secret_id in store:
            return status(
                409,
                "ALREADY_EXISTS",
                f"Secret [projects/{PROJECT_NUMBER}/secrets/{secret_id}] already exists.",
            )
        replication = body.get("replication") or {}
        if "automatic" not in replication and "userManaged" not in replication:
            return status(400, "INVALID_ARGUMENT", "Secret.replication is required.")
        problem = self.check_metadata(body)
        if problem:
            return status(400, "INVALID_ARGUMENT", problem)
        resource = {
            "replication": replication,
            "createTime": now_text(),
            "etag": f'"{random.token_hex(8)}"',
        }
        for field in ("labels", "annotations"):
            if body.get(field):
                resource[field] = body[field]
        store[secret_id] = {"secret": resource, "versions": []}
        return 200, self.secret(secret_id)

    def patch(self, secret_id, entry, query, body):
        mask = [f for f in query.get("updateMask", "").split(",") if f]
        if not mask:
            return status(400, "INVALID_ARGUMENT", "update_mask is required.")
        if body.get("etag") and body["etag"] != entry["secret"]["etag"]:
            return status(409, "ABORTED", "The etag provided does not match the secret.")
        problem = self.check_metadata(body)
        if problem:
            return status(400, "INVALID_ARGUMENT", problem)
        for field in mask:
            if field not in ("labels", "annotations", "versionAliases", "expireTime", "ttl", "topics"):
                return status(400, "INVALID_ARGUMENT", f"Invalid update_mask path [{field}].")
            if body.get(field):
                entry["secret"][field] = body[field]
            else:
                entry["secret"].pop(field, None)
        entry["secret"]["etag"] = f'"{random.token_hex(8)}"'
        return 200, self.secret(secret_id)

    def version_resource(self, secret_id, v):
        out = {
            "name": f"projects/{PROJECT_NUMBER}/secrets/{secret_id}/versions/{v['number']}",
            "createTime": v["createTime"],
            "state": v["state"],
            "replicationStatus": {"automatic": {}},
            "etag": v["etag"],
            "clientSpecifiedPayloadChecksum": v["client_checksum"],
        }
        if v["state"] == "DESTROYED":
            out["destroyTime"] = v["destroyTime"]
        return out

    def add_version(self, secret_id, entry, body):
        payload = body.get("payload") or {}
        try:
            data = base64.b64decode(payload.get("data", ""), validate=True)
        except ValueError:
            return status(400, "INVALID_ARGUMENT", "Invalid value at 'payload.data' (TYPE_BYTES).")
        if len(data) > MAX_PAYLOAD:
            return status(400, "INVALID_ARGUMENT", "Secret payload data cannot be larger than 64KiB.")
        given = payload.get("dataCrc32c")
        if given is not None and int(given) != crc32c(data):
            return status(400, "INVALID_ARGUMENT", "Checksum mismatch: the payload's data_crc32c does not match its data.")
        number = len(entry["versions"]) + 1
        version = {
            "number": number,
            "data": data,
            "crc32c": crc32c(data),
            "state": "ENABLED",
            "createTime": now_text(),
            "etag": f'"{random.token_hex(8)}"',
            "client_checksum": given is not None,
        }
        entry["versions"].append(version)
        return 200, self.version_resource(secret_id, version)

    def find_version(self, entry, version):
        if version == "latest":
            return entry["versions"][-1] if entry["versions"] else None
        if not version.isdigit():
            return None
        number = int(version)
        return entry["versions"][number - 1] if 0 < number <= len(entry["versions"]) else None

    def version(self, method, secret_id, entry, version, verb):
        resource = f"projects/{PROJECT_NUMBER}/secrets/{secret_id}"
        if version is None:
            if method != "GET":
                return status(405, "METHOD_NOT_ALLOWED", "method not allowed")
            versions = [self.version_resource(secret_id, v) for v in reversed(entry["versions"])]
            return 200, {"versions": versions, "totalSize": len(versions)}
        found = self.find_version(entry, version)
        if found is None:
            return status(404, "NOT_FOUND", f"Secret Version [{resource}/versions/{version}] not found.")
        name = f"{resource}/versions/{found['number']}"
        if verb is None and method == "GET":
            return 200, self.version_resource(secret_id, found)
        if verb == "access" and method == "GET":
            if found["state"] != "ENABLED":
                return status(
                    400, "FAILED_PRECONDITION", f"Secret Version [{name}] is in {found['state']} state."
                )
            data = found["data"]
            return 200, {
                "name": name,
                "payload": {
                    "data": base64.b64encode(data).decode(),
                    "dataCrc32c": str(found["crc32c"]),
                },
            }
        if verb in ("enable", "disable", "destroy") and method == "POST":
            if found["state"] == "DESTROYED":
                return status(400, "FAILED_PRECONDITION", f"Secret Version [{name}] is in DESTROYED state.")
            found["state"] = {"enable": "ENABLED", "disable": "DISABLED", "destroy": "DESTROYED"}[verb]
            if verb == "destroy":
                found["data"] = b""
                found["destroyTime"] = now_text()
            return 200, self.version_resource(secret_id, found)
        return status(405, "METHOD_NOT_ALLOWED", "method not allowed")

    def list(self, query):
        try:
            size = int(query.get("pageSize", "25000"))
        except ValueError:
            return status(400, "INVALID_ARGUMENT", "Invalid page_size.")
        if size <= 0 or size > 25000:
            size = 25000
        # Google's order: by creation, newest first; the provider must not rely on it.
        names = sorted(store, key=lambda n: store[n]["secret"]["createTime"], reverse=True)
        start = 0
        token = query.get("pageToken")
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode())
            except ValueError:
                return status(400, "INVALID_ARGUMENT", "Invalid page_token.")
        page = names[start:start + size]
        out = {"secrets": [self.secret(n) for n in page], "totalSize": len(names)}
        if start + size < len(names):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return 200, out


def create_service_account(port):
    """Writes DIR/keys/secret-broker.json, a new service account's key file."""
    import os

    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "om-test-project",
        "private_key_id": random.token_hex(20),
        "private_key": pem,
        "client_email": "secret-broker@om-test-project.iam.gserviceaccount.com",
        "client_id": str(100000000000000000000 + random.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": f"https://localhost:{port}/token",
    }
    os.makedirs(f"{DIR}/keys", exist_ok=True)
    with open(f"{DIR}/keys/secret-broker.json.tmp", "w") as f:
        json.dump(info, f)
    os.replace(f"{DIR}/keys/secret-broker.json.tmp", f"{DIR}/keys/secret-broker.json")


if __name__ == "__main__":
    DIR = sys.argv[1]
    serve(Handler, DIR, tls_ca_name="gcp test CA", ready=create_service_account)
