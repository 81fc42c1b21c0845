from django.conf import settings
from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number: no strings, no fractions, no booleans."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class OrderLineInputSerializer(serializers.Serializer):
    product = StrictIntegerField(min_value=1)
    quantity = StrictIntegerField(min_value=1)

    def validate_quantity(self, value):
        maximum = settings.ORDER_MAX_QUANTITY_PER_LINE
        if value > maximum:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {maximum}.")
        return value


class OrderCreateInputSerializer(serializers.Serializer):
    lines = OrderLineInputSerializer(many=True, allow_empty=False)

    def validate_lines(self, value):
        maximum = settings.ORDER_MAX_LINES
        if len(value) > maximum:
            raise serializers.ValidationError(f"Ensure this list has at most {maximum} lines.")
        return value


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
