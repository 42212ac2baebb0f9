"""A small database of another domain (an online bookshop) for the offline model's tests.

Nothing in it shares a table or column name with the sample database, so the offline
model's answers here show that it reads the live catalog rather than knowing the sample.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pandas as pd

END = dt.datetime(2025, 12, 31, 21, 0)
DAYS = 120
REGIONS = ("DE", "FR", "ES", "IT", "NL", "PL")
SEGMENTS = ("student", "professional", "retired", "family")
GENRES = ("fantasy", "crime", "romance", "science", "history", "cookbook", "poetry")
TAGS = ("bestseller", "award", "classic", "new", "signed", "illustrated")
CHANNELS = ("web", "app", "store")

NOTES_YAML = """\
description: An online bookshop's customers, orders and catalogue.
tables:
  customers:
    description: People with an account at the shop.
    synonyms: [clients, buyers, shoppers]
    columns:
      customer_id: {description: Customer identifier, personal: true}
      region: {description: Country of the billing address (ISO code), synonyms: [country, market]}
      segment: {description: Marketing segment}
      joined_on: {description: Day the account was opened}
      email: {description: Contact address, personal: true}
  orders:
    description: One row per checkout.
    synonyms: [purchases, sales]
    columns:
      order_id: {description: Order identifier}
      customer_id: {description: Buyer (customers.customer_id), personal: true}
      ordered_at: {description: Time of checkout}
      amount_eur: {description: Amount paid, unit: EUR}
      channel: {description: Where the order was placed}
      gift: {description: Whether the order was gift-wrapped}
  books:
    description: The catalogue.
    synonyms: [products]
    columns:
      book_id: {description: Book identifier}
      genre: {description: Literary genre, synonyms: [kind]}
      price_eur: {description: List price, unit: EUR}
      tags: {description: Editorial tags}
  order_items:
    description: Books in each order.
    synonyms: [line items]
    columns:
      qty: {description: Copies of the book in the order, synonyms: [copies]}
metrics:
  revenue:
    table: orders
    sql: SUM(amount_eur)
    unit: EUR
    description: Money taken at checkout.
    synonyms: [turnover, sales value]
  basket_size:
    table: orders
    sql: AVG(amount_eur)
    unit: EUR
    description: Average amount of an order.
  units_sold:
    table: order_items
    sql: SUM(qty)
    unit: copies
    description: Copies sold.
"""


def build_bookshop(path: Path, *, with_notes: bool) -> Path:
    """Write the bookshop database to ``path`` (and ``<path>.semantic.yaml`` when asked).

    Deterministic: the same rows every time. Returns the notes path (it may not exist).
    """
    path = Path(path)
    notes = path.with_name(path.name + ".semantic.yaml")
    if path.exists():
        path.unlink()
    rng = random.Random(20251231)
    start = END - dt.timedelta(days=DAYS)
    customers = [
        (i, rng.choices(REGIONS, weights=(30, 22, 16, 14, 10, 8))[0], rng.choice(SEGMENTS),
         (start - dt.timedelta(days=rng.randint(0, 400))).date(), f"c{i}@example.org")
        for i in range(1, 801)
    ]
    books = []
    for i in range(1, 301):
        tags = sorted(rng.sample(TAGS, rng.randint(0, 2)))
        books.append((i, f"Book {i}", rng.choice(GENRES), round(rng.uniform(6, 40), 2), tags,
                      rng.randint(1950, 2025)))
    price = {b[0]: b[3] for b in books}
    orders, items = [], []
    for oid in range(1, 3001):
        when = start + dt.timedelta(minutes=rng.randint(0, DAYS * 24 * 60))
        total = 0.0
        chosen = rng.sample(range(1, 301), rng.randint(1, 4))
        for book in chosen:
            qty = rng.choice((1, 1, 1, 2, 3))
            items.append((oid, book, qty))
            total += qty * price[book]
        orders.append((oid, rng.randint(1, 800), when, round(total, 2),
                       rng.choices(CHANNELS, weights=(5, 3, 2))[0], rng.random() < 0.15))
    orders[-1] = (*orders[-1][:2], END, *orders[-1][3:])  # the data's last timestamp is END
    frames = {
        "customers": (pd.DataFrame(customers, columns=["customer_id", "region", "segment",
                                                       "joined_on", "email"]),
                      "customer_id::INTEGER AS customer_id, region, segment, "
                      "joined_on::DATE AS joined_on, email"),
        "books": (pd.DataFrame(books, columns=["book_id", "title", "genre", "price_eur", "tags",
                                               "published_year"]),
                  "book_id::INTEGER AS book_id, title, genre, price_eur::DOUBLE AS price_eur, "
                  "tags::VARCHAR[] AS tags, published_year::INTEGER AS published_year"),
        "orders": (pd.DataFrame(orders, columns=["order_id", "customer_id", "ordered_at",
                                                 "amount_eur", "channel", "gift"]),
                   "order_id::INTEGER AS order_id, customer_id::INTEGER AS customer_id, "
                   "ordered_at::TIMESTAMP AS ordered_at, amount_eur::DOUBLE AS amount_eur, "
                   "channel, gift::BOOLEAN AS gift"),
        "order_items": (pd.DataFrame(items, columns=["order_id", "book_id", "qty"]),
                        "order_id::INTEGER AS order_id, book_id::INTEGER AS book_id, "
                        "qty::INTEGER AS qty"),
    }
    con = duckdb.connect(str(path))
    try:
        for name, (df, columns) in frames.items():
            con.register("incoming", df)
            con.execute(f"CREATE TABLE {name} AS SELECT {columns} FROM incoming")
            con.unregister("incoming")
    finally:
        con.close()
    if with_notes:
        notes.write_text(NOTES_YAML, encoding="utf-8")
    elif notes.exists():
        notes.unlink()
    return notes
