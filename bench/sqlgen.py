"""INSERT statements written from the Django models, so that the bench's pure-SQL baselines and its
set-based data generators follow the schema as it changes.

``insert_sql(Order, {"user": ":user_id", ...})`` lists every concrete column of the model's table.
The caller gives a SQL expression for the columns it cares about; every other NOT NULL column is
filled the way Django would fill it: its ``auto_now``/``auto_now_add`` time, its default (known
callables such as ``uuid.uuid4`` become their SQL counterpart, so that unique columns stay unique),
or ``''`` for a text column without one. A nullable column nobody sets is left out (NULL). A NOT NULL
column that has none of these raises ``MissingColumn`` at once: a new required field shows up as a
clear error here, not as a half-right baseline.
"""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal

from django.db import connection, models
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin
from django.utils import timezone

# Python callables used as field defaults, and the SQL that gives a fresh value per row.
CALLABLE_DEFAULTS = {
    uuid.uuid4: "gen_random_uuid()",
    timezone.now: "now()",
}


class MissingColumn(ValueError):
    pass


def quote(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model: type[models.Model]) -> str:
    return quote(model._meta.db_table)


def column(model: type[models.Model], field_name: str) -> str:
    """The quoted column of ``field_name`` (a field name or its attname, e.g. ``user`` or ``user_id``)."""
    return quote(_field(model, field_name).column)


def _field(model, name: str) -> models.Field:
    for field in model._meta.concrete_fields:
        if name in (field.name, field.attname):
            return field
    raise MissingColumn(f"{model.__name__} has no concrete field {name!r}")


def sql_literal(value) -> str:
    """A SQL literal for a default value (these come from the code, never from users)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal, float)):
        return str(value)
    if isinstance(value, (list, dict)):
        return f"{sql_literal(json.dumps(value))}::jsonb"
    if isinstance(value, uuid.UUID):
        return f"{sql_literal(str(value))}::uuid"
    if isinstance(value, datetime.datetime):
        return f"{sql_literal(value.isoformat())}::timestamptz"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def default_expression(model, field: models.Field) -> str | None:
    """What Django would store in ``field`` when nobody sets it; ``None``: leave the column out."""
    if getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
        return None  # the database fills it
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return "now()"
    if field.has_default():
        default = field.default
        if callable(default):
            if default in CALLABLE_DEFAULTS:
                return CALLABLE_DEFAULTS[default]
            if default in (list, dict):
                return sql_literal(default())
            raise MissingColumn(
                f"{model.__name__}.{field.name} defaults to {default!r}, which has no SQL counterpart: "
                "give the column a value"
            )
        return sql_literal(default)
    if field.null:
        return None
    if field.empty_strings_allowed:
        return "''"  # Django's own default for a text column without one
    raise MissingColumn(f"{model.__name__}.{field.name} is NOT NULL and has no default: give it a value")


def columns_and_values(model: type[models.Model], values: dict[str, str]) -> tuple[list[str], list[str]]:
    """(quoted columns, SQL expressions) for every column an INSERT of ``model`` writes."""
    given = {_field(model, name).attname: expression for name, expression in values.items()}
    columns, expressions = [], []
    for field in model._meta.concrete_fields:
        if field.attname in given:
            expression = given.pop(field.attname)
        elif field.primary_key and isinstance(field, AutoFieldMixin):
            continue  # the sequence gives it
        else:
            expression = default_expression(model, field)
            if expression is None:
                continue
        columns.append(quote(field.column))
        expressions.append(expression)
    return columns, expressions


def insert_sql(
    model: type[models.Model], values: dict[str, str], *, select_from: str | None = None, returning: str = ""
) -> str:
    """``INSERT INTO <table> (<columns>) VALUES (<expressions>)``, or ``SELECT <expressions> FROM
    <select_from>`` when given (``select_from`` may hold joins, WHERE, GROUP BY...)."""
    columns, expressions = columns_and_values(model, values)
    head = f"INSERT INTO {table(model)} ({', '.join(columns)})"
    if select_from is None:
        body = f"VALUES ({', '.join(expressions)})"
    else:
        body = f"SELECT {', '.join(expressions)} FROM {select_from}"
    return f"{head} {body}" + (f" RETURNING {returning}" if returning else "")
