"""Error answers outside the API views: Django's 400/404/500 handlers, and the catch-all 404 of ``/api/``.

Paths of the API and of the PayPal webhook get JSON ``{code, message}``; the pages keep their HTML.
"""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

from core.errors import RequestTooLarge

JSON_PATH_PREFIXES = ("/api/", "/payments/paypal/webhook/")


def is_json_path(request) -> bool:
    return request.path.startswith(JSON_PATH_PREFIXES)


def json_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"code": code, "message": message}, status=status)


def request_too_large() -> JsonResponse:
    return json_error(RequestTooLarge.code, RequestTooLarge.default_message, 413)


def bad_request(request, exception=None):
    if not is_json_path(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return request_too_large()
    return json_error("bad_request", "The request could not be read.", 400)


def page_not_found(request, exception=None):
    if not is_json_path(request):
        return defaults.page_not_found(request, exception)
    return api_not_found(request)


def server_error(request):
    if not is_json_path(request):
        return defaults.server_error(request)
    return json_error("server_error", "Something went wrong on our side. Please try again later.", 500)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Every ``/api/`` path that names no endpoint, whatever the method (also ``/api/orders/null,null/``)."""
    return json_error("not_found", "There is no API endpoint at this address.", 404)
