"""What every app's admin shares: read-only model admins and the actions that run a service on each
selected row and report, row by row, what happened (after a confirmation page when they move money
or end orders)."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from core.errors import ShopError


class ReadOnlyAdminMixin:
    """Staff may look, never add, edit or delete: the rows are written by services only.

    Without the change permission Django renders the change page without a Save button and answers
    a POST to it (or to the delete page) with 403, so a crafted request changes nothing either.
    """

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@dataclass(frozen=True)
class ActionRow:
    """One selected row of an action: its id, how staff know it, and what it is about."""

    pk: int
    label: str
    detail: str = ""


@dataclass(frozen=True)
class RowOutcome:
    level: int  # messages.SUCCESS, WARNING or ERROR
    text: str


def done(text) -> RowOutcome:
    return RowOutcome(messages.SUCCESS, str(text))


def skipped(text) -> RowOutcome:
    return RowOutcome(messages.WARNING, str(text))


def run_on_each(
    modeladmin, request, rows: Iterable[ActionRow], run: Callable[[ActionRow], RowOutcome]
) -> list[RowOutcome]:
    """Run ``run`` (which calls one service) on each row, one transaction each, and tell staff what
    happened to every row. A ``ShopError`` of one row is reported and does not stop the others."""
    outcomes = []
    for row in rows:
        try:
            outcome = run(row)
        except ShopError as error:
            outcome = RowOutcome(messages.ERROR, error.message)
        outcomes.append(outcome)
        modeladmin.message_user(request, f"{row.label}: {outcome.text}", outcome.level)
    return outcomes


def confirm_then_run_on_each(
    modeladmin,
    request,
    rows: list[ActionRow],
    run: Callable[[ActionRow], RowOutcome],
    *,
    title: str,
    question: str,
    confirm: str,
):
    """Django's delete confirmation, for an action that moves money or ends orders: the first POST
    answers a page listing ``rows`` (with what they are about, e.g. their amounts); only the second
    one, sent by that page's button, runs the action on each row."""
    if request.POST.get("post") == "yes":
        run_on_each(modeladmin, request, rows, run)
        return None  # back to the list, with one message per row
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "confirm": confirm,
        "rows": rows,
        "action": request.POST.get("action", ""),
        "opts": opts,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "cancel_text": _("No, take me back"),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/confirm_action.html", context)
