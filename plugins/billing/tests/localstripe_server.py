"""Run localstripe for the tests: bound to 127.0.0.1, state kept in memory only.

``python localstripe_server.py PORT``. localstripe pickles its state to a fixed
/tmp path and listens on every interface; here neither happens, so parallel runs do
not collide. It lacks two things the plugin uses, faked here under clearly named labels:

- FAKE_BILLING_PORTAL: ``POST /v1/billing_portal/sessions`` answers a session whose ``url``
  points back at this server.
- FAKE_PAUSE_COLLECTION: ``POST /v1/subscriptions/{id}`` carrying ``pause_collection`` (which
  localstripe rejects) sets or clears that field on localstripe's own subscription and
  answers it; every such request is recorded, as the SDK encoded it, at
  ``GET /FAKE_PAUSE_COLLECTION/requests`` so a test can check what would reach Stripe.
"""

from __future__ import annotations

import secrets
import sys

from aiohttp import web
from localstripe import resources, server


def main(port: int) -> None:
    """Serve until killed."""
    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
    resources.Store.try_load_from_disk = lambda self: None  # type: ignore[method-assign]

    async def fake_billing_portal_session(request: web.Request) -> web.Response:
        data = await request.post()
        token = secrets.token_hex(8)
        return web.json_response({
            "id": f"bps_{token}", "object": "billing_portal.session", "customer": data.get("customer"),
            "return_url": data.get("return_url"), "configuration": data.get("configuration"),
            "url": f"http://127.0.0.1:{port}/FAKE_BILLING_PORTAL/{token}", "livemode": False,
        })

    pause_requests: list[dict[str, object]] = []

    @web.middleware
    async def fake_pause_collection(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.method == "POST" and request.path.startswith("/v1/subscriptions/"):
            form = await request.post()
            keys = [key for key in form if key.startswith("pause_collection")]
            if keys:
                sub_id = request.path.rsplit("/", 1)[1]
                sub = resources.Subscription._api_retrieve(sub_id)
                raw = {key: str(form[key]) for key in keys}
                pause_requests.append({"subscription": sub_id, "form": raw})
                if raw.get("pause_collection") == "":
                    sub.pause_collection = None
                else:
                    sub.pause_collection = {"behavior": raw.get("pause_collection[behavior]", "void"),
                                            "resumes_at": int(raw["pause_collection[resumes_at]"])
                                            if "pause_collection[resumes_at]" in raw else None}
                return server.json_response(sub._export())
        return await handler(request)

    async def fake_pause_requests(request: web.Request) -> web.Response:
        return web.json_response(pause_requests)

    server.app.middlewares.append(fake_pause_collection)
    server.app.router.add_get("/FAKE_PAUSE_COLLECTION/requests", fake_pause_requests)
    server.app.router.add_post("/v1/billing_portal/sessions", fake_billing_portal_session)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
