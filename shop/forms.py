from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _


class SignupForm(UserCreationForm):
    email = forms.EmailField(label=_("Email"), required=True)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


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
