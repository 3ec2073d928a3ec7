"""What the loopback test servers share: a JSON request handler, injected
faults, serving on a free port (written to DIR/port once listening), and a test
CA with a server certificate it signed for those that speak TLS (official
clients insist on https), made with `cryptography`."""

import json
import os
import ssl
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """Answers JSON; every method goes to `handle_any(method)`."""

    protocol_version = "HTTP/1.1"
    content_type = "application/json"
    # Buffered: an answer leaves in one write (flushed after each request), as
    # real servers send it, not its headers and body in two small segments that
    # Nagle's algorithm and a delayed ACK would hold 40 ms apart.
    wbufsize = -1
    # A client that connects and goes quiet (a request its caller gave up on)
    # holds its own thread for this long, never the server.
    timeout = 60

    def setup(self):
        # The TLS handshake happens here, in the connection's own thread: done
        # in the accept loop, one client that never sends its hello would stop
        # the server accepting anyone else.
        if hasattr(self.request, "do_handshake"):
            self.request.settimeout(self.timeout)
            try:
                self.request.do_handshake()
            except OSError:
                self.handshake_failed = True
        super().setup()

    def handle(self):
        if not getattr(self, "handshake_failed", False):
            super().handle()

    def log_message(self, *args):
        pass

    def answer(self, code, body, headers=()):
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def raw_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_POST(self):
        self.handle_any("POST")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")


class Faults:
    """The fault set by POST /_test/faults: `{"status": 429, "times": 2,
    "retry_after": 1, "method": "PUT", "path": "/..."}` answers the next `times`
    requests (of `method` and under `path`, when given) with `status`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.fault = None

    def set(self, fault):
        with self.lock:
            self.fault = fault

    def take(self, method, path):
        """The status and headers to answer with, or None."""
        with self.lock:
            fault = self.fault
            if not fault or fault.get("times", 0) <= 0:
                return None
            if fault.get("method", method) != method or not path.startswith(fault.get("path", "")):
                return None
            fault["times"] -= 1
        headers = []
        if "retry_after" in fault:
            headers.append(("Retry-After", str(fault["retry_after"])))
        return fault["status"], headers


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Room for a burst of connections while the accept loop starts threads.
    request_queue_size = 128


def serve(handler, dir, tls_ca_name=None, ready=None):
    """Serves `handler` on a free loopback port, over TLS with a test CA named
    `tls_ca_name` (DIR/ca.pem) when given, and writes the port to DIR/port
    (after calling `ready(port)`, when given)."""
    server = Server(("127.0.0.1", 0), handler)
    if tls_ca_name:
        make_certificates(dir, tls_ca_name)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(f"{dir}/cert.pem", f"{dir}/key.pem")
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    if ready:
        ready(server.server_address[1])
    with open(f"{dir}/port.tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(f"{dir}/port.tmp", f"{dir}/port")
    server.serve_forever()


def make_certificates(dir, ca_name):
    """Writes DIR/ca.pem, a CA named `ca_name`, and DIR/cert.pem and DIR/key.pem,
    a server certificate for 127.0.0.1 and localhost it signed."""
    from datetime import timedelta
    from ipaddress import ip_address

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    end = start + timedelta(days=2)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name(ca_name))
        .issuer_name(name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    with open(f"{dir}/ca.pem", "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(f"{dir}/cert.pem", "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(f"{dir}/key.pem", "wb") as f:
        f.write(
            key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
