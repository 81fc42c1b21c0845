from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.errors import PasswordRejected, UsernameTaken


def user_register(*, username: str, email: str, password: str):
    """Create a shopper's account. ``UsernameTaken`` when the username is in use (in any letter case),
    ``PasswordRejected`` when the password breaks ``AUTH_PASSWORD_VALIDATORS``."""
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=username).exists():
        raise UsernameTaken(errors={"username": [UsernameTaken.default_message]})
    try:
        password_validation.validate_password(password, user=user_model(username=username, email=email))
    except ValidationError as error:
        raise PasswordRejected(errors={"password": error.messages}) from error
    try:
        with transaction.atomic():
            return user_model.objects.create_user(username=username, email=email, password=password)
    except IntegrityError as error:  # registered at the same moment by another request
        raise UsernameTaken(errors={"username": [UsernameTaken.default_message]}) from error
