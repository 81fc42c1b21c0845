from django.contrib import messages
from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from inventory.selectors import product_get_active, product_list_active
from shop.forms import SignupForm
from shop.services import user_register


def catalog(request):
    return render(request, "shop/catalog.html", {"products": product_list_active()})


def product_detail(request, slug):
    product = product_get_active(slug=slug)
    return render(request, "shop/product.html", {"product": product})


@require_http_methods(["GET", "POST"])
def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = user_register(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome, %(name)s! Your account is ready.") % {"name": user.username})
        return redirect("catalog")
    return render(request, "registration/signup.html", {"form": form})
