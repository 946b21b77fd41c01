"""OpenID Connect relying party: discovery, authorization URL with PKCE, code exchange, ID-token checks.

Authlib's ``AsyncOAuth2Client`` builds the authorization request (PKCE S256) and exchanges
the code; the ID token is verified with ``joserfc`` (Authlib's JOSE library) against the
IdP's JWKS, with the algorithms pinned per connection: never ``none`` and never a
symmetric (HS*) algorithm, so a public key can never be used as an HMAC secret.

Key rotation: an unknown ``kid`` refetches the JWKS, at most once per
``JWKS_REFETCH_INTERVAL`` per JWKS address, so forged kids cannot make us hammer the IdP.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.integrations.base_client.errors import OAuthError
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from plugins.sso.errors import SsoError

with warnings.catch_warnings():
    # Authlib >= 1.9 prefers the ``httpx2`` distribution and warns when it falls back to ``httpx``.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
DISCOVERY_TTL = 3600.0
JWKS_REFETCH_INTERVAL = 60.0
CLOCK_SKEW = 120
MAX_TOKEN_AGE = 600
HTTP_TIMEOUT = 10.0
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def parse_algorithms(raw: str) -> list[str]:
    """Allowed signing algorithms from a comma list; refuses ``none`` and HS* outright."""
    algorithms = [part.strip() for part in raw.replace(" ", ",").split(",") if part.strip()]
    bad = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGORITHMS]
    if bad:
        raise SsoError("bad_algorithm", f"Algorithm {', '.join(bad)} is not allowed. Use public-key algorithms "
                                        f"such as RS256 or ES256 ({', '.join(ASYMMETRIC_ALGORITHMS)}).")
    if not algorithms:
        raise SsoError("bad_algorithm", "Choose at least one signing algorithm, for example RS256.")
    return algorithms


def check_issuer_url(issuer: str, *, production: bool) -> str:
    """The issuer must be an https URL (plain http only for a loopback IdP outside production)."""
    issuer = issuer.strip()
    parts = urlsplit(issuer)
    if not parts.netloc or parts.scheme not in {"https", "http"} or parts.query or parts.fragment:
        raise SsoError("bad_issuer", "The issuer must be a URL such as https://login.example.com/.")
    if parts.scheme == "http" and (production or parts.hostname not in LOOPBACK_HOSTS):
        raise SsoError("bad_issuer", "The issuer must use https.")
    return issuer


@dataclass
class OidcCache:
    """Discovery documents and key sets per app (``ctx.runtime.state``), with fetch times."""

    discovery: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    jwks: dict[str, tuple[float, KeySet]] = field(default_factory=dict)
    forced_refetch: dict[str, float] = field(default_factory=dict)
    jwks_fetches: int = 0


def cache_of(runtime: Any) -> OidcCache:
    """The app's OIDC cache (created on first use)."""
    return runtime.state.setdefault("sso.oidc_cache", OidcCache())


async def _get_json(url: str, what: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SsoError("idp_unreachable", f"Could not reach the identity provider at {url} ({type(exc).__name__})."
                       ) from None
    if response.status_code != 200:
        raise SsoError("idp_error", f"The identity provider answered {response.status_code} for its {what} ({url}).")
    try:
        data = response.json()
    except ValueError:
        raise SsoError("idp_error", f"The identity provider's {what} at {url} is not JSON.") from None
    if not isinstance(data, dict):
        raise SsoError("idp_error", f"The identity provider's {what} at {url} is not a JSON object.")
    return data


async def discover(runtime: Any, issuer: str) -> dict[str, Any]:
    """The issuer's discovery document (cached); its ``issuer`` must equal the configured one exactly."""
    cache = cache_of(runtime)
    hit = cache.discovery.get(issuer)
    if hit and time.monotonic() - hit[0] < DISCOVERY_TTL:
        return hit[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = await _get_json(url, "discovery document")
    if doc.get("issuer") != issuer:
        raise SsoError("issuer_mismatch", f"The discovery document names issuer {doc.get('issuer')!r}, but the "
                                          f"connection is set up for {issuer!r}. Copy the issuer exactly.")
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise SsoError("idp_error", f"The discovery document has no {key}.")
    cache.discovery[issuer] = (time.monotonic(), doc)
    return doc


async def key_set(runtime: Any, jwks_uri: str, *, refresh: bool = False) -> KeySet:
    """The IdP's signing keys (cached for ``DISCOVERY_TTL``).

    ``refresh`` (an unknown ``kid``) refetches unless an unknown kid already forced a refetch within
    ``JWKS_REFETCH_INTERVAL``: a rotated key is picked up at once, a stream of forged kids costs one fetch.
    """
    cache = cache_of(runtime)
    hit = cache.jwks.get(jwks_uri)
    now = time.monotonic()
    if hit and refresh:
        if now - cache.forced_refetch.get(jwks_uri, float("-inf")) < JWKS_REFETCH_INTERVAL:
            return hit[1]
        cache.forced_refetch[jwks_uri] = now
    elif hit and now - hit[0] < DISCOVERY_TTL:
        return hit[1]
    data = await _get_json(jwks_uri, "signing keys (JWKS)")
    keys = [k for k in data.get("keys", []) if isinstance(k, dict) and k.get("kty") in {"RSA", "EC", "OKP"}]
    try:
        keys_set = KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError):
        raise SsoError("idp_error", "The identity provider's signing keys (JWKS) could not be read.") from None
    cache.jwks[jwks_uri] = (time.monotonic(), keys_set)
    cache.jwks_fetches += 1
    return keys_set


def authorization_client(client_id: str, client_secret: str, scopes: str, redirect_uri: str) -> AsyncOAuth2Client:
    """Authlib's client for one connection: PKCE S256, client_secret_basic at the token endpoint."""
    return AsyncOAuth2Client(client_id=client_id, client_secret=client_secret, scope=scopes,
                             redirect_uri=redirect_uri, code_challenge_method="S256",
                             token_endpoint_auth_method="client_secret_basic", timeout=HTTP_TIMEOUT)


def authorization_url(doc: dict[str, Any], *, client_id: str, scopes: str, redirect_uri: str, state: str,
                      nonce: str, code_verifier: str, login_hint: str = "") -> str:
    """Where to send the browser: the IdP's authorization endpoint with state, nonce and the PKCE challenge."""
    client = authorization_client(client_id, "", scopes, redirect_uri)
    extra = {"login_hint": login_hint} if login_hint else {}
    url, _state = client.create_authorization_url(doc["authorization_endpoint"], state=state, nonce=nonce,
                                                  code_verifier=code_verifier, **extra)
    return url


async def exchange_code(doc: dict[str, Any], *, client_id: str, client_secret: str, scopes: str,
                        redirect_uri: str, code: str, code_verifier: str) -> dict[str, Any]:
    """Trade the authorization code (with the PKCE verifier) for tokens at the token endpoint."""
    async with authorization_client(client_id, client_secret, scopes, redirect_uri) as client:
        try:
            token = await client.fetch_token(doc["token_endpoint"], code=code, code_verifier=code_verifier,
                                             grant_type="authorization_code")
        except OAuthError as exc:
            if exc.error == "invalid_client":
                raise SsoError("invalid_client", "The identity provider refused the client id or secret.") from None
            raise SsoError("token_exchange_failed",
                           f"The identity provider refused to exchange the code ({exc.error}): the sign-in "
                           "took too long, was replayed, or its PKCE proof did not match.") from None
        except httpx.HTTPError as exc:
            raise SsoError("idp_unreachable", f"Could not reach the token endpoint ({type(exc).__name__}).") from None
    if not token.get("id_token"):
        raise SsoError("no_id_token", "The identity provider returned no ID token: is the openid scope enabled?")
    return dict(token)


async def verify_id_token(runtime: Any, doc: dict[str, Any], id_token: str, *, client_id: str,
                          algorithms: list[str], nonce: str, now: float | None = None) -> dict[str, Any]:
    """Signature (JWKS, pinned algorithms), then iss, aud, azp, exp, iat and nonce; returns the claims."""
    try:
        header = extract_compact(id_token.encode()).protected
    except (JoseError, ValueError, TypeError):
        raise SsoError("malformed_token", "The ID token is not a valid signed JWT.") from None
    alg = header.get("alg")
    if alg not in algorithms:
        raise SsoError("bad_algorithm", f"The ID token is signed with {alg!r}, which this connection does not "
                                        f"allow (allowed: {', '.join(algorithms)}).")
    keys = await key_set(runtime, doc["jwks_uri"])
    kid = header.get("kid")
    if kid and not any(k.kid == kid for k in keys.keys):
        keys = await key_set(runtime, doc["jwks_uri"], refresh=True)
    try:
        token = jwt.decode(id_token, keys, algorithms=algorithms)
    except InvalidKeyIdError:
        raise SsoError("unknown_key", "The ID token is signed with a key the identity provider does not publish "
                                      "(certificate mismatch or key rotation in progress).") from None
    except BadSignatureError:
        raise SsoError("bad_signature", "The ID token's signature does not match the identity provider's keys "
                                        "(certificate mismatch).") from None
    except (JoseError, ValueError, TypeError):
        raise SsoError("bad_signature", "The ID token's signature could not be verified.") from None
    claims = token.claims
    now = time.time() if now is None else now
    if claims.get("iss") != doc["issuer"]:
        raise SsoError("wrong_issuer", f"The ID token was issued by {claims.get('iss')!r}, not by "
                                       f"{doc['issuer']!r} (foreign issuer).")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences:
        raise SsoError("wrong_audience", "The ID token is meant for another application (wrong audience): check "
                                         "the client id.")
    if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != client_id:
        raise SsoError("wrong_audience", "The ID token was issued to another client (authorized party mismatch).")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise SsoError("malformed_token", "The ID token has no expiry or issue time.")
    if exp + CLOCK_SKEW < now:
        raise SsoError("expired", "The ID token has expired. If this keeps happening, the clocks of the identity "
                                  "provider and the portal disagree (clock skew).")
    if iat - CLOCK_SKEW > now:
        raise SsoError("clock_skew", "The ID token was issued in the future: the identity provider's clock is ahead "
                                     "of ours (clock skew).")
    if iat + MAX_TOKEN_AGE + CLOCK_SKEW < now:
        raise SsoError("expired", "The ID token is too old. Check the clocks of the identity provider (clock skew).")
    if not nonce or claims.get("nonce") != nonce:
        raise SsoError("wrong_nonce", "The ID token does not belong to this sign-in (nonce mismatch).")
    if not claims.get("sub"):
        raise SsoError("malformed_token", "The ID token names no subject (sub).")
    return dict(claims)


async def userinfo(doc: dict[str, Any], access_token: str) -> dict[str, Any]:
    """Claims from the userinfo endpoint (when the ID token carries no email)."""
    endpoint = doc.get("userinfo_endpoint")
    if not endpoint or not access_token:
        return {}
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
            response = await client.get(endpoint, headers={"Authorization": f"Bearer {access_token}"})
    except httpx.HTTPError:
        raise SsoError("idp_unreachable", "Could not reach the identity provider's userinfo endpoint.") from None
    if response.status_code != 200:
        raise SsoError("idp_error", f"The userinfo endpoint answered {response.status_code}.")
    try:
        data = response.json()
    except ValueError:
        raise SsoError("idp_error", "The userinfo endpoint did not answer JSON.") from None
    return data if isinstance(data, dict) else {}
