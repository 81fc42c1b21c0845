"""Schemathesis hooks of ``tests/test_api_schema_fuzz.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

``shape_acceptance``: a request the schema allows may be refused for what it names (a product that
does not exist, a username in use, wrong credentials) or for a rule JSON Schema cannot state (lines
of one product adding up to more than the per-line maximum), each with its own documented code;
never for its shape (``invalid``, ``invalid_json``, 413, 415). Schemathesis's own
``positive_data_acceptance`` cannot tell these apart: all are 400s.
"""

import schemathesis

# The codes of refusals for the shape of a request: the schema should have refused it first.
SHAPE_CODES = {"invalid", "invalid_json", "unsupported_media_type", "request_too_large", "bad_request"}


@schemathesis.check
def shape_acceptance(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 413, 415):
        return None
    try:
        code = response.json().get("code")
    except ValueError:
        code = None
    if code is None or code in SHAPE_CODES:
        raise AssertionError(
            f"The schema allows this request, the API refused its shape: {response.status_code} "
            f"{response.text[:1000]}"
        )
    return None
