"""Run localstripe for the tests: bound to 127.0.0.1, state kept in memory only.

``python localstripe_server.py PORT``. localstripe pickles its state to a fixed
/tmp path and listens on every interface; here neither happens, so parallel runs do
not collide. It lacks Stripe's billing portal sessions, so this wrapper adds one
clearly named fake route: ``POST /v1/billing_portal/sessions`` (FAKE_BILLING_PORTAL)
answering a session whose ``url`` points back at this server.
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

    server.app.router.add_post("/v1/billing_portal/sessions", fake_billing_portal_session)
    web.run_app(server.app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
