"""The OpenAPI document states every limit the API enforces and every error it answers.

``ShopAutoSchema`` (drf-spectacular's ``DEFAULT_SCHEMA_CLASS``) adds to what drf-spectacular derives:

- ``minItems`` / ``maxItems`` of list fields (``allow_empty``, ``min_length``, ``max_length``);
- ``additionalProperties: false`` on request bodies that refuse unknown fields (``InputSerializer``);
- a pattern without U+0000 on request strings (DRF refuses NUL in every ``CharField``);
- the error answers every operation can get from the plumbing rather than from its view: 400
  ``invalid_json``, 413 and 415 when it reads a body, 401 when it authenticates, 403 when a
  session cookie needs a CSRF token, 406, and 429 when it is throttled; all with the ``Error``
  body ``{code, message}``.
"""

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import is_list_serializer
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS

NO_NUL_PATTERN = "^[^\\u0000]*$"


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable error code, e.g. `invalid_json`, `not_found`.")
    message = serializers.CharField(help_text="What went wrong, for people.")


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(required=False, help_text="The messages of each field that is wrong.")


class OutOfStockItemSerializer(serializers.Serializer):
    product = serializers.IntegerField()
    requested = serializers.IntegerField()
    available = serializers.IntegerField()


class OutOfStockErrorSerializer(ErrorSerializer):
    items = OutOfStockItemSerializer(
        many=True,
        required=False,
        help_text="`out_of_stock`: every line that asks for more than is available.",
    )


def error_response(description: str, *, with_errors: bool = False, body=None) -> OpenApiResponse:
    """An error answer of an operation: its body, and which codes it carries when."""
    body = body or (ValidationErrorSerializer if with_errors else ErrorSerializer)
    return OpenApiResponse(body, description=description)


INVALID_JSON = (
    "`invalid_json`: the body is not JSON (malformed, not UTF-8, nested too deep, numbers out of range)"
)
BODY_ERRORS = {
    400: error_response(INVALID_JSON, with_errors=True),
    413: error_response("`request_too_large`: the body is over the size limit"),
    415: error_response("`unsupported_media_type`: the body is not `application/json`"),
}
AUTHENTICATION_ERROR = error_response(
    "`not_authenticated`: no credentials; `authentication_failed`: an unknown or inactive token"
)
CSRF_FAILED = error_response(
    "`permission_denied`: a request authenticated by the session cookie without its CSRF token"
)
NOT_ACCEPTABLE = error_response("`not_acceptable`: the `Accept` header rules out JSON")
THROTTLED = error_response("`throttled`: too many requests; see `Retry-After`")


class ShopAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, error in self._plumbing_errors().items():
            key = str(code)
            if key not in responses:
                responses[key] = self._get_response_for_code(error, key, direction=direction)
            elif code == 400 and INVALID_JSON not in responses[key]["description"]:
                responses[key]["description"] = f"{responses[key]['description']}; {INVALID_JSON}"
        return responses

    def _plumbing_errors(self) -> dict[int, OpenApiResponse]:
        errors = {}
        if self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            errors.update(BODY_ERRORS)
        if self.view.authentication_classes:  # a bad token is refused also where anonymous callers are not
            errors[401] = AUTHENTICATION_ERROR
        if self.method not in SAFE_METHODS and SessionAuthentication in self.view.authentication_classes:
            errors[403] = CSRF_FAILED
        errors[406] = NOT_ACCEPTABLE
        if self.view.throttle_classes:
            errors[429] = THROTTLED
        return errors

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if is_list_serializer(field) and isinstance(schema, dict) and schema.get("type") == "array":
            min_length = field.min_length if field.min_length is not None else (0 if field.allow_empty else 1)
            if min_length:
                schema["minItems"] = min_length
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if "__doc__" not in vars(type(serializer)) or not type(serializer).__doc__:
            schema.pop("description", None)  # not the docstring of a base class
        if direction != "request":
            return schema
        if getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        for name, field in serializer.fields.items():
            property_schema = schema["properties"].get(name, {})
            if property_schema.get("type") != "string" or not isinstance(field, serializers.CharField):
                continue
            if not field.allow_blank:
                property_schema.setdefault("minLength", 1)
            if "pattern" not in property_schema and any(
                isinstance(validator, ProhibitNullCharactersValidator) for validator in field.validators
            ):
                property_schema["pattern"] = NO_NUL_PATTERN
        return schema
