"""The root of every app's error hierarchy.

Each app defines its own subclasses with a stable ``code``; the API maps them to HTTP status codes
in one place (``shop.api.exception_handler``) and pages show ``message`` in the shopper's language.
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
