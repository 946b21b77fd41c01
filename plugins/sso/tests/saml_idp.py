"""pysaml2's own IdP, in process: it answers the portal's real AuthnRequests and forges what tests need.

``respond`` builds a signed (SHA-256) response to a captured AuthnRequest; ``forge`` lets a test
edit the XML and re-sign the assertion with the IdP's real key, so every later check is reached.
"""

from __future__ import annotations

import base64
import os
import tempfile
import warnings
from typing import Any
from urllib.parse import parse_qs, urlsplit

from plugins.sso.certs import self_signed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.config import IdPConfig
    from saml2.metadata import create_metadata_string
    from saml2.s_utils import factory
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
    from saml2.server import Server
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

XMLSEC = "/usr/bin/xmlsec1"


class PySamlIdp:
    """An IdP with its own key pair that trusts the SP metadata it is given."""

    def __init__(self, sp_metadata: str, entity_id: str = "https://idp.test/metadata",
                 sso_url: str = "https://idp.test/sso") -> None:
        self.entity_id = entity_id
        self.folder = tempfile.mkdtemp(prefix="portal-test-idp-")
        self.key, self.cert = self_signed("Test IdP")
        self.key_file, self.cert_file = os.path.join(self.folder, "idp.key"), os.path.join(self.folder, "idp.crt")
        for path, text in ((self.key_file, self.key), (self.cert_file, self.cert)):
            with open(path, "w") as handle:
                handle.write(text)
        config = IdPConfig()
        config.load({
            "entityid": entity_id, "xmlsec_binary": XMLSEC, "key_file": self.key_file, "cert_file": self.cert_file,
            "service": {"idp": {
                "endpoints": {"single_sign_on_service": [(sso_url, BINDING_HTTP_REDIRECT),
                                                         (sso_url, BINDING_HTTP_POST)]},
                "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            }},
            "metadata": {"inline": [sp_metadata]},
        })
        self.server = Server(config=config)

    def metadata(self) -> str:
        """The IdP's metadata, as an admin would upload it."""
        xml = create_metadata_string(None, config=self.server.config, sign=False)
        return xml.decode() if isinstance(xml, bytes) else str(xml)

    def parse_request(self, redirect_url: str) -> Any:
        """The AuthnRequest the portal sent (HTTP-Redirect binding, signature checked by pysaml2)."""
        query = parse_qs(urlsplit(redirect_url).query)
        return self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message

    def respond(self, request: Any, email: str, *, groups: list[str] | None = None, sign_assertion: bool = True,
                sign_response: bool = False, destination: str | None = None, audience: str | None = None,
                in_response_to: str | None = None, sign_alg: str = SIG_RSA_SHA256,
                digest_alg: str = DIGEST_SHA256) -> str:
        """The response XML to ``request`` for ``email``."""
        acs = request.assertion_consumer_service_url
        response = self.server.create_authn_response(
            identity={"mail": [email], "displayName": [email.split("@")[0].title()], "groups": groups or []},
            in_response_to=in_response_to if in_response_to is not None else request.id,
            destination=destination or acs, sp_entity_id=audience or request.issuer.text,
            name_id=factory(NameID, format=NAMEID_FORMAT_EMAILADDRESS, text=email),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=sign_assertion, sign_response=sign_response, sign_alg=sign_alg, digest_alg=digest_alg)
        return str(response)

    def resign(self, xml: str, assertion_id: str) -> str:
        """Sign the (edited) assertion again with the IdP's real key."""
        return self.server.sec.sign_statement(xml, "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
                                              key_file=self.key_file, node_id=assertion_id)


def encode(xml: str) -> str:
    """How the HTTP-POST binding carries a response."""
    return base64.b64encode(xml.encode()).decode()
