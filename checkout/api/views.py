from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from checkout.api.serializers import OrderCreateInputSerializer, OrderOutputSerializer
from checkout.services import checkout_order
from core.pagination import PAGE_INVALID, PAGE_NOT_FOUND, PAGE_PARAMETERS, paginate
from core.parsers import has_control_characters
from core.schema import OutOfStockErrorSerializer, error_response
from core.throttling import AnonThrottle, OrderPlacementThrottle, UserThrottle
from orders.errors import InvalidOrder
from orders.selectors import order_get_for_user, order_list_for_user
from orders.services import order_cancel

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    # 1 to 255 characters once the spaces around it are dropped, with no control character.
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[^\\u0000-\\u001f\\u007f]*[^\\s\\u0000-\\u001f\\u007f][^\\u0000-\\u001f\\u007f]*$",
    },
    OpenApiParameter.HEADER,
    description="The same key from the same user returns the same order (1 to 255 characters, no control "
    "characters).",
)
ORDER_ID = OpenApiParameter(
    "order_id", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}, OpenApiParameter.PATH
)
NOT_FOUND = error_response("`not_found`: no such order of yours")


def _idempotency_key(request) -> str | None:
    """The Idempotency-Key header; control characters (NUL cannot even be stored) are refused."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and has_control_characters(key):
        raise InvalidOrder(
            "The Idempotency-Key must not hold control characters.",
            errors={"idempotency_key": ["Control characters are not allowed."]},
        )
    return key


class OrderListCreateApi(APIView):
    throttle_classes = [AnonThrottle, UserThrottle, OrderPlacementThrottle]

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses={
            200: OrderOutputSerializer(many=True),
            400: PAGE_INVALID,
            404: PAGE_NOT_FOUND,
        },
    )
    def get(self, request):
        return paginate(self, request, order_list_for_user(user=request.user), OrderOutputSerializer)

    @extend_schema(
        request=OrderCreateInputSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: OrderOutputSerializer,
            400: error_response(
                "`invalid`: a line or the Idempotency-Key is malformed (`errors` says which); "
                "`unknown_product`: a product does not exist or is not for sale; "
                "`product_quantity_exceeded`: lines of one product add up to more than "
                "ORDER_MAX_QUANTITY_PER_LINE",
                with_errors=True,
            ),
            409: error_response(
                "`out_of_stock`, with `items` [{product, requested, available}]; `idempotency_conflict`: "
                "the Idempotency-Key was used for an order with other lines",
                body=OutOfStockErrorSerializer,
            ),
            502: error_response("`gateway_error`: PayPal could not be reached; the order failed"),
            429: error_response(
                "`throttled`: too many requests; `too_many_pending_orders`: ORDER_MAX_PENDING_PER_USER "
                "unpaid orders are waiting already (pay or cancel one). Both with Retry-After"
            ),
            503: error_response("`busy`: the order queue is full; see Retry-After"),
        },
    )
    def post(self, request):
        idempotency_key = _idempotency_key(request)
        serializer = OrderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        placed = checkout_order(
            user=request.user,
            lines=[dict(line) for line in serializer.validated_data["lines"]],
            idempotency_key=idempotency_key,
            language=getattr(request, "LANGUAGE_CODE", "en"),
        )
        return Response(OrderOutputSerializer(placed.order).data, status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    @extend_schema(parameters=[ORDER_ID], responses={200: OrderOutputSerializer, 404: NOT_FOUND})
    def get(self, request, order_id):
        return Response(OrderOutputSerializer(order_get_for_user(user=request.user, order_id=order_id)).data)


class OrderCancelApi(APIView):
    @extend_schema(
        request=None,
        parameters=[ORDER_ID],
        responses={
            200: OrderOutputSerializer,
            404: NOT_FOUND,
            409: error_response("`order_not_pending`: only a pending order can be cancelled"),
        },
    )
    def post(self, request, order_id):
        order_get_for_user(user=request.user, order_id=order_id)  # 404 for anybody else's order
        order_cancel(user=request.user, order_id=order_id)
        return Response(OrderOutputSerializer(order_get_for_user(user=request.user, order_id=order_id)).data)
