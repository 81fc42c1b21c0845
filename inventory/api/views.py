from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from core.pagination import PAGE_INVALID, PAGE_NOT_FOUND, PAGE_PARAMETERS, paginate
from inventory.selectors import product_list_active


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    slug = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    available = serializers.SerializerMethodField()

    def get_available(self, product) -> int:
        stock = getattr(product, "stock", None)  # a product without a stock row has nothing to sell
        return stock.available if stock is not None else 0


class ProductListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={
            200: ProductOutputSerializer(many=True),
            400: PAGE_INVALID,
            404: PAGE_NOT_FOUND,
        },
    )
    def get(self, request):
        return paginate(self, request, product_list_active(), ProductOutputSerializer)
