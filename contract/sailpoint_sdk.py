"""Drives a running hookgate with SailPoint's official Python SDK.

sailpoint 2.x speaks the per-resource paths (/triggers/v1, ...); 1.x speaks /beta and /v2025.
Usage: HOOKGATE_URL=... HOOKGATE_CLIENT_ID=... HOOKGATE_CLIENT_SECRET=... python sailpoint_sdk.py
"""

import json
import os
import sys
import traceback

from sailpoint.configuration import Configuration, ConfigurationParams

RESULTS = []


def check(name):
    def wrap(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure and go on
            RESULTS.append((name, traceback.format_exc()))
            print(f"FAIL {name}\n{traceback.format_exc()}")
        return fn

    return wrap


def receiver():
    """A local subscriber answering 200 {}; returns (received bodies, its URL, stop)."""
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return received, f"http://127.0.0.1:{server.server_port}/decide", server.shutdown


def wait_for(received, seconds=10):
    import time

    deadline = time.time() + seconds
    while not received:
        assert time.time() < deadline, "the subscriber received nothing"
        time.sleep(0.05)
    return received[0]


def configuration():
    params = ConfigurationParams()
    params.base_url = os.environ["HOOKGATE_URL"].rstrip("/")
    params.client_id = os.environ["HOOKGATE_CLIENT_ID"]
    params.client_secret = os.environ["HOOKGATE_CLIENT_SECRET"]
    config = Configuration(params)  # fetches the token from {base_url}/oauth/token
    assert config.access_token, "the SDK got no token from /oauth/token"
    return config


# The catalog triggers whose example input the 2.x SDK can parse (README, "The default trigger catalog").
SDK_PARSEABLE = [
    "idn:access-request-post-approval", "idn:identity-attributes-changed", "idn:post-provisioning",
    "idn:saved-search-complete", "idn:source-created", "idn:source-deleted", "idn:source-updated",
    "idn:va-cluster-status-change", "idn:account-uncorrelated", "idn:campaign-generated",
]

SUBSCRIPTION = {
    "name": "sdk contract",
    "triggerId": "idn:identity-attributes-changed",
    "type": "HTTP",
    "responseDeadline": "PT1H",
    "httpConfig": {
        "url": "http://127.0.0.1:9/hook",
        "httpDispatchMode": "SYNC",
        "httpAuthenticationType": "BEARER_TOKEN",
        "bearerTokenAuthConfig": {"bearerToken": "s3cr3t"},
    },
    "enabled": True,
    "filter": '$[?($.identity.name == "john.doe")]',
}


# A chained subscription (type TRIGGER, a hookgate extension), which the SDKs cannot create: their
# type enum has no TRIGGER. Reads show it as WORKFLOW so that the SDKs still parse every list.
CHAINED = {
    "name": "sdk contract chain",
    "triggerId": "idn:identity-attributes-changed",
    "type": "TRIGGER",
    "triggerConfig": {"triggerId": "idn:identity-created", "inputPath": "$.identity"},
}


def create_chained(config):
    """Creates CHAINED over plain HTTP with the SDK's token; returns its id."""
    import urllib.request

    request = urllib.request.Request(
        os.environ["HOOKGATE_URL"].rstrip("/") + "/trigger-subscriptions/v1",
        data=json.dumps(CHAINED).encode(),
        headers={"Authorization": f"Bearer {config.access_token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status
        return json.load(response)["id"]


def check_chained(chained_id, subs, patch):
    """The SDK parsed a list holding the chained subscription, which patches and reads back."""
    mine = [s for s in subs if s.id == chained_id]
    assert len(mine) == 1, [s.id for s in subs]
    assert mine[0].type.value == "WORKFLOW", mine[0]
    assert mine[0].http_config is None, mine[0]
    assert patch("renamed chain").name == "renamed chain"


def run_v2():
    from sailpoint.triggers.api.triggers_api import TriggersApi
    from sailpoint.triggers.api_client import ApiClient
    from sailpoint.triggers.exceptions import BadRequestException, NotFoundException
    from sailpoint.triggers.models.subscription_patch_request_inner import SubscriptionPatchRequestInner
    from sailpoint.triggers.models.subscription_post_request import SubscriptionPostRequest
    from sailpoint.triggers.models.subscription_put_request import SubscriptionPutRequest
    from sailpoint.triggers.models.validate_filter_input_dto import ValidateFilterInputDto

    config = configuration()
    api = TriggersApi(ApiClient(config))
    state = {}

    @check("list_triggers_v1 with a filter parses typed triggers")
    def _():
        triggers = api.list_triggers_v1(limit=10, filters='id eq "idn:identity-attributes-changed"')
        assert [t.id for t in triggers] == ["idn:identity-attributes-changed"], triggers
        assert triggers[0].type == "FIRE_AND_FORGET"

    @check("the documented catalog triggers parse typed, one by one")
    def _():
        for trigger_id in SDK_PARSEABLE:
            triggers = api.list_triggers_v1(filters=f'id eq "{trigger_id}"')
            assert [t.id for t in triggers] == [trigger_id], trigger_id

    @check("list_triggers_v1 raw returns the whole catalog")
    def _():
        raw = api.list_triggers_v1_without_preload_content(count=True)
        assert raw.status == 200
        assert raw.headers["X-Total-Count"] == "29", raw.headers
        assert len(json.loads(raw.data)) == 29

    @check("create_subscription_v1")
    def _():
        sub = api.create_subscription_v1(SubscriptionPostRequest.from_dict(SUBSCRIPTION))
        assert sub.trigger_name == "Identity Attributes Changed", sub
        assert sub.http_config.bearer_token_auth_config.bearer_token is None
        state["id"] = sub.id

    @check("list_subscriptions_v1 with filters and sorters")
    def _():
        subs = api.list_subscriptions_v1(
            count=True, filters=f'id eq "{state["id"]}"', sorters="triggerName"
        )
        assert [s.id for s in subs] == [state["id"]]

    @check("update_subscription_v1")
    def _():
        body = dict(SUBSCRIPTION, name="sdk contract renamed")
        del body["triggerId"]
        sub = api.update_subscription_v1(state["id"], SubscriptionPutRequest.from_dict(body))
        assert sub.name == "sdk contract renamed"

    @check("patch_subscription_v1")
    def _():
        op = SubscriptionPatchRequestInner.from_dict({"op": "replace", "path": "/description", "value": "new desc"})
        sub = api.patch_subscription_v1(state["id"], [op])
        assert sub.description == "new desc"

    @check("test_subscription_filter_v1")
    def _():
        out = api.test_subscription_filter_v1(
            ValidateFilterInputDto.from_dict(
                {"input": {"identityId": "201327fda1c44704ac01181e963d463c"},
                 "filter": '$[?($.identityId == "201327fda1c44704ac01181e963d463c")]'}
            )
        )
        assert out.is_valid and out.is_valid_json_path and out.is_path_exist, out

    @check("an invalid subscription raises BadRequestException with ErrorResponseDto")
    def _():
        bad = dict(SUBSCRIPTION, filter="$[?(")
        try:
            api.create_subscription_v1(SubscriptionPostRequest.from_dict(bad))
        except BadRequestException as e:
            assert e.status == 400
            assert "filter" in e.data.messages[0].text, e.data
        else:
            raise AssertionError("no error raised")

    @check("an ASYNC subscriber completes through complete_trigger_invocation_v1")
    def _():
        from sailpoint.triggers.models.complete_invocation import CompleteInvocation
        from sailpoint.triggers.models.test_invocation import TestInvocation

        received, url, stop = receiver()
        try:
            sub = api.create_subscription_v1(SubscriptionPostRequest.from_dict({
                "name": "sdk async", "triggerId": "test:request-response", "type": "HTTP",
                "responseDeadline": "PT5M",
                "httpConfig": {"url": url, "httpDispatchMode": "ASYNC"},
            }))
            started = api.start_test_trigger_invocation_v1(TestInvocation.from_dict({
                "triggerId": "test:request-response", "contentJson": {}, "subscriptionIds": [sub.id],
            }))
            invocation = started[0]
            metadata = wait_for(received)["_metadata"]
            assert metadata["secret"] == invocation.secret, metadata
            assert metadata["callbackURL"].endswith(f"/trigger-invocations/v1/{invocation.id}/complete"), metadata
            api.complete_trigger_invocation_v1(
                invocation.id, CompleteInvocation.from_dict({"secret": metadata["secret"], "output": {"approved": True}})
            )
            statuses = api.list_trigger_invocation_status_v1(filters=f'subscriptionId eq "{sub.id}"')
            status = [s for s in statuses if s.id == invocation.id][0]
            assert status.complete_invocation_input.output == {"approved": True}, status
            assert status.completed is not None, status
            api.delete_subscription_v1(sub.id)
        finally:
            stop()

    @check("list_subscriptions_v1 parses a list holding a chained (TRIGGER) subscription")
    def _():
        chained = create_chained(config)
        op = SubscriptionPatchRequestInner.from_dict
        patch = lambda name: api.patch_subscription_v1(chained, [op({"op": "replace", "path": "/name", "value": name})])
        check_chained(chained, api.list_subscriptions_v1(), patch)
        api.delete_subscription_v1(chained)

    @check("delete_subscription_v1, then a 404 raises NotFoundException")
    def _():
        api.delete_subscription_v1(state["id"])
        try:
            api.delete_subscription_v1(state["id"])
        except NotFoundException as e:
            assert e.status == 404 and e.data.detail_code.startswith("404"), e.data
        else:
            raise AssertionError("no error raised")


def run_v1():
    import sailpoint.beta as beta
    import sailpoint.v2025 as v2025

    config = configuration()
    config.experimental = True
    for name, module in (("beta", beta), ("v2025", v2025)):
        api = module.TriggersApi(module.ApiClient(config))
        state = {}

        @check(f"{name}: list_triggers")
        def _():
            triggers = api.list_triggers(filters='id eq "idn:identity-attributes-changed"')
            assert [t.id for t in triggers] == ["idn:identity-attributes-changed"]

        @check(f"{name}: create, list, update, patch, delete a subscription")
        def _():
            sub = api.create_subscription(module.SubscriptionPostRequest.from_dict(SUBSCRIPTION))
            assert sub.trigger_name == "Identity Attributes Changed"
            listed = api.list_subscriptions(filters=f'id eq "{sub.id}"')
            assert [s.id for s in listed] == [sub.id]
            body = dict(SUBSCRIPTION, name=f"{name} renamed")
            del body["triggerId"]
            assert api.update_subscription(sub.id, module.SubscriptionPutRequest.from_dict(body)).name == f"{name} renamed"
            op = module.SubscriptionPatchRequestInner.from_dict({"op": "replace", "path": "/name", "value": "patched"})
            assert api.patch_subscription(sub.id, [op]).name == "patched"
            api.delete_subscription(sub.id)
            state["id"] = sub.id

        @check(f"{name}: list_subscriptions parses a list holding a chained (TRIGGER) subscription")
        def _():
            chained = create_chained(config)
            op = module.SubscriptionPatchRequestInner.from_dict
            patch = lambda n: api.patch_subscription(chained, [op({"op": "replace", "path": "/name", "value": n})])
            check_chained(chained, api.list_subscriptions(), patch)
            api.delete_subscription(chained)

        @check(f"{name}: test_subscription_filter and a 404")
        def _():
            dto = module.ValidateFilterInputDto.from_dict({"input": {"a": 1}, "filter": "$[?($.a == 1)]"})
            assert api.test_subscription_filter(dto).is_valid
            try:
                api.delete_subscription(state["id"])
            except module.ApiException as e:
                assert e.status == 404
            else:
                raise AssertionError("no error raised")


def main():
    try:
        import sailpoint.triggers  # noqa: F401 - present in 2.x only
        major = 2
    except ImportError:
        major = 1
    print(f"sailpoint SDK {major}.x against {os.environ['HOOKGATE_URL']}")
    run_v2() if major == 2 else run_v1()
    failed = sum(1 for _, err in RESULTS if err)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    sys.exit(1 if failed or not RESULTS else 0)


if __name__ == "__main__":
    main()
