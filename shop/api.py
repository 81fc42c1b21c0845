"""API plumbing shared by every app: the one exception handler, and the accounts endpoints."""

import logging

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from shop.errors import ShopError

logger = logging.getLogger(__name__)

# The HTTP status of each domain error code; anything unlisted is a 400.
ERROR_STATUS = {
    "out_of_stock": status.HTTP_409_CONFLICT,
    "order_not_pending": status.HTTP_409_CONFLICT,
    "idempotency_conflict": status.HTTP_409_CONFLICT,
    "busy": status.HTTP_503_SERVICE_UNAVAILABLE,
    "gateway_error": status.HTTP_502_BAD_GATEWAY,
    "not_found": status.HTTP_404_NOT_FOUND,
    "placement_failed": status.HTTP_500_INTERNAL_SERVER_ERROR,
    # payments.errors
    "payment_declined": status.HTTP_402_PAYMENT_REQUIRED,
    "payment_not_approved": status.HTTP_409_CONFLICT,
    "payment_not_started": status.HTTP_409_CONFLICT,
    "payment_not_refundable": status.HTTP_409_CONFLICT,
    "payment_already_captured": status.HTTP_409_CONFLICT,
    "payment_provider_not_found": status.HTTP_502_BAD_GATEWAY,
    "payment_rejected": status.HTTP_502_BAD_GATEWAY,
}


def exception_handler(exc, context):
    """Map domain errors to status codes and give every error body a ``code`` and a ``message``."""
    if isinstance(exc, ShopError):
        response = Response(exc.as_dict(), status=ERROR_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST))
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


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, trim_whitespace=False)

    def validate_username(self, value):
        user_model = get_user_model()
        username_field = user_model._meta.get_field("username")
        for validator in username_field.validators:
            try:
                validator(value)
            except DjangoValidationError as error:
                raise serializers.ValidationError(error.messages) from error
        if user_model.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with that username already exists.", code="unique")
        return value

    def validate(self, attrs):
        candidate = get_user_model()(username=attrs["username"], email=attrs["email"])
        try:
            password_validation.validate_password(attrs["password"], user=candidate)
        except DjangoValidationError as error:
            raise serializers.ValidationError({"password": error.messages}) from error
        return attrs


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: inline_serializer(
                "Registered",
                {
                    "id": serializers.IntegerField(),
                    "username": serializers.CharField(),
                    "email": serializers.EmailField(),
                },
            )
        },
    )
    def post(self, request):
        from shop.services import user_register

        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        return Response(
            {"id": user.pk, "username": user.username, "email": user.email}, status=status.HTTP_201_CREATED
        )


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(trim_whitespace=False, write_only=True)


class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=TokenRequestSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request):
        from django.contrib.auth import authenticate

        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request=request, **serializer.validated_data)
        if user is None:
            raise exceptions.ValidationError(
                {"non_field_errors": ["Unable to log in with the given username and password."]},
                code="invalid_credentials",
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
