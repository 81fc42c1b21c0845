from django.http import Http404

from inventory.models import Product


def product_list_active():
    return Product.objects.filter(is_active=True).select_related("stock").order_by("name")


def product_get_active(*, slug: str) -> Product:
    try:
        return product_list_active().get(slug=slug)
    except Product.DoesNotExist as error:
        raise Http404("No such product.") from error
