"""The root of every app's error hierarchy: errors as data.

Each app defines its own subclasses, each with a ``code`` that no other class uses (checked when the
class is defined), the HTTP status the API answers it with (``http_status``), and what a shopper
reads on a page (``shopper_message``, translated; the generic sentence when a class has none). The
API maps them in one place (``core.api.exception_handler``), the pages in one other
(``shopper_message`` below).
"""

from django.utils.translation import gettext_lazy as _

_CODES: dict[str, str] = {}  # code -> the class that owns it


class ShopError(Exception):
    code = "error"
    http_status = 400
    default_message = "Something went wrong."
    shopper_message = _("Something went wrong. Nothing was charged; please try again.")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "code" in vars(cls):
            name = f"{cls.__module__}.{cls.__qualname__}"
            owner = _CODES.setdefault(cls.code, name)
            if owner != name:
                raise TypeError(f"error code {cls.code!r} of {name} is already {owner}'s")

    def __init__(self, message=None, **data):
        self.message = str(message or self.default_message)
        self.data = data
        super().__init__(self.message)

    def as_dict(self):
        return {"code": self.code, "message": self.message, **self.data}


class InvalidJSON(ShopError):
    """A request body that is not JSON the shop can read (see ``core.parsers``)."""

    code = "invalid_json"
    default_message = "The request body is not valid JSON."


class RequestTooLarge(ShopError):
    """A request body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django's ``RequestDataTooBig``)."""

    code = "request_too_large"
    http_status = 413
    default_message = "The request body is too large."


class InvalidCredentials(ShopError):
    code = "invalid_credentials"
    default_message = "Unable to log in with the given username and password."


class UsernameTaken(ShopError):
    code = "username_taken"
    default_message = "A user with that username already exists."


class PasswordRejected(ShopError):
    """The password breaks the password policy (``AUTH_PASSWORD_VALIDATORS``); ``errors`` says how."""

    code = "password_rejected"
    default_message = "This password is not allowed."


def shopper_message(error: ShopError) -> str:
    """What a page tells the shopper about ``error``, in the active language."""
    return str(error.shopper_message)
