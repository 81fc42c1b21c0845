from django.urls import path

from payments import views

urlpatterns = [
    path("paypal/return/", views.paypal_return, name="paypal-return"),
    path("paypal/cancel/", views.paypal_cancel, name="paypal-cancel"),
    path("paypal/webhook/", views.paypal_webhook, name="paypal-webhook"),
]
