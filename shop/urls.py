from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from checkout.operations import operations_view
from shop import accounts, api, devmail, error_views, views
from shop.forms import ShopPasswordResetForm

admin.site.index_template = "admin/shop_index.html"  # links the operations page

api_urlpatterns = [
    path("", api.ApiIndex.as_view(), name="api-index"),
    path("auth/register/", api.RegisterApi.as_view(), name="api-register"),
    path("auth/token/", api.TokenApi.as_view(), name="api-token"),
    path("schema/", api.SchemaView.as_view(), name="api-schema"),
    path("docs/", api.SchemaDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", api.SchemaRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include("inventory.api.urls")),
    path("", include("checkout.api.urls")),
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
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password_reset/",
        accounts.PasswordResetView.as_view(
            form_class=ShopPasswordResetForm,
            template_name="accounts/password_reset_form.html",
            email_template_name="accounts/password_reset_email.txt",
            html_email_template_name="accounts/password_reset_email.html",
            subject_template_name="accounts/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="accounts/password_reset_confirm.html"),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path(
        "accounts/password_change/",
        auth_views.PasswordChangeView.as_view(template_name="accounts/password_change_form.html"),
        name="password_change",
    ),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="accounts/password_change_done.html"),
        name="password_change_done",
    ),
    path("i18n/", include("django.conf.urls.i18n")),
    path("orders/", include("checkout.urls")),
    path("payments/", include("payments.urls")),
    path("api/", include(api_urlpatterns)),
    path("admin/operations/", admin.site.admin_view(operations_view), name="admin-operations"),
    path("admin/", admin.site.urls),
    path("favicon.ico", views.favicon),
    # make run's caught emails; 404 unless DEBUG
    path("dev/mail/", devmail.mail_list, name="dev-mail-list"),
    path("dev/mail/<str:name>/", devmail.mail_detail, name="dev-mail-detail"),
    path("dev/mail/<str:name>/html/", devmail.mail_html, name="dev-mail-html"),
]

handler400 = error_views.bad_request
handler404 = error_views.page_not_found
handler500 = error_views.server_error
