"""A REST request's body, before its tensors: ``Content-Encoding`` undone within a size limit, values bounded
before parsing, the JSON object parsed.

:func:`decode_body` undoes ``gzip``/``deflate`` (TF Serving inflates gzip only, up to 100 MB) and stops with a
413 once the output passes the limit, so a zip bomb is never expanded in full; :func:`count_upper_bound` bounds
a body's values before it is parsed; :func:`parse_request` parses a body that must be a JSON object and notes
what a quick scan of its bytes proved (:class:`ParsedRequest`), which lets :mod:`kerasapps.serving.codec` build
arrays of plain numbers with ``np.array`` alone.
"""

from __future__ import annotations

import json
import re
import zlib

import orjson

from kerasapps.serving.errors import ServingError, bad, show

_SCAN_CAP = 64  # places of one letter a body's scan looks at before it gives up (see _scan)

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_CODINGS = ("gzip", "x-gzip", "deflate")


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with its ``Content-Encoding`` undone, at most ``limit`` bytes once decoded.

    ``gzip`` (``x-gzip``), ``deflate`` (zlib or raw) and ``identity`` are understood, also listed
    together as in ``gzip, identity`` (undone last first). Decompression is incremental: it stops
    with a 413 as soon as the output passes ``limit``, so a zip bomb is never expanded in full. An
    unknown coding is a 415 (nothing is decoded), a corrupt or truncated stream a 400.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in _CODINGS:
            raise ServingError(415, f"Unsupported Content-Encoding: {coding[:100]} "
                                    "(supported: gzip, deflate, identity)")
    for coding in reversed(codings):
        body = _inflate(body, coding, limit)
    if len(body) > limit:
        raise ServingError(413, f"Request body of {len(body)} bytes exceeds the limit of {limit} bytes")
    return body


def _is_zlib_stream(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    if coding == "deflate":  # RFC 9110 says zlib; some clients send raw deflate
        wbits = zlib.MAX_WBITS if _is_zlib_stream(data) else -zlib.MAX_WBITS
    else:
        wbits = _GZIP_WBITS
    chunks, size = [], 0
    decoder = zlib.decompressobj(wbits)
    try:
        while True:
            # Never more than one byte past the limit: the 413 comes before anything larger is made.
            chunk = decoder.decompress(data, limit - size + 1)
            size += len(chunk)
            if size > limit:
                raise ServingError(413, f"Request body exceeds the limit of {limit} bytes once "
                                        f"decompressed ({coding})")
            chunks.append(chunk)
            data = decoder.unconsumed_tail
            if decoder.eof:
                data = decoder.unused_data
                if not data.strip(b"\0"):
                    break
                if wbits != _GZIP_WBITS:
                    raise bad(f"Unable to decompress the request body ({coding}): data after its end")
                decoder = zlib.decompressobj(wbits)  # a gzip body may hold several members
            elif not data:  # a chunk under the limit used all input: the stream was cut short
                raise bad(f"Unable to decompress the request body ({coding}): it is truncated")
    except zlib.error as exc:
        raise bad(f"Unable to decompress the request body ({coding}): {exc}") from None
    return b"".join(chunks)


def count_upper_bound(body: bytes) -> int:
    """An upper bound of the values in any JSON document ``body`` can hold, found without parsing.

    Values are the leaves: numbers, strings, ``true``/``false``/``null`` and empty arrays or
    objects (object keys are not values). Every value but the first of its array or object is
    preceded by a comma of its own, so a document of N values holds at least N - 1 commas; commas in
    strings (or bytes 0x2C inside UTF-16/32 code units) only raise the bound. So ``body.count(b",") + 1``
    bounds the tensor values :func:`decode_inputs` will count, and a server can refuse a body over its
    element limit before ``json.loads`` allocates a Python object per value.
    """
    return body.count(b",") + 1


class ParsedRequest(dict):
    """A parsed request (a plain dict to its users) with what a scan of its bytes proved (see _scan).

    The facts hold for the document as parsed (add no keys to it); a plain dict gets every value checked.
    """

    quotes = -1
    integral = False


def _positions(body: bytes, letter: bytes) -> list[int] | None:
    """Where ``letter`` is in ``body``; None past ``_SCAN_CAP`` places."""
    found, at = [], body.find(letter)
    while at >= 0:
        if len(found) == _SCAN_CAP:
            return None
        found.append(at)
        at = body.find(letter, at + 1)
    return found


def _scan(body: bytes) -> tuple[int, bool]:
    """``(quotes, integral)``: what a few memchr-fast looks at a body prove about its values.

    ``quotes`` is the number of ``"`` if ``body`` is UTF-8 with no backslash and no ``true``, ``false``
    or ``null`` token, else -1. Without backslashes every ``"`` opens or closes a string, so when it
    equals twice the keys and string values a request is known to hold, its tensors hold numbers
    only: ``np.array`` of them cannot mix types (``[1, true]``), take ``null`` for NaN or make a huge
    ``<U`` array of one long string. ``integral``: besides, no ``.``, ``N``, ``I``, ``E`` and no ``e``
    after a digit: every number is an integer. The letters looked at (u, l, e) are rare outside
    tokens and keys; a body with more than ``_SCAN_CAP`` of one gets the safe answer (-1, False).
    """
    if b"\\" in body or json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
        return -1, False
    us, ls = _positions(body, b"u"), _positions(body, b"l")  # true and null hold a u, false an l
    if us is None or ls is None:
        return -1, False
    for at in us:
        if (at >= 2 and body.startswith(b"true", at - 2)) or (at >= 1 and body.startswith(b"null", at - 1)):
            return -1, False
    for at in ls:
        if at >= 2 and body.startswith(b"false", at - 2):
            return -1, False
    quotes = _positions(body, b'"')
    quotes = body.count(b'"') if quotes is None else len(quotes)
    if b"." in body or b"N" in body or b"I" in body or b"E" in body:
        return quotes, False
    es = _positions(body, b"e")
    return quotes, es is not None and not any(body[at - 1:at].isdigit() for at in es)


def _fast_loads(body: bytes):
    """``orjson.loads`` (about 5x faster than ``json`` on a 28x28 image): the same objects for the strict JSON
    it accepts, except integers past 64 bits, which it may make floats; bodies with 19 digits in a row, and
    what it refuses (NaN, lone surrogates), go to ``json``."""
    doc = orjson.loads(body)
    if _HUGE_INTEGER.search(body) is not None:
        raise ValueError("an integer of more than 64 bits")
    return doc


_HUGE_INTEGER = re.compile(rb"\d{19}")  # 19 or more digits in a row: maybe past 64 bits


def parse_request(body: bytes) -> dict:
    """Parse a request body that must be a JSON object (NaN/Infinity allowed).

    The dict returned also carries what a quick scan of ``body`` proved, which lets
    :func:`decode_inputs` build arrays of numbers by ``np.array`` alone when it is safe.
    """
    if not body:
        raise bad("JSON Parse error: The document is empty")
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    try:
        doc = _fast_loads(body)
    except ValueError:  # NaN/Infinity, lone surrogates, very deep nesting: the standard parser decides
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise bad(f"JSON Parse error: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise bad(f"JSON Value: {show(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise bad(f"JSON Value: {show(signature_name)} not formatted correctly. "
                  "'signature_name' key must be a string value.")
    request = ParsedRequest(doc)
    request.quotes, request.integral = _scan(body)
    return request
