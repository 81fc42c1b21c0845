from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CheckoutConfig(AppConfig):
    """The layer above inventory, orders and payments: what spans all three (the stock audit)."""

    name = "checkout"
    verbose_name = _("Checkout")
