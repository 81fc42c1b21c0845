"""API plumbing shared by every app: the one exception handler, the base of input serializers, and the
accounts endpoints."""

import logging

from django.contrib.auth import authenticate, get_user_model, password_validation
from django.core.validators import RegexValidator
from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import InputSerializer, StrictCharField, StrictEmailField
from core.errors import InvalidCredentials
from core.schema import error_response
from core.throttling import AuthThrottle
from shop.services import user_register

logger = logging.getLogger(__name__)


class _JSONErrors:
    """The schema (YAML or JSON) and its Swagger page (HTML) answer their errors (a POST: 405) in JSON,
    like every other ``/api/`` path."""

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(_JSONErrors, SpectacularAPIView):
    pass


class SchemaDocsView(_JSONErrors, SpectacularSwaggerView):
    pass


class SchemaRedocView(_JSONErrors, SpectacularRedocView):
    pass


class ApiIndex(APIView):
    """``GET /api/``: where everything of the API is, for people and clients that start at the top."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        responses=inline_serializer(
            "ApiIndex",
            {
                "products": serializers.URLField(),
                "orders": serializers.URLField(),
                "register": serializers.URLField(),
                "token": serializers.URLField(),
                "schema": serializers.URLField(),
                "docs": serializers.URLField(),
                "redoc": serializers.URLField(),
            },
        )
    )
    def get(self, request):
        names = {
            "products": "api-products",
            "orders": "api-orders",
            "register": "api-register",
            "token": "api-token",
            "schema": "api-schema",
            "docs": "api-docs",
            "redoc": "api-redoc",
        }
        return Response({key: request.build_absolute_uri(reverse(name)) for key, name in names.items()})


# The addresses the API takes: a plain ASCII subset of what Django's EmailValidator takes, written as a
# pattern that JSON Schema and Python read alike, so that the schema states exactly what is accepted.
EMAIL_SHAPE = RegexValidator(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z",
    message="Enter a valid email address.",
)

# The longest password the API takes: PBKDF2 costs the same whatever its length, but the body does not.
PASSWORD_MAX_LENGTH = 4096


def password_min_length() -> int:
    """The shortest password ``AUTH_PASSWORD_VALIDATORS`` allow, stated in the schema as ``minLength``."""
    lengths = [
        validator.min_length
        for validator in password_validation.get_default_password_validators()
        if isinstance(validator, password_validation.MinimumLengthValidator)
    ]
    return max(lengths, default=1)


class RegisterSerializer(InputSerializer):
    """The shape of a registration. The username's uniqueness and the password policy are checked by
    ``user_register`` (400 ``username_taken``, ``password_rejected``)."""

    def get_fields(self):
        username = get_user_model()._meta.get_field("username")
        return {
            # Not trimmed: a username with spaces is refused, as the pattern in the schema says.
            "username": StrictCharField(
                max_length=username.max_length, validators=username.validators, trim_whitespace=False
            ),
            "email": StrictEmailField(
                max_length=get_user_model()._meta.get_field("email").max_length,
                validators=[EMAIL_SHAPE],
                trim_whitespace=False,
            ),
            "password": StrictCharField(
                write_only=True,
                trim_whitespace=False,
                min_length=password_min_length(),
                max_length=PASSWORD_MAX_LENGTH,
            ),
        }


REGISTER_ERRORS = (
    "`invalid`: a field is missing or malformed (`errors` names it); `username_taken`: the username "
    "is in use; `password_rejected`: the password breaks the password policy (too common, all "
    "digits, too close to the username or email; `errors.password` says which)"
)


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: inline_serializer(
                "Registered",
                {
                    "id": serializers.IntegerField(),
                    "username": StrictCharField(),
                    "email": serializers.EmailField(),
                },
            ),
            400: error_response(REGISTER_ERRORS, with_errors=True),
        },
    )
    def post(self, request):
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_register(**serializer.validated_data)
        return Response(
            {"id": user.pk, "username": user.username, "email": user.email}, status=status.HTTP_201_CREATED
        )


class TokenRequestSerializer(InputSerializer):
    def get_fields(self):
        return {
            "username": StrictCharField(
                max_length=get_user_model()._meta.get_field("username").max_length,
                trim_whitespace=False,
            ),
            "password": StrictCharField(
                write_only=True, trim_whitespace=False, max_length=PASSWORD_MAX_LENGTH
            ),
        }


class TokenApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthThrottle]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("TokenResponse", {"token": serializers.CharField()}),
            400: error_response(
                "`invalid`: a field is missing or malformed; `invalid_credentials`: no active user has "
                "this username and password",
                with_errors=True,
            ),
        },
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request=request, **serializer.validated_data)
        if user is None:
            raise InvalidCredentials()
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})
