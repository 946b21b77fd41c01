"""How much a sign-in's checks cost: SAML response validation and OIDC ID-token verification.

Run: ``.venv/bin/python bench/sso_validation.py``. Prints milliseconds per operation and the
ratio against a baseline measured in the same run (one safe XML parse of the same response),
so numbers compare across machines. SAML validation runs xmlsec1 twice (our pinned-certificate
check and pysaml2's second layer), which dominates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from datetime import UTC, datetime

warnings.simplefilter("ignore")

from joserfc import jwt  # noqa: E402
from joserfc.jwk import KeySet, RSAKey  # noqa: E402

from plugins.sso import oidc, saml  # noqa: E402
from plugins.sso.certs import self_signed  # noqa: E402
from plugins.sso.tests.saml_idp import PySamlIdp, encode  # noqa: E402


def per_op(fn, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    key, cert = self_signed("bench SP")
    connection = {"id": uuid.uuid4(), "saml_sp_cert": cert, "saml_metadata": "", "saml_idp_initiated": True,
                  "saml_idp_entity_id": ""}
    origin = "https://bench.example.test"
    idp = PySamlIdp(saml.sp_metadata(connection, key, origin))
    metadata = idp.metadata()
    connection.update(saml_metadata=metadata, saml_idp_entity_id=saml.parse_idp_metadata(metadata).entity_id)
    request_id, location = saml.authn_request_redirect(connection, key, origin)
    raw = encode(idp.respond(idp.parse_request(location), "bench@corp.example"))
    entity_id, acs = saml.sp_urls(origin, connection["id"])
    certs = saml.parse_idp_metadata(metadata).certificates

    def validate_saml() -> None:
        parsed = saml.decode_response(raw)
        saml.verify_signature(parsed, certs, connection, key, origin)
        saml.check_semantics(parsed, idp_entity_id=connection["saml_idp_entity_id"], entity_id=entity_id,
                             acs_url=acs, request_id=request_id, now=datetime.now(UTC))
        saml.second_layer(parsed, raw, connection, key, origin, request_id)

    rsa = RSAKey.generate_key(2048, parameters={"kid": "k"})
    doc = {"issuer": "https://idp.bench", "jwks_uri": "https://idp.bench/jwks"}

    class Runtime:
        state: dict = {}

    runtime = Runtime()
    oidc.cache_of(runtime).jwks[doc["jwks_uri"]] = (time.monotonic(), KeySet([rsa]))
    now = int(time.time())
    token = jwt.encode({"alg": "RS256", "kid": "k"}, {"iss": doc["issuer"], "aud": "c", "sub": "s", "iat": now,
                                                     "exp": now + 300, "nonce": "n"}, rsa)

    def verify_token() -> None:
        asyncio.run(oidc.verify_id_token(runtime, doc, token, client_id="c", algorithms=["RS256"], nonce="n"))

    baseline = per_op(lambda: saml.decode_response(raw), 200)
    results = {"SAML response, full validation": per_op(validate_saml, 20),
               "OIDC ID token verification": per_op(verify_token, 200)}
    print(f"baseline (safe parse of the SAML response): {baseline:.3f} ms")
    for name, ms in results.items():
        print(f"{name}: {ms:.2f} ms  ({ms / baseline:.0f}x baseline)")


if __name__ == "__main__":
    main()
