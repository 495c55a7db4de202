"""The serving package's one error type and its one JSON rendering.

A :class:`ServingError` is answered as TF Serving answers: an HTTP ``status`` with the body ``{"error": message}``
(:meth:`ServingError.body`, the REST front end and the HTTP limits both write it), or the gRPC code TF Serving maps
that status to (:mod:`kerasapps.serving.grpc_api`). Messages quote a client's values the way TF Serving's
``json_tensor.cc`` does: :func:`json_type` names a JSON value's type ("Null", "Object", "Array", "String",
"Number", "True", "False") and :func:`show` renders the value, cut short.
"""

from __future__ import annotations

import json
import re

__all__ = ["ServingError", "bad", "error_body", "json_type", "show", "MAX_SHOWN", "LONE_SURROGATE"]

MAX_SHOWN = 120  # characters of a client's value echoed in an error message
MAX_MESSAGE = 2000  # characters of a message in an error body


class ServingError(Exception):
    """An error answered as TF Serving does: HTTP ``status`` and ``{"error": message}`` (gRPC maps the status)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> bytes:
        """The JSON error body of this error (see :func:`error_body`)."""
        return error_body(self.message)


def bad(message: str) -> ServingError:
    """A 400 (TF Serving's INVALID_ARGUMENT): the request is wrong."""
    return ServingError(400, message)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # what UTF-8 cannot encode: a client's "\\udc80" escape


def error_body(message: str, limit: int = MAX_MESSAGE) -> bytes:
    """The JSON error body ``{"error": message}``, valid UTF-8 whatever ``message`` holds.

    Lone surrogates (a request's ``signature_name`` may hold ``"\\udc80"``) become U+FFFD, and a
    message longer than ``limit`` characters is cut there and ends in ``...``, so a client's
    megabytes are never echoed back.
    """
    if len(message) > limit:
        message = message[:limit] + "..."
    text = json.dumps({"error": message}, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def json_type(value) -> str:
    """The JSON type's name as TF Serving's messages give it (``JsonTypeString`` in ``json_tensor.cc``)."""
    if value is True or value is False:
        return str(value)
    return {type(None): "Null", dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _pieces(value, room: list):
    """JSON text of ``value`` piece by piece, stopping once ``room[0]`` characters are out."""
    if type(value) is list or type(value) is dict:
        is_list = type(value) is list
        yield "[" if is_list else "{"
        room[0] -= 1
        for index, item in enumerate(value if is_list else value.items()):
            if room[0] <= 0:
                return
            if index:
                yield ","
            if is_list:
                yield from _pieces(item, room)
            else:
                yield from _pieces(item[0], room)
                yield ":"
                yield from _pieces(item[1], room)
        yield "]" if is_list else "}"
    else:
        if isinstance(value, str) and len(value) > MAX_SHOWN:
            value = value[:MAX_SHOWN + 1]
        text = json.dumps(value, default=str)
        room[0] -= len(text)
        yield text


def show(value) -> str:
    """``value`` as JSON (ASCII) for an error message, cut at ``MAX_SHOWN`` characters.

    Only the part shown is ever serialized: megabytes of client input cost nothing here.
    """
    room = [MAX_SHOWN + 1]
    text = "".join(_pieces(value, room))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."
