from django import forms
from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm, UserCreationForm
from django.contrib.auth.models import User
from django.template import loader
from django.utils.translation import gettext_lazy as _

from shop.tasks import send_account_email


class SignupForm(UserCreationForm):
    email = forms.EmailField(label=_("Email"), required=True)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class ShopPasswordResetForm(PasswordResetForm):
    """Django's password reset, with the email rendered here (in the shopper's language) and sent by
    a Celery task, so that the request never waits on the mail server."""

    def send_mail(
        self,
        subject_template_name,
        email_template_name,
        context,
        from_email,
        to_email,
        html_email_template_name=None,
    ):
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        body = loader.render_to_string(email_template_name, context)
        html = (
            loader.render_to_string(html_email_template_name, context) if html_email_template_name else None
        )
        send_account_email.delay(subject=subject, body=body, html=html, to=to_email)


QUANTITY_ERRORS = {
    "required": _("Enter a quantity."),
    "invalid": _("Enter a whole number of at least 1."),
    "min_value": _("Enter a whole number of at least 1."),
}


class QuantityField(forms.IntegerField):
    """A whole number of units, 1 or more (the cart checks the ceiling and the stock)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Quantity"))
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("error_messages", QUANTITY_ERRORS)
        super().__init__(**kwargs)


class AddToCartForm(forms.Form):
    product = forms.IntegerField(widget=forms.HiddenInput)
    quantity = QuantityField(initial=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quantity"].widget.attrs.update(
            {"max": settings.ORDER_MAX_QUANTITY_PER_LINE, "inputmode": "numeric"}
        )


class CartQuantityForm(forms.Form):
    quantity = QuantityField()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quantity"].widget.attrs.update(
            {"max": settings.ORDER_MAX_QUANTITY_PER_LINE, "inputmode": "numeric"}
        )
