"""SAML 2.0 service provider through pysaml2 (+ the ``xmlsec1`` binary), hardened around it.

pysaml2 builds the signed AuthnRequest, publishes SP metadata and, as a second layer, parses
the response with ``want_assertions_signed``. Before that, this module checks what pysaml2
leaves to configuration or does not check at all, each with a message an IT admin understands:

- size limit, then ``defusedxml`` parsing: no DTDs, no entities (XXE, billion laughs);
- exactly one Assertion and no duplicated IDs (signature wrapping), its own enveloped
  signature referencing its ID, signed with SHA-256 or stronger (never SHA-1);
- the signature verified by xmlsec1 against the pinned IdP certificates (several during rollover);
- Issuer, Destination, Audience, Recipient, InResponseTo (an outstanding request of this
  browser, used once) and the validity window with ``CLOCK_SKEW`` of slack;
- a replay cache of assertion ids (``SsoReplay``).
Encrypted assertions are not supported (refused with a clear message).
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element

import anyio
import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from litestar import Response
from litestar.response import Redirect

from plugins.sso.errors import SsoError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysaml2 imports a cipher mode cryptography marks deprecated
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client
    from saml2.config import SPConfig
    from saml2.metadata import create_metadata_string
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS
    from saml2.sigver import SignatureError
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

XMLSEC_BINARY = "/usr/bin/xmlsec1"
MAX_RESPONSE_BYTES = 256 * 1024
MAX_METADATA_BYTES = 512 * 1024
CLOCK_SKEW = timedelta(seconds=120)
NS = {
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}
STRONG_SIGNATURES = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
}
STRONG_DIGESTS = {
    "http://www.w3.org/2001/04/xmlenc#sha256", "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


def q(prefix: str, name: str) -> str:
    """A Clark-notation tag: ``{namespace}name``."""
    return f"{{{NS[prefix]}}}{name}"


def safe_parse(data: bytes | str, what: str) -> Element:
    """Parse XML refusing DTDs, entity declarations and external references."""
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise SsoError("unsafe_xml", f"The {what} contains a DTD or entity declarations, which are refused "
                                     "(XML external entity / entity expansion protection).") from None
    except Exception:  # noqa: BLE001 - any parser error means the document is not usable XML
        raise SsoError("malformed_xml", f"The {what} is not well-formed XML.") from None


# -- IdP metadata -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdpMetadata:
    """What we need from the IdP's metadata."""

    entity_id: str
    sso_url: str
    certificates: tuple[str, ...]


def parse_idp_metadata(xml: str) -> IdpMetadata:
    """Entity id, the HTTP-Redirect (or POST) SSO URL and every signing certificate of the IdP."""
    if len(xml.encode()) > MAX_METADATA_BYTES:
        raise SsoError("metadata_too_large", "The metadata file is larger than 512 KB.")
    root = safe_parse(xml.encode(), "IdP metadata")
    entity = root if root.tag == q("md", "EntityDescriptor") else root.find(f".//{q('md', 'EntityDescriptor')}")
    if entity is None or not entity.get("entityID"):
        raise SsoError("bad_metadata", "This is not SAML metadata: no EntityDescriptor with an entityID.")
    idp = entity.find(q("md", "IDPSSODescriptor"))
    if idp is None:
        raise SsoError("bad_metadata", "The metadata describes no identity provider (no IDPSSODescriptor).")
    urls = {svc.get("Binding"): svc.get("Location") for svc in idp.findall(q("md", "SingleSignOnService"))}
    sso_url = urls.get(BINDING_HTTP_REDIRECT) or urls.get(BINDING_HTTP_POST)
    if not sso_url:
        raise SsoError("bad_metadata", "The metadata has no single sign-on URL with the HTTP-Redirect binding.")
    certs = []
    for key in idp.findall(q("md", "KeyDescriptor")):
        if key.get("use") not in (None, "signing"):
            continue
        for cert in key.iter(q("ds", "X509Certificate")):
            text = "".join((cert.text or "").split())
            if text and text not in certs:
                certs.append(text)
    if not certs:
        raise SsoError("bad_metadata", "The metadata contains no signing certificate.")
    return IdpMetadata(entity.get("entityID", ""), sso_url, tuple(certs))


async def fetch_metadata(url: str, *, production: bool) -> str:
    """Download IdP metadata (https only in production, size-limited)."""
    if not url.startswith("https://") and (production or not url.startswith("http://")):
        raise SsoError("bad_metadata_url", "The metadata URL must start with https://.")
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise SsoError("idp_unreachable", f"Could not download the metadata ({type(exc).__name__}).") from None
    if response.status_code != 200:
        raise SsoError("idp_error", f"The metadata URL answered {response.status_code}.")
    if len(response.content) > MAX_METADATA_BYTES:
        raise SsoError("metadata_too_large", "The metadata is larger than 512 KB.")
    return response.text


def pem(certificate_b64: str) -> str:
    """A base64 certificate body as PEM."""
    body = "\n".join(certificate_b64[i:i + 64] for i in range(0, len(certificate_b64), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


# -- the SP ------------------------------------------------------------------------------------------------------

def sp_urls(origin: str, connection_id: Any) -> tuple[str, str]:
    """(entity id, ACS URL) of a connection on this host."""
    base = f"{origin}/sso/saml/{connection_id}"
    return f"{base}/metadata", f"{base}/acs"


@contextmanager
def sp_client(connection: dict[str, Any], sp_key: str, origin: str) -> Iterator[Saml2Client]:
    """A pysaml2 client for one connection (key and certificate live in a private temp dir meanwhile)."""
    entity_id, acs = sp_urls(origin, connection["id"])
    with tempfile.TemporaryDirectory(prefix="portal-saml-") as folder:
        key_file, cert_file = os.path.join(folder, "sp.key"), os.path.join(folder, "sp.crt")
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            handle.write(sp_key)
        with open(cert_file, "w") as handle:
            handle.write(connection["saml_sp_cert"])
        config: dict[str, Any] = {
            "entityid": entity_id, "xmlsec_binary": XMLSEC_BINARY, "key_file": key_file, "cert_file": cert_file,
            "accepted_time_diff": int(CLOCK_SKEW.total_seconds()), "allow_unknown_attributes": True,
            "service": {"sp": {
                "endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]},
                "want_assertions_signed": True, "want_response_signed": False,
                "authn_requests_signed": True, "allow_unsolicited": bool(connection["saml_idp_initiated"]),
                "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
                "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            }},
        }
        if connection["saml_metadata"]:
            config["metadata"] = {"inline": [connection["saml_metadata"]]}
        sp_config = SPConfig()
        sp_config.load(config)
        yield Saml2Client(config=sp_config)


def sp_metadata(connection: dict[str, Any], sp_key: str, origin: str) -> str:
    """The SP metadata the customer's IT admin uploads to their IdP."""
    with sp_client({**connection, "saml_metadata": ""}, sp_key, origin) as client:
        xml = create_metadata_string(None, config=client.config, sign=False)
    return xml.decode() if isinstance(xml, bytes) else str(xml)


def authn_request_redirect(connection: dict[str, Any], sp_key: str, origin: str) -> tuple[str, str]:
    """(request id, IdP URL carrying the signed AuthnRequest, HTTP-Redirect binding)."""
    with sp_client(connection, sp_key, origin) as client:
        request_id, info = client.prepare_for_authenticate(
            entityid=connection["saml_idp_entity_id"], binding=BINDING_HTTP_REDIRECT, sign=True,
            sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256, relay_state=str(connection["id"]))
    location = dict(info["headers"])["Location"]
    return str(request_id), location


# -- the response -----------------------------------------------------------------------------------------------

@dataclass
class ParsedResponse:
    """The parts of a structurally sound SAML response the later checks need."""

    xml: bytes
    root: Element
    assertion: Element
    assertion_id: str
    in_response_to: str


def decode_response(raw: str) -> ParsedResponse:
    """Size limit, base64, safe parsing and structure: one signed-looking assertion, strong algorithms."""
    if not raw:
        raise SsoError("missing_response", "The identity provider posted no SAMLResponse.")
    if len(raw) > MAX_RESPONSE_BYTES * 4 // 3 + 4:
        raise SsoError("response_too_large", "The SAML response is larger than 256 KB and was refused.")
    try:
        xml = base64.b64decode(raw.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        raise SsoError("malformed_response", "The SAML response is not valid base64.") from None
    root = safe_parse(xml, "SAML response")
    if root.tag != q("samlp", "Response"):
        raise SsoError("malformed_response", "The posted document is not a SAML Response.")
    status = root.find(f"{q('samlp', 'Status')}/{q('samlp', 'StatusCode')}")
    if status is None or status.get("Value") != SUCCESS:
        detail = status.get("Value", "").rpartition(":")[2] if status is not None else "missing"
        raise SsoError("idp_refused", f"The identity provider reports that the sign-in failed (status {detail}).")
    if root.find(f".//{q('saml', 'EncryptedAssertion')}") is not None:
        raise SsoError("encrypted_assertion", "Encrypted assertions are not supported: switch assertion encryption "
                                              "off for this application at the identity provider.")
    assertions = list(root.iter(q("saml", "Assertion")))
    if len(assertions) != 1 or assertions[0] not in list(root):
        raise SsoError("signature_wrapping", "The SAML response must contain exactly one assertion, directly in the "
                                             "response (possible signature wrapping).")
    ids = [el.get("ID") for el in root.iter() if el.get("ID") is not None]
    if len(ids) != len(set(ids)):
        raise SsoError("signature_wrapping", "The SAML response repeats an element ID (possible signature wrapping).")
    assertion = assertions[0]
    assertion_id = assertion.get("ID") or ""
    signature = assertion.find(q("ds", "Signature"))
    if signature is None:
        raise SsoError("unsigned_assertion", "The assertion is not signed. Configure the identity provider to sign "
                                             "assertions (signing only the response is not enough).")
    reference = signature.find(f"{q('ds', 'SignedInfo')}/{q('ds', 'Reference')}")
    if reference is None or reference.get("URI") != f"#{assertion_id}":
        raise SsoError("signature_wrapping", "The assertion's signature does not cover the assertion itself.")
    for sig in root.iter(q("ds", "Signature")):
        method = sig.find(f"{q('ds', 'SignedInfo')}/{q('ds', 'SignatureMethod')}")
        if method is None or method.get("Algorithm") not in STRONG_SIGNATURES:
            raise SsoError("weak_algorithm", "The identity provider signs with a weak algorithm "
                                             f"({method.get('Algorithm') if method is not None else 'none'}); "
                                             "configure RSA-SHA256.")
        for digest in sig.iter(q("ds", "DigestMethod")):
            if digest.get("Algorithm") not in STRONG_DIGESTS:
                raise SsoError("weak_algorithm", f"The identity provider uses a weak digest "
                                                 f"({digest.get('Algorithm')}); configure SHA-256.")
    return ParsedResponse(xml, root, assertion, assertion_id, root.get("InResponseTo") or "")


def verify_signature(parsed: ParsedResponse, certificates: tuple[str, ...], connection: dict[str, Any],
                     sp_key: str, origin: str) -> None:
    """xmlsec1 verifies the assertion's own signature with one of the pinned IdP certificates."""
    with sp_client(connection, sp_key, origin) as client, tempfile.TemporaryDirectory() as folder:
        for index, cert in enumerate(certificates):
            path = os.path.join(folder, f"idp{index}.pem")
            with open(path, "w") as handle:
                handle.write(pem(cert))
            try:
                if client.sec.verify_signature(parsed.xml.decode(), cert_file=path,
                                               node_name="urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
                                               node_id=parsed.assertion_id):
                    return
            except SignatureError:
                continue
    raise SsoError("bad_signature", "The assertion's signature does not match the identity provider's certificate "
                                    "(certificate mismatch, or the response was altered). Upload current metadata.")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SsoError("malformed_response", f"The SAML response has an unreadable time {value!r}.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_semantics(parsed: ParsedResponse, *, idp_entity_id: str, entity_id: str, acs_url: str,
                    request_id: str, now: datetime) -> None:
    """Issuer, Destination, Audience, Recipient, InResponseTo and the validity window of the signed assertion."""
    root, assertion = parsed.root, parsed.assertion
    issuers = [el.text.strip() if el.text else "" for el in (root.find(q("saml", "Issuer")),
                                                             assertion.find(q("saml", "Issuer"))) if el is not None]
    if not issuers or any(issuer != idp_entity_id for issuer in issuers):
        raise SsoError("wrong_issuer", f"The response comes from {issuers[-1] if issuers else 'an unnamed issuer'!r}, "
                                       f"not from the configured identity provider {idp_entity_id!r} (foreign issuer).")
    destination = root.get("Destination")
    if destination is not None and destination != acs_url:
        raise SsoError("wrong_destination", f"The response is addressed to {destination!r}, not to this portal's "
                                            f"ACS URL {acs_url!r} (wrong destination).")
    conditions = assertion.find(q("saml", "Conditions"))
    if conditions is None:
        raise SsoError("malformed_response", "The assertion has no Conditions (validity window and audience).")
    audiences = [(el.text or "").strip() for el in conditions.iter(q("saml", "Audience"))]
    if entity_id not in audiences:
        raise SsoError("wrong_audience", f"The assertion is meant for {', '.join(audiences) or 'no one'} and not for "
                                         f"this portal ({entity_id}): wrong audience. Check the SP entity id.")
    not_before, not_after = _time(conditions.get("NotBefore")), _time(conditions.get("NotOnOrAfter"))
    if not_before is not None and now + CLOCK_SKEW < not_before:
        raise SsoError("not_yet_valid", "The assertion is not valid yet: the identity provider's clock is ahead of "
                                        "ours (clock skew). Check NTP on the identity provider.")
    if not_after is not None and now - CLOCK_SKEW >= not_after:
        raise SsoError("expired", "The assertion has expired. If this keeps happening, the clocks disagree "
                                  "(clock skew).")
    confirmations = [c for c in assertion.iter(q("saml", "SubjectConfirmation"))
                     if c.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"]
    if not confirmations:
        raise SsoError("malformed_response", "The assertion has no bearer subject confirmation.")
    data = confirmations[0].find(q("saml", "SubjectConfirmationData"))
    recipient = data.get("Recipient") if data is not None else None
    if data is None or recipient != acs_url:
        raise SsoError("wrong_recipient", f"The assertion's Recipient is {recipient!r}, not this portal's ACS URL "
                                          f"{acs_url!r} (wrong recipient).")
    confirm_until = _time(data.get("NotOnOrAfter"))
    if confirm_until is None or now - CLOCK_SKEW >= confirm_until:
        raise SsoError("expired", "The assertion's subject confirmation has expired (clock skew?).")
    if (data.get("InResponseTo") or "") != request_id or (parsed.in_response_to or "") != request_id:
        raise SsoError("unknown_state", "The response answers another sign-in request (InResponseTo mismatch).")


def second_layer(parsed: ParsedResponse, raw: str, connection: dict[str, Any], sp_key: str, origin: str,
                 request_id: str) -> None:
    """pysaml2's own validation of the same response (defence in depth); any objection refuses it."""
    outstanding = {request_id: "/"} if request_id else {}
    with sp_client(connection, sp_key, origin) as client:
        try:
            result = client.parse_authn_request_response(raw, BINDING_HTTP_POST, outstanding=outstanding)
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types; the reason is what matters
            raise SsoError("invalid_response", f"The SAML response failed validation ({type(exc).__name__}).") \
                from None
    if result is None or result.assertion is None or result.assertion.id != parsed.assertion_id:
        raise SsoError("invalid_response", "The SAML response failed validation (no usable assertion).")


def attributes(assertion: Element) -> dict[str, list[str]]:
    """Attribute values by Name and by FriendlyName."""
    values: dict[str, list[str]] = {}
    for attribute in assertion.iter(q("saml", "Attribute")):
        texts = [(v.text or "").strip() for v in attribute.findall(q("saml", "AttributeValue"))]
        for key in (attribute.get("Name"), attribute.get("FriendlyName")):
            if key:
                values.setdefault(key, []).extend(texts)
    return values


def identity_of(parsed: ParsedResponse, connection: dict[str, Any]) -> tuple[str, str, str, list[str]]:
    """(email, name, subject, groups) from the attributes, the NameID filling a missing email."""
    attrs = attributes(parsed.assertion)
    name_id = parsed.assertion.find(f"{q('saml', 'Subject')}/{q('saml', 'NameID')}")
    subject = (name_id.text or "").strip() if name_id is not None else ""
    email = next(iter(attrs.get(connection["saml_email_attribute"] or "email", [])), "")
    if not email and "@" in subject:
        email = subject
    if "@" not in email:
        raise SsoError("no_email", f"The assertion carries no email address (attribute "
                                   f"{connection['saml_email_attribute']!r} or an email NameID).")
    name = " ".join(attrs.get(connection["saml_name_attribute"] or "name", [])[:1])
    groups = attrs.get(connection["groups_attribute"] or "groups", [])
    return email, name, subject or email, groups


async def start_saml(ctx: Any, connection: dict[str, Any], *, email_hint: str = "", test_by: Any = None
                     ) -> Response[Any]:
    """Send the browser to the IdP with a signed AuthnRequest; its id is the outstanding request."""
    from plugins.sso.service import create_pending
    from plugins.sso.signin import SAML_COOKIE, base_url, set_binding_cookie

    if not connection["saml_metadata"] or not connection["saml_idp_entity_id"]:
        raise SsoError("not_configured", "Upload the identity provider's metadata first.")
    sp_key = ctx.runtime.secrets.decrypt(connection["saml_sp_key"])
    request_id, location = await anyio.to_thread.run_sync(
        authn_request_redirect, connection, sp_key, base_url(ctx))
    pending = await create_pending(ctx, connection, email_hint=email_hint, request_id=request_id, test_by=test_by)
    response = Redirect(location)
    set_binding_cookie(response, ctx, SAML_COOKIE, pending.cookie)
    return response


def assertion_expiry(parsed: ParsedResponse, now: datetime) -> datetime:
    """How long the replay cache must remember this assertion id."""
    conditions = parsed.assertion.find(q("saml", "Conditions"))
    until = _time(conditions.get("NotOnOrAfter")) if conditions is not None else None
    return max(until or now, now) + CLOCK_SKEW + timedelta(minutes=5)
