from shop.cart import Cart


def cart(request):
    """The number of items in the session cart, for the header of every page."""
    session = getattr(request, "session", None)
    return {"cart_count": len(Cart(session)) if session is not None else 0}
