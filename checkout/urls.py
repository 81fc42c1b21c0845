from django.urls import path

from checkout import views

urlpatterns = [
    path("", views.order_list, name="order-list"),
    path("<int:pk>/", views.order_detail, name="order-detail"),
    path("<int:pk>/status/", views.order_status, name="order-status"),
    path("<int:pk>/cancel/", views.order_cancel, name="order-cancel"),
]
