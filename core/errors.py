"""The root of every app's error hierarchy.

Each app defines its own subclasses with a stable ``code``; the API maps them to HTTP status codes
in one place (``core.api.exception_handler``) and pages show ``message`` in the shopper's language.
"""


class ShopError(Exception):
    code = "error"
    default_message = "Something went wrong."

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
