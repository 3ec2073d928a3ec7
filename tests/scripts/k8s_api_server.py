#!/usr/bin/env python3
"""A Kubernetes API server for core/v1 Secrets only, on loopback, written from the
published API reference (https://kubernetes.io/docs/reference/kubernetes-api/
config-and-storage-resources/secret-v1/ and api-concepts: resourceVersion,
optimistic concurrency, chunked lists with `continue`, metadata-only lists,
Status errors). No emulator of the Kubernetes API installs on this machine, so
the tests run the broker's `kubernetes` provider against this one, and check it
with the official `kubernetes` client from PyPI.

Usage: k8s_api_server.py DIR [--tls]
  - bearer tokens are the lines of DIR/tokens, read again on every request (a
    rotated token takes effect at once, as projected service-account tokens do);
  - with --tls it makes a CA (DIR/ca.pem) and a certificate for 127.0.0.1 signed
    by it, and serves https;
  - once listening, the port is written to DIR/port.
Test-only control, outside /api: POST /_test/faults {"status": 429, "times": 2,
"retry_after": 1, "method": "PUT"} answers the next `times` API requests (of that
method, if given) with that status.
"""

import base64
import binascii
import json
import re
import sys
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote, urlsplit

from test_server import Faults, JsonHandler, serve

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
COLLECTION = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets$")
ITEM = re.compile(r"^/api/v1/namespaces/([^/]+)/secrets/([^/]+)$")
METADATA_LIST = "as=PartialObjectMetadataList"
# A Secret's data may total 1 MiB.
MAX_DATA = 1 << 20

lock = threading.Lock()
store = {}  # (namespace, name) -> object
state = {"rv": 1000}
faults = Faults()


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_rv():
    state["rv"] += 1
    return str(state["rv"])


def status(code, reason, message, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 300 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return code, body


def not_found(name):
    return status(404, "NotFound", f'secrets "{name}" not found', {"name": name, "kind": "secrets"})


def invalid(name, message):
    return status(
        422, "Invalid", f'Secret "{name}" is invalid: {message}', {"name": name, "kind": "Secret"}
    )


def check_secret(obj, name):
    """The validation the API server applies to a Secret: name, data keys,
    base64 data, total size; stringData merged into data."""
    if not isinstance(obj, dict) or obj.get("kind", "Secret") != "Secret":
        return status(400, "BadRequest", "the body is not a Secret")
    if not name or len(name) > 253 or not NAME.match(name):
        return invalid(
            name,
            "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower "
            "case alphanumeric characters, '-' or '.', and must start and end with an "
            "alphanumeric character",
        )
    data = obj.get("data") or {}
    decoded = 0
    for key, value in data.items():
        if not KEY.match(key):
            return invalid(name, f"data[{key}]: Invalid value: a valid config key")
        try:
            decoded += len(base64.b64decode(value, validate=True))
        except (binascii.Error, TypeError):
            return status(400, "BadRequest", f"data[{key}] is not base64")
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(value.encode()).decode()
        decoded += len(value.encode())
    if decoded > MAX_DATA:
        return invalid(name, f"data: Too long: must have at most {MAX_DATA} bytes")
    obj["data"] = data
    return None


class Handler(JsonHandler):
    def body(self):
        raw = self.raw_body()
        return json.loads(raw) if raw else None

    def handle_any(self, method):
        url = urlsplit(self.path)
        if url.path == "/_test/faults" and method == "POST":
            faults.set(self.body())
            return self.answer(200, {})
        try:
            body = self.body()
        except ValueError:
            return self.answer(*status(400, "BadRequest", "the body is not JSON"))
        tokens = [t.strip() for t in open(TOKEN_FILE).read().splitlines() if t.strip()]
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in tokens:
            return self.answer(*status(401, "Unauthorized", "Unauthorized"))
        injected = faults.take(method, url.path)
        if injected:
            code, headers = injected
            reason = {429: "TooManyRequests", 409: "Conflict"}.get(code, "InternalError")
            return self.answer(*status(code, reason, f"injected {code}"), headers=headers)
        with lock:
            code, out = self.route(method, url, body)
        self.answer(code, out)

    def route(self, method, url, body):
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        m = COLLECTION.match(url.path)
        if m:
            ns = unquote(m.group(1))
            if method == "GET":
                return self.list(ns, query)
            if method == "POST":
                return create(ns, body)
            return status(405, "MethodNotAllowed", f"{method} is not allowed on secrets")
        m = ITEM.match(url.path)
        if not m:
            return status(404, "NotFound", "the server could not find the requested resource")
        ns, name = unquote(m.group(1)), unquote(m.group(2))
        current = store.get((ns, name))
        if method == "GET":
            return (200, current) if current else not_found(name)
        if method == "PUT":
            return replace(ns, name, current, body)
        if method == "DELETE":
            if not current:
                return not_found(name)
            pre = (body or {}).get("preconditions") or {}
            meta = current["metadata"]
            for field in ("resourceVersion", "uid"):
                if pre.get(field) and pre[field] != meta[field]:
                    return status(
                        409,
                        "Conflict",
                        f"Operation cannot be fulfilled on secrets \"{name}\": Precondition "
                        f"failed: {field}: {pre[field]}, {field} in object meta: {meta[field]}",
                    )
            del store[(ns, name)]
            return status(200, "", "", {"name": name, "kind": "secrets", "uid": meta["uid"]})
        return status(405, "MethodNotAllowed", f"{method} is not allowed on a secret")

    def list(self, ns, query):
        names = sorted(n for (space, n) in store if space == ns)
        selector = query.get("labelSelector")
        if selector:
            wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
            names = [
                n
                for n in names
                if all(
                    (store[(ns, n)]["metadata"].get("labels") or {}).get(k) == v
                    for k, v in wanted.items()
                )
            ]
        start = query.get("continue")
        if start:
            try:
                after = json.loads(base64.urlsafe_b64decode(start))["after"]
            except (ValueError, KeyError, binascii.Error):
                return status(400, "BadRequest", "continue key is not valid")
            names = [n for n in names if n > after]
        limit = int(query.get("limit") or 0)
        page = names[:limit] if limit > 0 else names
        meta = {"resourceVersion": str(state["rv"])}
        if limit > 0 and len(names) > limit:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps({"after": page[-1]}).encode()
            ).decode()
            meta["remainingItemCount"] = len(names) - limit
        items = [store[(ns, n)] for n in page]
        if METADATA_LIST in (self.headers.get("Accept") or ""):
            return 200, {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": [
                    {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": i["metadata"],
                    }
                    for i in items
                ],
            }
        return 200, {"kind": "SecretList", "apiVersion": "v1", "metadata": meta, "items": items}



def create(ns, obj):
    meta = (obj or {}).get("metadata") or {}
    name = meta.get("name", "")
    bad = check_secret(obj, name)
    if bad:
        return bad
    if (ns, name) in store:
        return status(
            409, "AlreadyExists", f'secrets "{name}" already exists', {"name": name, "kind": "secrets"}
        )
    if meta.get("resourceVersion"):
        return status(400, "BadRequest", "resourceVersion should not be set on objects to be created")
    meta.update(
        {
            "namespace": ns,
            "uid": str(uuid.uuid4()),
            "resourceVersion": next_rv(),
            "creationTimestamp": now(),
        }
    )
    obj.update({"kind": "Secret", "apiVersion": "v1"})
    obj.setdefault("type", "Opaque")
    store[(ns, name)] = obj
    return 201, obj


def replace(ns, name, current, obj):
    if not current:
        return not_found(name)
    meta = (obj or {}).get("metadata") or {}
    if meta.get("name", name) != name:
        return status(400, "BadRequest", "the name of the object does not match the name on the URL")
    bad = check_secret(obj, name)
    if bad:
        return bad
    sent = meta.get("resourceVersion")
    if sent and sent != current["metadata"]["resourceVersion"]:
        return status(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on secrets "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            {"name": name, "kind": "secrets"},
        )
    keep = current["metadata"]
    unchanged = all(
        obj.get(k) == current.get(k) for k in ("data", "type", "immutable")
    ) and all(meta.get(k) == keep.get(k) for k in ("labels", "annotations"))
    if unchanged:
        # A no-op update leaves the object, and its resourceVersion, as they are.
        return 200, current
    meta.update(
        {
            "name": name,
            "namespace": ns,
            "uid": keep["uid"],
            "creationTimestamp": keep["creationTimestamp"],
            "resourceVersion": next_rv(),
        }
    )
    obj.update({"kind": "Secret", "apiVersion": "v1", "metadata": meta})
    obj.setdefault("type", current.get("type", "Opaque"))
    store[(ns, name)] = obj
    return 200, obj


if __name__ == "__main__":
    import os

    DIR = sys.argv[1]
    TOKEN_FILE = os.path.join(DIR, "tokens")
    serve(Handler, DIR, tls_ca_name="k8s test CA" if "--tls" in sys.argv[2:] else None)
