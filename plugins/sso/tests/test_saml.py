"""SAML sign-in with pysaml2's IdP in process: the happy path and every rejection from the issue.

The portal runs over ``https://`` (ASGI transport) because the SAML binding cookie is
``SameSite=None; Secure``, as it must be for the IdP's cross-site POST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.tables import Membership, User, UserSession
from core.testing import CSRF_INPUT, login, refresh_tenants
from plugins.sso.tables import SsoConnection
from plugins.sso.tests.helpers import corp_domain, sessions_of, sso_setup, verify_domain_via_ui
from plugins.sso.tests.saml_idp import PySamlIdp, encode


def https_client(app: Any, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 51000))
    return httpx.AsyncClient(transport=transport, base_url=f"https://{host}", follow_redirects=False)


async def https_form_post(client: httpx.AsyncClient, path: str, data: dict[str, Any], token_from: str,
                          files: dict[str, Any] | None = None) -> httpx.Response:
    page = await client.get(token_from)
    token = CSRF_INPUT.search(page.text)
    assert token, page.text[:500]
    return await client.post(path, data={"_csrf_token": token.group(1), **data}, files=files)


@dataclass
class SamlOrg:
    app: Any
    tenant: Any
    domain: str
    connection: dict[str, Any]
    idp: PySamlIdp
    recorder: Any

    @property
    def acs(self) -> str:
        return f"/sso/saml/{self.connection['id']}/acs"


async def configure_saml(app: Any, tenant: Any, tiny_dns: Any, recorder: Any, *, idp: PySamlIdp | None = None,
                         idp_initiated: bool = False, **policy: str) -> SamlOrg:
    """The admin's steps: domain, "Set up SAML", download SP metadata, upload the IdP's, switch on."""
    owner = https_client(app, tenant.host)
    assert (await login(owner, tenant.email("owner"))).status_code == 302
    domain = corp_domain()
    await verify_domain_via_ui(owner, tenant, tiny_dns, domain)
    page = f"/o/{tenant.org_slug}/sso"
    response = await https_form_post(owner, f"{page}/connection", {"protocol": "saml"}, page)
    assert response.status_code == 302
    connection = await SsoConnection.select().where(SsoConnection.organization == tenant.org_id).first()
    settings = await owner.get(page)
    assert "Download SP metadata" in settings.text
    sp_metadata = await owner.get(f"/sso/saml/{connection['id']}/metadata")
    assert sp_metadata.status_code == 200 and "EntityDescriptor" in sp_metadata.text
    if idp is None:
        idp = PySamlIdp(sp_metadata.text)
    else:
        idp.server.metadata.imp({"inline": [sp_metadata.text]})
    response = await https_form_post(owner, f"{page}/saml", {
        "saml_email_attribute": "mail", "saml_name_attribute": "displayName",
        **({"saml_idp_initiated": "on"} if idp_initiated else {})}, page,
        files={"saml_metadata_file": ("idp.xml", idp.metadata().encode(), "application/xml")})
    assert response.status_code == 302, response.text
    page_response = await https_form_post(owner, f"{page}/policy", {
        "enabled": "on", "policy": "optional", "default_role": "member", "group_roles": "", **policy}, page)
    assert page_response.status_code == 302, page_response.text
    row = await SsoConnection.select().where(SsoConnection.id == connection["id"]).first()
    return SamlOrg(app, tenant, domain, row, idp, recorder)


@pytest.fixture
async def org(portal_app_factory, make_tenant, recorder, tiny_dns) -> SamlOrg:
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    return await configure_saml(app, tenant, tiny_dns, recorder, group_roles="finance = billing")


async def start(org: SamlOrg, browser: httpx.AsyncClient, email: str) -> Any:
    """Continue with SSO → email → the signed AuthnRequest the IdP receives."""
    response = await https_form_post(browser, "/sso/start", {"email": email}, "/sso/start")
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith("https://idp.test/sso?SAMLRequest=")
    assert "portal_sso_saml" in response.headers["set-cookie"] and "SameSite=none" in response.headers["set-cookie"]
    return org.idp.parse_request(response.headers["location"])


async def post_response(org: SamlOrg, browser: httpx.AsyncClient, xml: str) -> httpx.Response:
    return await browser.post(org.acs, data={"SAMLResponse": encode(xml), "RelayState": str(org.connection["id"])})


async def test_saml_sign_in_jit_and_role_mapping(org: SamlOrg):
    browser = https_client(org.app, org.tenant.host)
    email = f"pat@{org.domain}"
    request = await start(org, browser, email)
    response = await post_response(org, browser, org.idp.respond(request, email, groups=["finance"]))
    assert response.status_code == 302, response.text
    assert response.headers["location"] == f"/o/{org.tenant.org_slug}/"
    overview = await browser.get(response.headers["location"])
    assert overview.status_code == 200
    user = await User.select().where(User.tenant == org.tenant.id, User.email == email).first()
    assert user["name"] == "Pat"
    membership = await Membership.select().where(Membership.user == user["id"]).first()
    assert membership["role"] == "billing"
    session = await UserSession.select().where(UserSession.user == user["id"]).first()
    assert session["auth_method"] == "saml"
    assert [e.type for e in org.recorder.of("sso.login.")] == ["sso.login.succeeded"]


async def test_sp_metadata_and_settings_page(org: SamlOrg):
    client = https_client(org.app, org.tenant.host)
    metadata = await client.get(f"/sso/saml/{org.connection['id']}/metadata")
    assert f"https://{org.tenant.host}/sso/saml/{org.connection['id']}/acs" in metadata.text
    assert "BEGIN" not in metadata.text and "PRIVATE" not in metadata.text
    assert "X509Certificate" in metadata.text
    stored = await SsoConnection.select(SsoConnection.saml_sp_key).where(SsoConnection.id == org.connection["id"]
                                                                         ).first()
    assert "PRIVATE KEY" not in stored["saml_sp_key"]  # encrypted at rest


def shift(xml: str, attribute: str, delta: timedelta) -> str:
    """Move every ``attribute="<time>"`` by ``delta``."""
    def move(match: re.Match[str]) -> str:
        when = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) + delta
        return f'{attribute}="{when.strftime("%Y-%m-%dT%H:%M:%SZ")}"'
    return re.sub(rf'{attribute}="([^"]+)"', move, xml)


def assertion_id(xml: str) -> str:
    return re.search(r'Assertion [^>]*ID="([^"]+)"', xml).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("case, reason", [
    ("missing_signature", "unsigned_assertion"),
    ("unsigned_assertion_in_signed_response", "unsigned_assertion"),
    ("tampered", "bad_signature"),
    ("other_idp_key", "bad_signature"),
    ("signature_wrapping", "signature_wrapping"),
    ("sha1", "weak_algorithm"),
    ("wrong_audience", "wrong_audience"),
    ("wrong_recipient", "wrong_recipient"),
    ("wrong_destination", "wrong_destination"),
    ("expired", "expired"),
    ("not_yet_valid", "not_yet_valid"),
    ("foreign_issuer", "wrong_issuer"),
    ("in_response_to_unknown", "unknown_state"),
    ("xxe", "unsafe_xml"),
    ("entity_expansion", "unsafe_xml"),
    ("foreign_domain", "domain_not_verified"),
])
async def test_crafted_responses_are_refused(org: SamlOrg, case: str, reason: str):
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    browser = https_client(org.app, org.tenant.host)
    email = f"eve@{org.domain}"
    request = await start(org, browser, email)
    idp = org.idp
    good = idp.respond(request, email)
    aid = assertion_id(good)
    if case == "missing_signature":
        xml = idp.respond(request, email, sign_assertion=False)
    elif case == "unsigned_assertion_in_signed_response":
        xml = idp.respond(request, email, sign_assertion=False, sign_response=True)
    elif case == "tampered":
        xml = good.replace(f">{email}<", f">boss@{org.domain}<")
    elif case == "other_idp_key":
        impostor = PySamlIdp(_sp_metadata_of(org))  # same entity id, its own key: a certificate mismatch
        xml = impostor.respond(request, email)
    elif case == "signature_wrapping":
        # an unsigned evil assertion in front; the genuine signed one hidden inside it
        genuine = re.search(r"(<ns1:Assertion .*</ns1:Assertion>)", good, re.S).group(1)  # type: ignore[union-attr]
        evil = genuine.replace(aid, "id-evil").replace(f">{email}<", f">boss@{org.domain}<")
        evil = re.sub(r"<ns2:Signature.*</ns2:Signature>", "", evil, flags=re.S)
        evil = evil.replace("</ns1:Assertion>", f"<ns1:Advice>{genuine}</ns1:Advice></ns1:Assertion>", 1)
        xml = good.replace(genuine, evil)
    elif case == "sha1":
        xml = idp.respond(request, email, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    elif case == "wrong_audience":
        entity = f"https://{org.tenant.host}/sso/saml/{org.connection['id']}/metadata"
        xml = idp.resign(good.replace(f">{entity}<", ">https://other-sp.example/metadata<"), aid)
    elif case == "wrong_recipient":
        xml = idp.resign(re.sub(r'Recipient="[^"]+"', 'Recipient="https://evil.example/acs"', good), aid)
    elif case == "wrong_destination":
        xml = idp.respond(request, email, destination="https://evil.example/acs")
    elif case == "expired":
        xml = idp.resign(shift(shift(good, "NotOnOrAfter", timedelta(hours=-2)), "NotBefore", timedelta(hours=-2)),
                         aid)
    elif case == "not_yet_valid":
        xml = idp.resign(shift(shift(good, "NotBefore", timedelta(hours=2)), "NotOnOrAfter", timedelta(hours=2)), aid)
    elif case == "foreign_issuer":
        xml = idp.resign(good.replace(">https://idp.test/metadata<", ">https://evil-idp.example/metadata<"), aid)
    elif case == "in_response_to_unknown":
        xml = idp.respond(request, email, in_response_to="id-never-sent")
    elif case == "xxe":
        xml = good.replace('<?xml version="1.0"?>', '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM '
                           '"file:///etc/passwd">]>').replace(f">{email}<", ">&x;<")
    elif case == "entity_expansion":
        lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(8))
        xml = good.replace('<?xml version="1.0"?>', f'<?xml version="1.0"?><!DOCTYPE r [{lol}]>').replace(
            f">{email}<", ">&l7;<")
    else:  # foreign_domain: the IdP asserts an address of a domain this organization never verified
        xml = idp.respond(request, "victim@another-company.example")
    response = await post_response(org, browser, xml)
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text
    failures = org.recorder.of("sso.login.failed", org.tenant.id)
    assert [e.data["reason"] for e in failures] == [reason], [e.data for e in failures]
    assert not org.recorder.of("sso.login.succeeded")
    assert await UserSession.count().where(UserSession.tenant == org.tenant.id, UserSession.auth_method == "saml") == 0


def _sp_metadata_of(org: SamlOrg) -> str:
    from plugins.sso import saml

    return saml.sp_metadata(org.connection, org.app.state.portal.secrets.decrypt(org.connection["saml_sp_key"]),
                            f"https://{org.tenant.host}")


async def test_replayed_response_and_assertion_are_refused(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    org = await configure_saml(app, tenant, tiny_dns, recorder, idp_initiated=True)
    browser = https_client(app, tenant.host)
    email = f"sam@{org.domain}"
    request = await start(org, browser, email)
    xml = org.idp.respond(request, email)
    assert (await post_response(org, browser, xml)).status_code == 302
    # the same response again: its InResponseTo was answered already
    again = await post_response(org, https_client(app, tenant.host), xml)
    assert again.status_code == 400
    # an IdP-initiated assertion (no InResponseTo) replayed: the assertion id cache refuses it
    unsolicited = org.idp.respond(request, email, in_response_to="")
    unsolicited = re.sub(r' InResponseTo="[^"]*"', "", unsolicited)
    unsolicited = org.idp.resign(unsolicited, assertion_id(unsolicited))
    first = await post_response(org, https_client(app, tenant.host), unsolicited)
    assert first.status_code == 302, first.text
    replay = await post_response(org, https_client(app, tenant.host), unsolicited)
    assert replay.status_code == 400
    reasons = [e.data["reason"] for e in recorder.of("sso.login.failed", tenant.id)]
    assert reasons == ["replayed_state", "replayed_assertion"]
    assert len(recorder.of("sso.login.succeeded", tenant.id)) == 2


async def test_unsolicited_and_other_browser_are_refused(org: SamlOrg):
    browser = https_client(org.app, org.tenant.host)
    email = f"kim@{org.domain}"
    request = await start(org, browser, email)
    xml = org.idp.respond(request, email)
    victim = https_client(org.app, org.tenant.host)  # login CSRF: a browser without the binding cookie
    response = await post_response(org, victim, xml)
    assert response.status_code == 400
    unsolicited = re.sub(r' InResponseTo="[^"]*"', "", org.idp.respond(request, email, in_response_to=""))
    response = await post_response(org, victim, org.idp.resign(unsolicited, assertion_id(unsolicited)))
    assert response.status_code == 400
    assert [e.data["reason"] for e in org.recorder.of("sso.login.failed")] == ["browser_mismatch", "unsolicited"]
    assert await sessions_of(email, org.tenant.id) == 0


async def test_another_tenants_assertion_is_refused(portal_app_factory, make_tenant, recorder, tiny_dns):
    app, tenant_a = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    org_a = await configure_saml(app, tenant_a, tiny_dns, recorder)
    tenant_b = await make_tenant(plugins=["sso", "sso-events"], settings={"sso_dns_resolver": tiny_dns.address})
    await refresh_tenants(app)
    org_b = await configure_saml(app, tenant_b, tiny_dns, recorder, idp=org_a.idp)  # both trust the same IdP
    browser = https_client(app, tenant_a.host)
    email = f"lee@{org_a.domain}"
    xml = org_a.idp.respond(await start(org_a, browser, email), email)
    recorder.events.clear()
    # posted to tenant B's host with A's connection id: not found there
    b_browser = https_client(app, tenant_b.host)
    assert (await b_browser.post(org_a.acs, data={"SAMLResponse": encode(xml)})).status_code == 404
    # posted to B's own connection: not a request B made (and B is not the audience)
    response = await b_browser.post(org_b.acs, data={"SAMLResponse": encode(xml)})
    assert response.status_code == 400
    assert [e.data["reason"] for e in recorder.of("sso.login.failed", tenant_b.id)] == ["unknown_state"]
    assert await sessions_of(email, tenant_a.id) == 0 and await sessions_of(email, tenant_b.id) == 0


async def test_oversized_response_is_refused(org: SamlOrg):
    browser = https_client(org.app, org.tenant.host)
    response = await browser.post(org.acs, data={"SAMLResponse": "A" * (400 * 1024)})
    assert response.status_code in (400, 413)
    if response.status_code == 400:
        assert [e.data["reason"] for e in org.recorder.of("sso.login.failed")] == ["response_too_large"]


async def test_certificate_rollover_accepts_either_published_certificate(portal_app_factory, make_tenant, recorder,
                                                                        tiny_dns):
    """Metadata listing an old and a new certificate (rollover): assertions signed with the new one still pass."""
    from plugins.sso.certs import self_signed

    app, tenant = await sso_setup(portal_app_factory, make_tenant, recorder, tiny_dns)
    org = await configure_saml(app, tenant, tiny_dns, recorder)
    _key, old_cert = self_signed("old IdP certificate")
    old_body = "".join(line for line in old_cert.splitlines() if "CERTIFICATE" not in line)
    metadata = org.idp.metadata()
    key_descriptor = re.search(r"<(ns\d+):KeyDescriptor.*?</\1:KeyDescriptor>", metadata, re.S).group(0)  # type: ignore
    old_descriptor = re.sub(r"<(ns\d+):X509Certificate>.*?</\1:X509Certificate>",
                            rf"<\1:X509Certificate>{old_body}</\1:X509Certificate>", key_descriptor, flags=re.S)
    assert old_descriptor != key_descriptor
    await SsoConnection.update({SsoConnection.saml_metadata: metadata.replace(key_descriptor,
                                                                              old_descriptor + key_descriptor)}
                               ).where(SsoConnection.id == org.connection["id"])
    browser = https_client(app, tenant.host)
    email = f"roll@{org.domain}"
    response = await post_response(org, browser, org.idp.respond(await start(org, browser, email), email))
    assert response.status_code == 302, response.text
