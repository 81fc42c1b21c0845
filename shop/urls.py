from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from shop import api, error_views, views

api_urlpatterns = [
    path("auth/register/", api.RegisterApi.as_view(), name="api-register"),
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("schema/", api.SchemaView.as_view(), name="api-schema"),
    path("docs/", api.SchemaDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("inventory.api.urls")),
    path("", include("orders.api.urls")),
    re_path(r"", error_views.api_not_found),  # last: any other /api/ path is a JSON 404
]

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("products/<slug:slug>/", views.product_detail, name="product"),
    path("cart/", views.cart_detail, name="cart"),
    path("cart/add/", views.cart_add, name="cart-add"),
    path("cart/<int:product_id>/quantity/", views.cart_update, name="cart-update"),
    path("cart/<int:product_id>/remove/", views.cart_remove, name="cart-remove"),
    path("checkout/", views.checkout, name="checkout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("orders/", include("orders.urls")),
    path("payments/", include("payments.urls")),
    path("api/", include(api_urlpatterns)),
    path("admin/", admin.site.urls),
]

handler400 = error_views.bad_request
handler404 = error_views.page_not_found
handler500 = error_views.server_error
