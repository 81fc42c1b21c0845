from django.urls import path

from checkout.api import views

urlpatterns = [
    path("orders/", views.OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<int:order_id>/", views.OrderDetailApi.as_view(), name="api-order-detail"),
    path("orders/<int:order_id>/cancel/", views.OrderCancelApi.as_view(), name="api-order-cancel"),
]
