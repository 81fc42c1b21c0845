"""The account pages that take a password or send mail, with their rate limits: log in (per client
address, and failed attempts per username), sign up and password reset (per client address).

Over the limit the page answers 429 with its form and a message saying when to try again; the
attempt is not even checked, so guessing passwords costs the guesser time, not the shop.
"""

from django.contrib.auth import views as auth_views
from django.utils.translation import gettext as _

from core.throttling import page_limited, page_used_up

LIMITED = 429


def _username_key(group, request) -> str:
    return (request.POST.get("username") or "").strip().lower()[:150]


def limited_response(view, request, message: str):
    """The page again, unchecked (a bound login form would try the password), with ``message``."""
    form = view.form_class(**({"request": request} if "request" in view.get_form_kwargs() else {}))
    response = view.render_to_response(view.get_context_data(form=form, limited_message=message))
    response.status_code = LIMITED
    return response


class LoginView(auth_views.LoginView):
    def post(self, request, *args, **kwargs):
        limited = page_limited(request, "login") or page_used_up(request, "login_username", key=_username_key)
        if limited:
            message = _("Too many login attempts. Please wait a few minutes and try again.")
            return limited_response(self, request, message)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        page_limited(self.request, "login_username", key=_username_key)  # a failed attempt for this name
        return super().form_invalid(form)


class PasswordResetView(auth_views.PasswordResetView):
    def post(self, request, *args, **kwargs):
        if page_limited(request, "password_reset"):
            message = _("Too many requests for a new password. Please try again later.")
            return limited_response(self, request, message)
        return super().post(request, *args, **kwargs)
