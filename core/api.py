"""The API plumbing every app shares: the one exception handler (domain errors to HTTP answers, every
error body ``{code, message}``) and the base of request serializers (unknown fields refused, strings only
where strings are meant)."""

import logging
from collections.abc import Mapping

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import InvalidJSON, RequestTooLarge, ShopError

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """Map domain errors to status codes and give every error body a ``code`` and a ``message``."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge()
    elif isinstance(exc, exceptions.ParseError):  # e.g. a charset that is not a text encoding
        exc = InvalidJSON(str(exc.detail))

    if isinstance(exc, ShopError):
        response = Response(exc.as_dict(), status=exc.http_status)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response["Retry-After"] = str(retry_after)
        return response

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "message": "The request is not valid.", "errors": response.data}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        response.data = {
            "code": codes if isinstance(codes, str) else "error",
            "message": str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Error.",
        }
    return response


class InputSerializer(serializers.Serializer):
    """A request body: fields it does not declare are refused (400), as the schema says
    (``additionalProperties: false``), so that a typo is never silently ignored."""

    refuses_unknown_fields = True

    def to_internal_value(self, data):
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        unknown_errors = {name: ["This field is not allowed."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if unknown_errors and isinstance(error.detail, dict):
                error.detail.update(exceptions.ValidationError(unknown_errors).detail)
            raise
        if unknown_errors:
            raise serializers.ValidationError(unknown_errors)
        return value


class _StringsOnly:
    """A JSON string only: DRF's ``CharField`` would turn a number into text, which the schema refuses."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(_StringsOnly, serializers.CharField):
    pass


class StrictEmailField(_StringsOnly, serializers.EmailField):
    default_error_messages = {"invalid": "Enter a valid email address."}
