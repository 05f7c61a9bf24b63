"""A working day of change in the generated source, between two runs of the pipeline.

New orders with their transactions and payments, payments flipping to paid, and the
dimension changes the real data shows: a department moving city (which reaches all
its staff), a staff member changing surname and email, a counterparty moving its
legal address, an address changing phone. Deterministic from (seed, step), as the
generator is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, insert, select, text

from totesys_cli.demo.values import CITIES, CURRENCIES, LAST_NAMES, email, h, phone, pick
from totesys_cli.schemas.source import SOURCE


@dataclass
class Activity:
    """What one burst of activity changed, so tests can check each change arrived."""

    at: dt.datetime
    new_sales_orders: list[int] = field(default_factory=list)
    new_purchase_orders: list[int] = field(default_factory=list)
    paid_payments: list[int] = field(default_factory=list)
    moved_department: int | None = None
    renamed_staff: int | None = None
    moved_counterparty: int | None = None
    changed_address: int | None = None


def simulate_activity(
    conn: Connection,
    seed: int = 0,
    step: int = 1,
    sales_orders: int = 20,
    purchase_orders: int = 7,
    payments_paid: int = 25,
    at: dt.datetime | None = None,
) -> Activity:
    """One working day of change, everything stamped `at` (default: the database's clock,
    UTC, to the millisecond, as Prisma writes it)."""
    if at is None:
        at = conn.execute(
            text("SELECT date_trunc('milliseconds', clock_timestamp() AT TIME ZONE 'UTC')")
        ).scalar_one()
    counts = {
        name: conn.execute(select(func.count()).select_from(SOURCE.tables[name])).scalar_one()
        for name in ("address", "counterparty", "department", "staff", "design")
    }
    activity = Activity(at=at)
    activity.paid_payments = _pay(conn, payments_paid, at)
    activity.new_sales_orders = [
        _new_order(conn, "sales_order", seed, step, i, at, counts) for i in range(sales_orders)
    ]
    activity.new_purchase_orders = [
        _new_order(conn, "purchase_order", seed, step, i, at, counts)
        for i in range(purchase_orders)
    ]
    activity.moved_department = _move_department(conn, seed, step, at, counts)
    activity.renamed_staff = _rename_staff(conn, seed, step, at, counts)
    activity.moved_counterparty = _rehome_counterparty(conn, seed, step, at, counts)
    activity.changed_address = _change_phone(conn, seed, step, at, counts)
    return activity


def _pay(conn: Connection, count: int, at: dt.datetime) -> list[int]:
    return list(
        conn.execute(
            text(
                "UPDATE payment SET paid = true, last_updated = :at WHERE payment_id IN ("
                " SELECT payment_id FROM payment WHERE NOT paid ORDER BY payment_id LIMIT :n)"
                " RETURNING payment_id"
            ),
            {"at": at, "n": count},
        ).scalars()
    )


def _move_department(conn: Connection, seed: int, step: int, at, counts) -> int:
    department = 1 + (h(seed, "move", step) % counts["department"])
    current = conn.execute(
        text("SELECT location FROM department WHERE department_id = :d"), {"d": department}
    ).scalar_one()
    city = next(
        c for i in range(len(CITIES)) if (c := pick(CITIES, seed, "moved", step, i)) != current
    )
    conn.execute(
        text("UPDATE department SET location = :city, last_updated = :at WHERE department_id = :d"),
        {"city": city, "at": at, "d": department},
    )
    return department


def _rename_staff(conn: Connection, seed: int, step: int, at, counts) -> int:
    staff = 1 + (h(seed, "rename", step) % counts["staff"])
    first = conn.execute(
        text("SELECT first_name FROM staff WHERE staff_id = :s"), {"s": staff}
    ).scalar_one()
    last = f"{pick(LAST_NAMES, seed, 'married', step)}-{pick(LAST_NAMES, seed, 'was', step)}"
    conn.execute(
        text(
            "UPDATE staff SET last_name = :last, email_address = :email, "
            "last_updated = :at WHERE staff_id = :s"
        ),
        {"last": last, "email": email(first, last), "at": at, "s": staff},
    )
    return staff


def _rehome_counterparty(conn: Connection, seed: int, step: int, at, counts) -> int:
    counterparty = 1 + (h(seed, "rehome", step) % counts["counterparty"])
    conn.execute(
        text(
            "UPDATE counterparty SET legal_address_id = 1 + mod(legal_address_id, :addresses), "
            "last_updated = :at WHERE counterparty_id = :c"
        ),
        {"addresses": counts["address"], "at": at, "c": counterparty},
    )
    return counterparty


def _change_phone(conn: Connection, seed: int, step: int, at, counts) -> int:
    address = 1 + (h(seed, "phone", step) % counts["address"])
    conn.execute(
        text("UPDATE address SET phone = :phone, last_updated = :at WHERE address_id = :a"),
        {"phone": phone(seed, "new", step), "at": at, "a": address},
    )
    return address


def _order_values(kind: str, k: int, at: dt.datetime, counts: dict[str, int]) -> dict:
    """The new order's columns, from its hash `k`."""
    day = at.date()
    common = {
        "created_at": at,
        "last_updated": at,
        "staff_id": 1 + k % counts["staff"],
        "counterparty_id": 1 + (k >> 8) % counts["counterparty"],
        "currency_id": 1 + (k >> 16) % len(CURRENCIES),
        "agreed_delivery_date": (day + dt.timedelta(days=2 + (k >> 24) % 700)).isoformat(),
        "agreed_payment_date": (day + dt.timedelta(days=(k >> 32) % 60)).isoformat(),
        "agreed_delivery_location_id": 1 + (k >> 40) % counts["address"],
    }
    if kind == "sales_order":
        return {
            **common,
            "design_id": 1 + (k >> 48) % counts["design"],
            "units_sold": 1000 + k % 99000,
            "unit_price": f"{2 + (k >> 4) % 200 / 100:.2f}",
        }
    return {
        **common,
        "item_code": f"{k:016X}"[:7],
        "item_quantity": 1 + k % 1000,
        "item_unit_price": f"{1 + (k >> 4) % 99900 / 100:.2f}",
    }


def _new_order(
    conn: Connection,
    kind: str,
    seed: int,
    step: int,
    i: int,
    at: dt.datetime,
    counts: dict[str, int],
) -> int:
    """One new order with its transaction and its (unpaid) payment."""
    k = h(seed, "activity", kind, step, i)
    order = _order_values(kind, k, at, counts)
    if kind == "sales_order":
        amount = order["units_sold"] * float(order["unit_price"])
        link, transaction_type, payment_type = "sales_order_id", "SALE", 1
    else:
        amount = order["item_quantity"] * float(order["item_unit_price"])
        link, transaction_type, payment_type = "purchase_order_id", "PURCHASE", 3
    table = SOURCE.tables[kind]
    order_id = conn.execute(
        insert(table).values(order).returning(table.primary_key.columns[0])
    ).scalar_one()
    transaction = SOURCE.tables["transaction"]
    transaction_id = conn.execute(
        insert(transaction)
        .values(
            transaction_type=transaction_type, created_at=at, last_updated=at, **{link: order_id}
        )
        .returning(transaction.c.transaction_id)
    ).scalar_one()
    conn.execute(
        insert(SOURCE.tables["payment"]).values(
            created_at=at,
            last_updated=at,
            transaction_id=transaction_id,
            counterparty_id=order["counterparty_id"],
            payment_amount=f"{min(amount, 9.9e7):.2f}",
            currency_id=order["currency_id"],
            payment_type_id=payment_type,
            paid=False,
            payment_date=order["agreed_payment_date"],
            company_ac_number=10000000 + k % 89999999,
            counterparty_ac_number=10000000 + (k >> 3) % 89999999,
        )
    )
    return order_id
