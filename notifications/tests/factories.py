"""Orders in a final state, built row by row (the checkout services are tested in orders/)."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from inventory.tests.factories import ProductFactory
from orders.models import Order, OrderLine, OrderStatus
from payments.models import Payment, PaymentStatus


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"notified{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    status = OrderStatus.SUCCESS
    failure_reason = ""
    total = Decimal("0.00")
    currency = "USD"
    language = "en"
    reserved_until = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))
    completed_at = factory.LazyFunction(timezone.now)


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    product_name = factory.LazyAttribute(lambda line: line.product.name)
    quantity = 1
    unit_price = factory.LazyAttribute(lambda line: line.product.price)


PAYMENT_STATUS_BY_ORDER_STATUS = {
    OrderStatus.SUCCESS: PaymentStatus.SUCCESS,
    OrderStatus.FAILED: PaymentStatus.FAILED,
    OrderStatus.PENDING: PaymentStatus.PENDING,
}


def final_order(
    *,
    status: str = OrderStatus.SUCCESS,
    reason: str = "",
    language: str = "en",
    user=None,
    lines: list[tuple[str, int, str]] = (("Green tea", 2, "12.50"), ("Teapot", 1, "30.00")),
    payment_status: str | None = None,
) -> Order:
    """An order with its lines and its one payment (same transaction id), total = sum of the lines."""
    order = OrderFactory(
        status=status,
        failure_reason=reason,
        language=language,
        completed_at=None if status == OrderStatus.PENDING else timezone.now(),
        **({"user": user} if user is not None else {}),
    )
    total = Decimal("0.00")
    for name, quantity, unit_price in lines:
        product = ProductFactory(name=name, price=Decimal(unit_price))
        OrderLineFactory(
            order=order, product=product, product_name=name, quantity=quantity, unit_price=Decimal(unit_price)
        )
        total += Decimal(unit_price) * quantity
    order.total = total
    order.save(update_fields=["total"])
    Payment.objects.create(
        order=order,
        transaction_id=order.transaction_id,
        status=payment_status or PAYMENT_STATUS_BY_ORDER_STATUS[status],
        amount=total,
        currency=order.currency,
    )
    return order
