"""Writes of the catalog and of the stock counters that staff (and the demo seed) make.

``on_hand`` changes only here and in ``inventory.reservations.holds_consume`` (a sale), always under
the stock row's lock (``stock_lock``), with an ``F()`` update, and with one ``StockMovement`` row
per change, so that the ledger adds up to ``on_hand``. ``reserved`` is never written here: only
holds move it.
"""

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F

from inventory.errors import InvalidStockQuantity, StockBelowReserved, StockChangedMeanwhile
from inventory.lock_objects import stock_lock
from inventory.models import Product, Stock, StockMovement, StockMovementReason

# The product fields staff edit on the product page; stock counters are not among them.
PRODUCT_FIELDS = ("sku", "name", "slug", "description", "price", "currency", "is_active")


def _stock_move(
    *, stock: Stock, delta: int, reason: str, staff=None, order=None, note: str = ""
) -> StockMovement:
    """Move ``on_hand`` of a locked stock row by ``delta`` and record it in the ledger."""
    if delta:
        Stock.objects.filter(pk=stock.pk).update(on_hand=F("on_hand") + delta)
        stock.refresh_from_db(fields=["on_hand", "reserved", "updated_at"])
    return StockMovement.objects.create(
        product_id=stock.pk,
        delta=delta,
        on_hand_after=stock.on_hand,
        reason=reason,
        staff=staff,
        order=order,
        note=note[:255],
    )


def _locked_stock(product_id: int) -> Stock:
    stock = stock_lock(product_ids=[product_id]).get(product_id)
    if stock is None:  # a product from before stock rows were always created: give it one now
        Stock.objects.get_or_create(product_id=product_id)
        stock = stock_lock(product_ids=[product_id])[product_id]
    return stock


def _whole_number(quantity, *, minimum: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < minimum:
        raise InvalidStockQuantity()
    return quantity


@transaction.atomic
def product_create(
    *,
    sku: str,
    name: str,
    slug: str,
    price: Decimal,
    currency: str | None = None,
    description: str = "",
    is_active: bool = True,
    on_hand: int = 0,
    low_stock_threshold: int = 5,
    staff=None,
) -> Product:
    """Create a product together with its stock row and its opening balance in the ledger.

    Every product is created here (admin, ``seed_demo``, tests), so none is ever without stock.
    """
    on_hand = _whole_number(on_hand, minimum=0)
    product = Product.objects.create(
        sku=sku,
        name=name,
        slug=slug,
        price=price,
        currency=currency or settings.SHOP_CURRENCY,
        description=description,
        is_active=is_active,
    )
    stock = Stock.objects.create(product=product, on_hand=0, low_stock_threshold=low_stock_threshold)
    _stock_move(stock=stock, delta=on_hand, reason=StockMovementReason.OPENING_BALANCE, staff=staff)
    return product


@transaction.atomic
def product_update(*, product_id: int, **fields) -> Product:
    """Change the catalog fields of a product (name, price, ...); its stock is not touched."""
    unknown = set(fields) - set(PRODUCT_FIELDS)
    if unknown:
        raise TypeError(f"product_update cannot change {sorted(unknown)}")
    product = Product.objects.get(pk=product_id)
    for name, value in fields.items():
        setattr(product, name, value)
    product.full_clean(validate_unique=True, validate_constraints=False)
    product.save(update_fields=[*fields, "updated_at"])
    return product


@transaction.atomic
def stock_threshold_set(*, product_id: int, low_stock_threshold: int) -> None:
    """The level at or below which the product is shown as low on stock."""
    low_stock_threshold = _whole_number(low_stock_threshold, minimum=0)
    _locked_stock(product_id)
    Stock.objects.filter(pk=product_id).update(low_stock_threshold=low_stock_threshold)


@transaction.atomic
def stock_receive(*, product_id: int, quantity: int, staff=None, note: str = "") -> StockMovement:
    """``quantity`` units arrived: they go on hand (and on sale)."""
    quantity = _whole_number(quantity, minimum=1)
    stock = _locked_stock(product_id)
    return _stock_move(
        stock=stock, delta=quantity, reason=StockMovementReason.RECEIPT, staff=staff, note=note
    )


@transaction.atomic
def stock_write_off(*, product_id: int, quantity: int, staff=None, note: str = "") -> StockMovement:
    """``quantity`` units are gone (broken, lost): they leave on hand. Units held for pending
    orders cannot be written off: ``StockBelowReserved``."""
    quantity = _whole_number(quantity, minimum=1)
    stock = _locked_stock(product_id)
    if stock.on_hand - quantity < stock.reserved:
        raise StockBelowReserved(reserved=stock.reserved, on_hand=stock.on_hand - quantity)
    return _stock_move(
        stock=stock, delta=-quantity, reason=StockMovementReason.WRITE_OFF, staff=staff, note=note
    )


@transaction.atomic
def stock_count(
    *, product_id: int, counted: int, expected_on_hand: int, staff=None, note: str = ""
) -> StockMovement:
    """Staff counted ``counted`` units on the shelf, having seen ``expected_on_hand`` in the shop.

    The difference is applied as a delta. If ``on_hand`` moved since (a sale, a receipt), the count
    cannot be placed in time and is refused (``StockChangedMeanwhile``); a count below the units
    held for pending orders is refused too (``StockBelowReserved``). A count that matches is
    recorded as well, with a delta of 0.
    """
    counted = _whole_number(counted, minimum=0)
    stock = _locked_stock(product_id)
    if stock.on_hand != expected_on_hand:
        raise StockChangedMeanwhile(on_hand=stock.on_hand)
    if counted < stock.reserved:
        raise StockBelowReserved(reserved=stock.reserved, on_hand=counted)
    return _stock_move(
        stock=stock,
        delta=counted - stock.on_hand,
        reason=StockMovementReason.COUNT,
        staff=staff,
        note=note,
    )


@transaction.atomic
def product_upsert(
    *, sku: str, name: str, slug: str, price: Decimal, currency: str, on_hand: int, description: str = ""
) -> tuple[Product, bool]:
    """Create the product with its stock, or bring an existing one (by sku) back to these values:
    the demo seed. Returns the product and whether it was created.

    Stock that is held for pending orders is kept: on_hand never drops below what is reserved.
    """
    catalog = {
        "name": name,
        "slug": slug,
        "price": price,
        "currency": currency,
        "description": description,
        "is_active": True,
    }
    existing = Product.objects.filter(sku=sku).values_list("pk", flat=True).first()
    if existing is None:
        product = product_create(sku=sku, on_hand=0, **catalog)
        created = True
    else:
        product = product_update(product_id=existing, **catalog)
        created = False
    stock = _locked_stock(product.pk)
    target = max(on_hand, stock.reserved)
    if target != stock.on_hand:
        _stock_move(stock=stock, delta=target - stock.on_hand, reason=StockMovementReason.DEMO_SEED)
    return product, created
