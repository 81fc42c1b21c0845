"""Paging of the API's lists without changing their body: it stays a JSON list (as existing clients
read it); the page travels in the query (``?page=``, ``?page_size=`` up to 100) and the way to the
other pages in RFC 8288 ``Link`` headers, with the total in ``X-Total-Count``."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from core.schema import error_response

MAX_PAGE_SIZE = 100
MAX_PAGE = 2**31 - 1


class LinkHeaderPagination(PageNumberPagination):
    page_size = MAX_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        for name, maximum in (
            (self.page_query_param, 2**31 - 1),
            (self.page_size_query_param, MAX_PAGE_SIZE),
        ):
            value = request.query_params.get(name)
            if value is not None and not (value.isascii() and value.isdigit() and 1 <= int(value) <= maximum):
                raise ValidationError({name: [f"A whole number from 1 to {maximum}."]})
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        links = [
            (rel, url)
            for rel, url in (
                ("first", self._page_url(1)),
                ("prev", self.get_previous_link() and self._page_url(self.page.previous_page_number())),
                ("next", self.get_next_link()),
                ("last", self._page_url(self.page.paginator.num_pages)),
            )
            if url
        ]
        headers = {"X-Total-Count": str(self.page.paginator.count)}
        if links:
            headers["Link"] = ", ".join(f'<{url}>; rel="{rel}"' for rel, url in links)
        return Response(data, headers=headers)

    def _page_url(self, number: int) -> str:
        return replace_query_param(self.request.build_absolute_uri(), self.page_query_param, number)


def paginate(view, request, queryset, serializer_class) -> Response:
    """Answer one page of ``queryset``, serialized with ``serializer_class``, as a JSON list."""
    paginator = LinkHeaderPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


PAGE_PARAMETERS = [
    OpenApiParameter(
        "page",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        OpenApiParameter.QUERY,
        description="Which page (from 1). A page past the last answers 404 `not_found`; a value that is not "
        "a whole number from 1 answers 400 `invalid`.",
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
        OpenApiParameter.QUERY,
        description=f"Items per page, at most {MAX_PAGE_SIZE} (the default).",
    ),
    OpenApiParameter(
        "Link",
        {"type": "string"},
        OpenApiParameter.HEADER,
        response=[200],
        description='RFC 8288 links to the other pages: rel="first", "prev", "next", "last".',
    ),
    OpenApiParameter(
        "X-Total-Count",
        {"type": "integer", "minimum": 0},
        OpenApiParameter.HEADER,
        response=[200],
        description="How many items there are in all pages.",
    ),
]
PAGE_NOT_FOUND = error_response("`not_found`: no such page")
PAGE_INVALID = error_response(
    "`invalid`: `page` or `page_size` is not a whole number in range", with_errors=True
)
