def cart(request):
    """The number of items in the session cart, for the header of every page."""
    items = request.session.get("cart", {}) if hasattr(request, "session") else {}
    return {"cart_count": sum(int(q) for q in items.values()) if isinstance(items, dict) else 0}
