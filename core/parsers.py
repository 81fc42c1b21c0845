"""Reading untrusted request input: the one JSON parser of the API and the PayPal webhook, and the
check that keeps control characters of headers and query values away from the database.

``json_parse`` turns anything that is not JSON the shop can hold into ``InvalidJSON`` (400
``invalid_json``): bytes that are not text in the declared charset, malformed JSON, nesting deeper
than ``JSON_MAX_DEPTH`` (including what would overflow the decoder's recursion limit), numbers too
large to read (``NaN``, ``Infinity``, ``1e999``, integers over Python's digit limit), and strings that
PostgreSQL cannot store (U+0000, unpaired surrogates).
"""

import json
import math
import re
from typing import Any

from rest_framework import parsers

from core.errors import InvalidJSON

# No request of the shop nests deeper than a PayPal event (about 8 levels); 32 leaves room.
JSON_MAX_DEPTH = 32

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def has_control_characters(value: str) -> bool:
    """Whether ``value`` holds an ASCII control character (NUL, CR, LF, ESC, DEL, ...)."""
    return bool(_CONTROL_CHARACTERS.search(value))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def json_parse(data: bytes | str, *, encoding: str = "utf-8") -> Any:
    """Decode one JSON document, or raise ``InvalidJSON`` saying why not."""
    try:
        text = data.decode(encoding) if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as error:
        raise InvalidJSON(f"The JSON body is nested deeper than {JSON_MAX_DEPTH} levels.") from error
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits, out of range
        raise InvalidJSON(f"The request body is not valid JSON: {error}") from error
    _check_parsed(value)
    return value


def _check_parsed(value: Any) -> None:
    """Walk the decoded document without recursion: bounded depth, only storable strings."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise InvalidJSON("The JSON body holds a NUL character or an unpaired surrogate.")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= JSON_MAX_DEPTH:
            raise InvalidJSON(f"The JSON body is nested deeper than {JSON_MAX_DEPTH} levels.")
        if isinstance(item, dict):
            pending.extend((key, depth + 1) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        else:
            pending.extend((child, depth + 1) for child in item)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (it reads the body through ``request.body``, so Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` applies: 413), decoding with ``json_parse``."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        return json_parse(stream.read(), encoding=encoding)
