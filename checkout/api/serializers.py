from django.conf import settings
from rest_framework import serializers

from core.api import InputSerializer


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number: no strings, no fractions, no booleans."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# Product ids are bigint primary keys.
PRODUCT_ID_MAX = 2**63 - 1


class OrderLineInputSerializer(InputSerializer):
    def get_fields(self):
        # Built per instance: the limits are settings, read when a request (or the schema) needs them.
        return {
            "product": StrictIntegerField(min_value=1, max_value=PRODUCT_ID_MAX),
            "quantity": StrictIntegerField(min_value=1, max_value=settings.ORDER_MAX_QUANTITY_PER_LINE),
        }


class OrderCreateInputSerializer(InputSerializer):
    def get_fields(self):
        return {
            "lines": OrderLineInputSerializer(
                many=True,
                min_length=1,
                max_length=settings.ORDER_MAX_LINES,
                help_text=(
                    "Lines naming the same product are merged into one line, whose quantity is "
                    "at most ORDER_MAX_QUANTITY_PER_LINE as well."
                ),
            )
        }


class OrderLineOutputSerializer(serializers.Serializer):
    product = serializers.IntegerField(source="product_id")
    name = serializers.CharField(source="product_name")
    quantity = serializers.IntegerField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    total = serializers.DecimalField(source="line_total", max_digits=12, decimal_places=2)


class PaymentOutputSerializer(serializers.Serializer):
    status = serializers.CharField()
    approval_url = serializers.SerializerMethodField()

    def get_approval_url(self, payment) -> str | None:
        if payment.status != "PENDING":
            return None
        return payment.approval_url or None


class OrderOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    failure_reason = serializers.SerializerMethodField()
    transaction_id = serializers.UUIDField()
    total = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    lines = OrderLineOutputSerializer(many=True)
    reserved_until = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    payment = PaymentOutputSerializer()

    def get_failure_reason(self, order) -> str | None:
        return order.failure_reason or None
