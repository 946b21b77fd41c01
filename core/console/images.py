"""Logo uploads: what is accepted, and how it is made safe before it is stored.

Raster images (PNG, JPEG, GIF, WebP) are opened with Pillow, checked (decodes,
dimensions, no decompression bomb) and re-encoded to PNG, which drops metadata and
anything smuggled after the image data. SVG is parsed with ``defusedxml`` (no DTDs,
no entity expansion, no external references) and rebuilt from an allow-list of
elements and attributes: scripts, event handlers, ``foreignObject``, external links
and CSS that could load anything are removed. The served logo additionally carries
``Content-Security-Policy: default-src 'none'`` (core/routes/assets.py).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from xml.etree import ElementTree

MAX_LOGO_BYTES = 512 * 1024
MAX_FAVICON_BYTES = 100 * 1024
FAVICON_MAX_DIMENSION = 512
FAVICON_ACCEPTED = "ICO, PNG or SVG"
MAX_DIMENSION = 4096
MIN_DIMENSION = 16
RASTER_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
ACCEPTED = "PNG, JPEG, GIF, WebP or SVG"

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

SVG_ELEMENTS = {
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan", "title",
    "desc", "defs", "lineargradient", "radialgradient", "stop", "clippath", "mask", "pattern", "symbol", "use",
    "filter", "fegaussianblur", "feoffset", "feblend", "fecolormatrix", "feflood", "fecomposite", "femerge",
    "femergenode", "fedropshadow", "metadata",
}
SVG_ATTRIBUTES = {
    "id", "class", "viewbox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry",
    "d", "points", "fill", "fill-opacity", "fill-rule", "clip-rule", "stroke", "stroke-width", "stroke-linecap",
    "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "stroke-opacity", "opacity",
    "transform", "offset", "stop-color", "stop-opacity", "gradientunits", "gradienttransform", "spreadmethod",
    "fx", "fy", "font-family", "font-size", "font-weight", "font-style", "text-anchor", "dominant-baseline",
    "letter-spacing", "preserveaspectratio", "clip-path", "mask", "filter", "patternunits", "patterncontentunits",
    "patterntransform", "stddeviation", "dx", "dy", "in", "in2", "result", "mode", "values", "type", "operator",
    "flood-color", "flood-opacity", "maskunits", "maskcontentunits", "clippathunits", "filterunits", "version",
    "style", "href", "xml:space", "role", "aria-label", "aria-hidden", "display", "visibility",
}
UNSAFE_CSS = re.compile(r"url\s*\(|expression|@import|javascript:|behavior|-moz-binding", re.IGNORECASE)


class LogoError(ValueError):
    """The upload cannot be a logo; the message says why in words for the person uploading."""


@dataclass(frozen=True)
class CleanImage:
    """A validated logo ready to store."""

    data: bytes
    content_type: str
    width: int | None = None
    height: int | None = None


def clean_logo(data: bytes, filename: str = "") -> CleanImage:
    """Validate and sanitise an uploaded logo, or raise ``LogoError`` with the reason."""
    if not data:
        raise LogoError("Choose an image file to upload.")
    if len(data) > MAX_LOGO_BYTES:
        raise LogoError(f"The file is {len(data) // 1024} KB; logos may be at most {MAX_LOGO_BYTES // 1024} KB.")
    if _looks_like_svg(data):
        return CleanImage(sanitize_svg(data), "image/svg+xml")
    return _clean_raster(data)


def clean_favicon(data: bytes, filename: str = "") -> CleanImage:
    """Validate and sanitise an uploaded favicon (ICO, PNG or SVG), or raise ``LogoError`` with the reason.

    ICO and PNG are decoded with Pillow and re-encoded (ICO keeps its sizes up to 256 px), which drops
    anything hidden in the file; SVG goes through the same allow-list as logos.
    """
    if not data:
        raise LogoError("Choose an icon file to upload.")
    if len(data) > MAX_FAVICON_BYTES:
        raise LogoError(f"The file is {len(data) // 1024} KB; favicons may be at most "
                        f"{MAX_FAVICON_BYTES // 1024} KB.")
    if _looks_like_svg(data):
        return CleanImage(sanitize_svg(data), "image/svg+xml")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            probe.verify()
        if fmt not in {"ICO", "PNG"}:
            raise LogoError(f"{fmt} files cannot be favicons; upload an {FAVICON_ACCEPTED} file.")
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) > FAVICON_MAX_DIMENSION or min(width, height) < MIN_DIMENSION:
                raise LogoError(f"The icon is {width}×{height} pixels; use between {MIN_DIMENSION} and "
                                f"{FAVICON_MAX_DIMENSION} on each side (square works best).")
            sizes = sorted(image.info.get("sizes") or {(width, height)}) if fmt == "ICO" else []
            image.load()
            frame = image.convert("RGBA")
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise LogoError(f"This file is not an icon we can use; upload an {FAVICON_ACCEPTED} file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, LogoError):
            raise
        raise LogoError("The icon file is damaged or incomplete; export it again and retry.") from None
    out = io.BytesIO()
    if fmt == "ICO":
        keep = [s for s in sizes if max(s) <= 256] or [(min(width, 256), min(height, 256))]
        frame.save(out, format="ICO", sizes=keep)
        return CleanImage(out.getvalue(), "image/x-icon", width, height)
    frame.save(out, format="PNG", optimize=True)
    return CleanImage(out.getvalue(), "image/png", width, height)


def _looks_like_svg(data: bytes) -> bool:
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype")) and b"<svg" in data[:4096].lower()


def _clean_raster(data: bytes) -> CleanImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            probe.verify()
        if fmt not in RASTER_FORMATS:
            raise LogoError(f"{fmt} images are not accepted; upload a {ACCEPTED} file.")
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if max(width, height) > MAX_DIMENSION:
                raise LogoError(f"The image is {width}×{height} pixels; use at most {MAX_DIMENSION} on each side.")
            if min(width, height) < MIN_DIMENSION:
                raise LogoError(f"The image is {width}×{height} pixels; use at least {MIN_DIMENSION} on each side.")
            image.load()
            frame = image.convert("RGBA")
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise LogoError(f"This file is not an image we can use; upload a {ACCEPTED} file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, LogoError):
            raise
        raise LogoError("The image file is damaged or incomplete; export it again and retry.") from None
    out = io.BytesIO()
    frame.save(out, format="PNG", optimize=True)
    return CleanImage(out.getvalue(), "image/png", width, height)


def _local(tag: str) -> tuple[str, str]:
    """``(namespace, lower-case local name)`` of an ElementTree tag or attribute name."""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name.lower()
    return "", tag.lower()


def sanitize_svg(data: bytes) -> bytes:
    """Rebuild an SVG from allowed elements and attributes only (raises ``LogoError`` if it is not SVG)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ElementTree.ParseError):
        raise LogoError("This SVG cannot be read (malformed XML, or it uses DTDs/entities); export it again.") \
            from None
    ns, name = _local(root.tag)
    if name != "svg" or ns not in (SVG_NS, ""):
        raise LogoError(f"This file is not an SVG image; upload a {ACCEPTED} file.")
    clean = _clean_element(root)
    assert clean is not None
    clean.set("xmlns", SVG_NS)
    body = ElementTree.tostring(clean, encoding="unicode", short_empty_elements=True)
    return body.encode()


def _clean_element(element: ElementTree.Element) -> ElementTree.Element | None:
    ns, name = _local(element.tag)
    if ns not in (SVG_NS, "") or name not in SVG_ELEMENTS:
        return None
    out = ElementTree.Element(_canonical_tag(element.tag))
    for key, value in element.attrib.items():
        attr_ns, attr = _local(key)
        if attr_ns == XLINK_NS and attr == "href":
            attr = "href"
        elif attr_ns == "http://www.w3.org/XML/1998/namespace":
            attr = "xml:space" if attr == "space" else ""
        elif attr_ns:
            continue
        if attr not in SVG_ATTRIBUTES or attr.startswith("on"):
            continue
        if attr == "href" and not value.strip().startswith("#"):
            continue
        if (attr == "style" or "url(" in value.lower()) and UNSAFE_CSS.search(value) \
                and not re.fullmatch(r"\s*url\(\s*#[\w-]+\s*\)\s*", value):
            continue
        out.set(key if attr == "xml:space" else attr, value)
    out.text = element.text if name in {"text", "tspan", "title", "desc"} else None
    for child in element:
        cleaned = _clean_element(child)
        if cleaned is not None:
            cleaned.tail = child.tail if name in {"text", "tspan"} else None
            out.append(cleaned)
    return out


def _canonical_tag(tag: str) -> str:
    _ns, name = _local(tag)
    local = tag.split("}")[-1]
    return local if local.lower() == name else name
