"""Verifies a real hookgate delivery with the third-party `standardwebhooks` verifier (PyPI).

Subscribes a local receiver, publishes an event, and checks the POST it gets: the signature
verifies with the subscription's secret, the body is the published input.
Usage: HOOKGATE_URL=... HOOKGATE_CLIENT_ID=... HOOKGATE_CLIENT_SECRET=... python standard_webhooks.py
"""

import json
import os
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook

BASE = os.environ["HOOKGATE_URL"].rstrip("/")
received = []
arrived = threading.Event()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()
        arrived.set()

    def log_message(self, *args):
        pass


def call(method, path, token=None, body=None, form=None):
    data, headers = None, {}
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def main():
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = call("POST", "/oauth/token", form={
        "grant_type": "client_credentials",
        "client_id": os.environ["HOOKGATE_CLIENT_ID"],
        "client_secret": os.environ["HOOKGATE_CLIENT_SECRET"],
    })["access_token"]
    subscription = call("POST", "/trigger-subscriptions/v1", token, {
        "name": "standard webhooks check", "triggerId": "test:fire-and-forget", "type": "HTTP",
        "httpConfig": {"url": f"http://127.0.0.1:{server.server_port}/hook", "httpDispatchMode": "SYNC"},
    })
    published = call("POST", "/trigger-invocations/v1/start", token,
                      {"triggerId": "test:fire-and-forget", "input": {"identityId": "std-webhooks"}})
    failures = []
    if not arrived.wait(15):
        failures.append("no delivery arrived within 15 s")
    else:
        headers, body = received[0]
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            payload = Webhook(subscription["secret"]).verify(body, lower)
            if payload != {"identityId": "std-webhooks"}:
                failures.append(f"unexpected payload {payload}")
            if lower["webhook-id"] != published[0]["id"]:
                failures.append("webhook-id is not the invocation id")
        except Exception as e:  # noqa: BLE001
            failures.append(f"standardwebhooks refused the signature: {e!r}")
        try:
            Webhook("whsec_" + "A" * 43 + "=").verify(body, lower)
            failures.append("a wrong secret verified")
        except Exception:  # noqa: BLE001 - expected
            pass
    call("DELETE", f"/trigger-subscriptions/v1/{subscription['id']}", token)
    for f in failures:
        print(f"FAIL {f}")
    print(f"{0 if failures else 1} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
