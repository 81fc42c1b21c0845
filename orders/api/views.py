from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.api.serializers import OrderCreateInputSerializer, OrderOutputSerializer
from orders.selectors import order_get_for_user, order_list_for_user
from orders.services import order_cancel
from payments.services import checkout_place

ERROR_BODY = inline_serializer("Error", {"code": serializers.CharField(), "message": serializers.CharField()})


def _payment_start(order):
    """Create the PayPal order for a freshly placed (or replayed) pending order."""
    from payments.services import payment_start

    if order.status == "PENDING" and not order.payment.provider_order_id:
        payment_start(order_id=order.pk)


class OrderListCreateApi(APIView):
    @extend_schema(responses=OrderOutputSerializer(many=True))
    def get(self, request):
        return Response(OrderOutputSerializer(order_list_for_user(user=request.user), many=True).data)

    @extend_schema(
        request=OrderCreateInputSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="The same key from the same user returns the same order.",
            )
        ],
        responses={
            201: OrderOutputSerializer,
            400: ERROR_BODY,
            409: OpenApiResponse(
                ERROR_BODY, description="out_of_stock, with items [{product, requested, available}]"
            ),
            502: OpenApiResponse(ERROR_BODY, description="PayPal could not be reached; the order failed"),
            503: OpenApiResponse(ERROR_BODY, description="busy: the order queue is full; see Retry-After"),
        },
    )
    def post(self, request):
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        order = checkout_place(
            user=request.user,
            lines=[dict(line) for line in serializer.validated_data["lines"]],
            idempotency_key=request.headers.get("Idempotency-Key"),
            language=getattr(request, "LANGUAGE_CODE", "en"),
        )
        _payment_start(order)
        order = order_get_for_user(user=request.user, order_id=order.pk)
        return Response(OrderOutputSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    @extend_schema(responses={200: OrderOutputSerializer, 404: ERROR_BODY})
    def get(self, request, order_id):
        return Response(OrderOutputSerializer(order_get_for_user(user=request.user, order_id=order_id)).data)


class OrderCancelApi(APIView):
    @extend_schema(request=None, responses={200: OrderOutputSerializer, 404: ERROR_BODY, 409: ERROR_BODY})
    def post(self, request, order_id):
        order_get_for_user(user=request.user, order_id=order_id)  # 404 for anybody else's order
        order_cancel(user=request.user, order_id=order_id)
        return Response(OrderOutputSerializer(order_get_for_user(user=request.user, order_id=order_id)).data)
