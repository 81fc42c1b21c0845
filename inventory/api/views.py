from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.selectors import product_list_active


class ProductOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    slug = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    available = serializers.IntegerField(source="stock.available")


class ProductListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses=ProductOutputSerializer(many=True))
    def get(self, request):
        return Response(ProductOutputSerializer(product_list_active(), many=True).data)
