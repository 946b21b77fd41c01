"""localstripe for the console tests, with one more clearly named fake (FAKE_BILLING_PORTAL).

``python fake_stripe_portal.py PORT`` runs ``localstripe_server.py`` (127.0.0.1, in-memory
state, the fake billing portal *sessions* route) and adds the Customer Portal *configurations*
localstripe lacks: ``POST /v1/billing_portal/configurations`` (create), ``POST
/v1/billing_portal/configurations/{id}`` (update) and ``GET`` of one. Ids start with
``bpc_FAKE_BILLING_PORTAL_``. Like Stripe it refuses a ``subscription_update`` without products
and prices, an unknown cancellation mode, a headline over 60 characters and a return URL that
is not an address, with Stripe's error shape (400 ``invalid_request_error`` naming the param);
localstripe's own middleware authenticates the key (only ``sk_…`` keys pass).

localstripe ignores ``Idempotency-Key``; a second clearly named fake, **FAKE_IDEMPOTENCY**, adds
Stripe's behaviour as a middleware: a POST repeating a key (per API key) is answered with the
first answer (header ``Idempotent-Replayed: true``) instead of running again; concurrent requests
with one key wait for the first; the same key with other parameters is refused with Stripe's
400 ``idempotency_error``. That is what the console's "create the Stripe customer" relies on.
"""

from __future__ import annotations

import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIGURATIONS: dict[str, dict[str, Any]] = {}
IDEMPOTENT: dict[tuple[str, str], tuple[bytes, int, bytes]] = {}  # (api key, key) -> (request body, status, body)


def _bool(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "on")


def _refuse(message: str, param: str) -> Any:
    from localstripe.errors import UserError

    return UserError(400, message, {"param": param})


def _merge(current: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Stripe's update semantics for nested hashes: given keys replace, ``""`` clears."""
    merged = dict(current)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = None if value == "" else value
    return merged


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    """Form values are strings: booleans back to booleans, as Stripe stores them."""
    features = data.get("features") or {}
    for feature in features.values():
        if isinstance(feature, dict) and "enabled" in feature:
            feature["enabled"] = _bool(feature["enabled"])
        reason = feature.get("cancellation_reason") if isinstance(feature, dict) else None
        if isinstance(reason, dict) and "enabled" in reason:
            reason["enabled"] = _bool(reason["enabled"])
    return data


def _validate(config: dict[str, Any]) -> None:
    profile = config.get("business_profile") or {}
    if len(profile.get("headline") or "") > 60:
        raise _refuse("Headline must be at most 60 characters.", "business_profile[headline]")
    for key in ("privacy_policy_url", "terms_of_service_url"):
        if profile.get(key) and urlsplit(profile[key]).scheme not in ("http", "https"):
            raise _refuse(f"Invalid URL: {profile[key]}", f"business_profile[{key}]")
    url = config.get("default_return_url")
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise _refuse(f"Invalid URL: {url}", "default_return_url")
    features = config.get("features") or {}
    cancel = features.get("subscription_cancel") or {}
    if cancel.get("enabled") and cancel.get("mode", "at_period_end") not in ("at_period_end", "immediately"):
        raise _refuse("Invalid subscription_cancel[mode].", "features[subscription_cancel][mode]")
    update = features.get("subscription_update") or {}
    if update.get("enabled"):
        products = update.get("products") or []
        if not products or not all(p.get("product") and p.get("prices") for p in products):
            raise _refuse("You must provide products with prices to enable subscription updates.",
                          "features[subscription_update][products]")
        if not update.get("default_allowed_updates"):
            raise _refuse("You must provide default_allowed_updates to enable subscription updates.",
                          "features[subscription_update][default_allowed_updates]")


def add_routes(app: Any) -> None:
    """The FAKE_BILLING_PORTAL configuration routes, on localstripe's aiohttp app."""
    from aiohttp import web
    from localstripe.server import get_post_data, json_response

    def missing(config_id: str) -> Any:
        from localstripe.errors import UserError

        return UserError(404, f"No such configuration: '{config_id}'",
                         {"param": "configuration", "code": "resource_missing"})

    async def create(request: web.Request) -> web.Response:
        data = _normalise(await get_post_data(request) or {})
        config = {"id": f"bpc_FAKE_BILLING_PORTAL_{secrets.token_hex(6)}", "object": "billing_portal.configuration",
                  "active": True, "is_default": False, "livemode": False, "created": int(time.time()),
                  "business_profile": {}, "default_return_url": None, "features": {}, "metadata": {}}
        config = _merge(config, data)
        _validate(config)
        CONFIGURATIONS[config["id"]] = config
        return json_response(config)

    async def update(request: web.Request) -> web.Response:
        config_id = request.match_info["id"]
        if config_id not in CONFIGURATIONS:
            raise missing(config_id)
        config = _merge(CONFIGURATIONS[config_id], _normalise(await get_post_data(request) or {}))
        _validate(config)
        CONFIGURATIONS[config_id] = config
        return json_response(config)

    async def retrieve(request: web.Request) -> web.Response:
        config_id = request.match_info["id"]
        if config_id not in CONFIGURATIONS:
            raise missing(config_id)
        return json_response(CONFIGURATIONS[config_id])

    app.router.add_post("/v1/billing_portal/configurations", create)
    app.router.add_post("/v1/billing_portal/configurations/{id}", update)
    app.router.add_get("/v1/billing_portal/configurations/{id}", retrieve)


def add_idempotency(app: Any) -> None:
    """FAKE_IDEMPOTENCY: replay the first answer to a POST whose ``Idempotency-Key`` was seen before."""
    import asyncio

    from aiohttp import web

    locks: dict[tuple[str, str], asyncio.Lock] = {}

    @web.middleware
    async def idempotency(request: web.Request, handler: Any) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return await handler(request)
        scope = (request.headers.get("Authorization", ""), key)
        body = await request.read()
        async with locks.setdefault(scope, asyncio.Lock()):
            if scope in IDEMPOTENT:
                first_body, status, answer = IDEMPOTENT[scope]
                if first_body != body:
                    return web.json_response({"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the same parameters "
                                   "they were first used with."}}, status=400)
                return web.Response(body=answer, status=status, content_type="application/json",
                                    headers={"Idempotent-Replayed": "true"})
            response = await handler(request)
            if isinstance(response, web.Response) and response.status < 500 and response.body is not None:
                IDEMPOTENT[scope] = (body, response.status, bytes(response.body))
            return response

    app.middlewares.append(idempotency)


def main(port: int) -> None:
    """localstripe_server's app with the configuration routes added."""
    sys.path.insert(0, str(Path(__file__).parent))
    import localstripe_server  # noqa: PLC0415 - the billing tests' wrapper, next to this file
    from localstripe import server

    add_routes(server.app)
    add_idempotency(server.app)
    localstripe_server.main(port)


if __name__ == "__main__":
    main(int(sys.argv[1]))
