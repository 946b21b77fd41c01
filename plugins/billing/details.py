"""Billing details form: validation of company, email, address, country and tax id / VAT number.

Tax ids are checked per country with ``python-stdnum`` (format and check digits, no
network lookup): EU countries take a VAT number (with or without the country
prefix, stored with it), other countries their national VAT/business number where
stdnum knows one (US EIN/TIN, GB VAT, CH UID, ...). Countries stdnum has no module
for accept the id as typed.
"""

from __future__ import annotations

import re
from typing import Any

from babel import Locale
from stdnum import get_cc_module
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

FIELDS = ("company_name", "billing_email", "address_line1", "address_line2", "postal_code", "city", "country",
          "tax_id", "po_number")
LIMITS = {"company_name": 200, "billing_email": 320, "address_line1": 200, "address_line2": 200, "postal_code": 20,
          "city": 100, "tax_id": 40, "po_number": 60}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NATIONAL_IDS = {"us": "ein"}  # companies in the US are billed under their EIN, not an individual's SSN
EU = {c.upper() for c in eu_vat.MEMBER_STATES} - {"XI"}


def countries(locale: str = "en") -> list[tuple[str, str]]:
    """(code, name) of every country, sorted by name, for the select."""
    names = Locale.parse(locale).territories
    return sorted(((code, name) for code, name in names.items() if len(code) == 2 and code.isalpha()),
                  key=lambda item: item[1])


def _explain(exc: ValidationError) -> str:
    if isinstance(exc, InvalidChecksum):
        return "the check digits do not match; look for a typo"
    if isinstance(exc, InvalidLength):
        return "it has the wrong number of characters"
    if isinstance(exc, InvalidFormat | InvalidComponent):
        return "it is not in the expected format"
    return "it is not valid"


def validate_tax_id(country: str, value: str) -> tuple[str, str | None]:
    """``(normalised id, error)``: e.g. ``("DE", "de 136 695 976")`` → ``("DE136695976", None)``."""
    value = value.strip()
    if not value:
        return "", None
    country = country.upper()
    if country in EU or (country == "GR" and value.upper().startswith("EL")):
        prefix = "EL" if country == "GR" else country
        number = eu_vat.compact(value)
        if not number[:2].isalpha():
            number = prefix + number
        if number[:2] != prefix:
            return value, f"A VAT number for this country starts with {prefix}."
        try:
            return eu_vat.validate(number), None
        except ValidationError as exc:
            return value, f"This is not a valid {prefix} VAT number: {_explain(exc)}."
    cc = country.lower()
    module = get_cc_module(cc, NATIONAL_IDS[cc]) if cc in NATIONAL_IDS else (
        get_cc_module(cc, "vat") or get_cc_module(cc, "tin"))
    if module is None:
        return value, None
    try:
        number = module.validate(value)
    except ValidationError as exc:
        label = getattr(module, "__doc__", "") or ""
        name = label.strip().splitlines()[0].split("(")[0].strip() if label else "tax id"
        return value, f"This is not a valid {name}: {_explain(exc)}."
    formatter = getattr(module, "format", None)
    return (formatter(number) if formatter else number), None


def validate_details(form: dict[str, Any], locale: str = "en") -> tuple[dict[str, str], dict[str, str]]:
    """``(clean values, field errors)`` of a submitted billing-details form."""
    values = {name: str(form.get(name, "") or "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    for name, limit in LIMITS.items():
        if len(values[name]) > limit:
            errors[name] = f"Use at most {limit} characters."
    if not values["company_name"]:
        errors["company_name"] = "Enter the company name invoices are made out to."
    if not values["billing_email"]:
        errors["billing_email"] = "Enter the address invoices are sent to."
    elif not EMAIL.match(values["billing_email"]):
        errors["billing_email"] = "Enter an email address like finance@example.com."
    values["country"] = values["country"].upper()
    known = {code for code, _ in countries(locale)}
    if values["country"] and values["country"] not in known:
        errors["country"] = "Choose a country from the list."
    if values["tax_id"]:
        if not values["country"]:
            errors["tax_id"] = "Choose the country first: the tax id is checked against its rules."
        elif "country" not in errors:
            normalised, problem = validate_tax_id(values["country"], values["tax_id"])
            if problem:
                errors["tax_id"] = problem
            else:
                values["tax_id"] = normalised
    return values, errors
