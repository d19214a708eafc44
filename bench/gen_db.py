"""Generate a realistic PostgreSQL database of a given on-disk size for the backup benchmark.

    python bench/gen_db.py --size-gb 1 --dbname railyard_bench

The data is made to compress like a real application's, not like filler: text is drawn
word by word from a 20,000-word vocabulary with Zipf frequencies (common English words
first, then pronounceable made-up words), names, emails, addresses and user agents come
from skewed lists, JSON documents have keys that depend on the event kind, identifiers
are random UUIDs, and attachments mix incompressible binary with text-like bytes.

Rows are produced by the server itself (``INSERT ... SELECT ... FROM generate_series``)
on two connections at once; the vocabulary is sent once per statement as a ``name[]``
parameter, whose fixed-width elements make picking a word O(1). Indexes and foreign keys
are built after loading, then ``VACUUM (FREEZE, ANALYZE)`` sets hint bits so that the first
read by a benchmark does not write to every page.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from psycopg import sql

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DBNAME = "railyard_bench"
GB = 1000**3
VOCABULARY_SIZE = 20_000
CHUNK_ROWS = 20_000
WORKERS = 2
SESSION_EVENTS = 12
# On-disk bytes (heap, TOAST and indexes) per generated "unit" of data, measured on
# PostgreSQL 15; a unit is one customer and the rows that hang off it (UNIT_ROWS).
BYTES_PER_UNIT = 6_050
UNIT_ROWS = {"customers": 1.0, "orders": 3.0, "events": 8.0, "reviews": 2.0, "attachments": 0.025}

# Lists of values, one per line: ``name: items`` with items split on "|" when there is one,
# else on spaces. The first items of each list are the most frequent where zpick() is used.
LISTS_TEXT = """
common_words: the of and to a in is you that it he was for on are as with his they at be this have from or one
  had by word but not what all were we when your can said there use an each which she do how their if will up other
  about out many then them these so some her would make like him into time has look two more write go see number no
  way could people my than first water been call who oil its now find long down day did get come made may part order
  account payment delivery customer product service team please thanks update issue price quality shipping return
  support great good fast slow late item box size color works
first_names: James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan
  Joseph Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony Betty Mark Sandra Donald Ashley Steven
  Emily Paul Kimberly Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Timothy
  Stephanie Ronald Rebecca Jason Sharon Edward Laura Jeffrey Cynthia Ryan Amy Jacob Kathleen Gary Angela Nicholas
  Dorothy Eric Anna Jonathan Brenda Stephen Emma Larry Pamela Justin Nicole Scott Helen Sofia Lucas Chloe Mateo Yuki
  Hiroshi Amara Kwame Priya Arjun Mei Wei Olga Ivan Fatima Omar Ingrid Lars
last_names: Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
  Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis
  Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera
  Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris
  Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Tanaka Suzuki Kim Park
  Chen Wang Singh Patel Kumar Okafor Mensah Novak Kowalski Ivanov Muller Schmidt
cities: New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|Austin|London|
  Manchester|Paris|Lyon|Berlin|Munich|Madrid|Barcelona|Rome|Milan|Amsterdam|Rotterdam|Toronto|Vancouver|Montreal|
  Sydney|Melbourne|Tokyo|Osaka|Seoul|Singapore|Mumbai|Bangalore|Lagos|Nairobi|Cape Town|Sao Paulo|Mexico City|
  Buenos Aires|Stockholm|Oslo|Copenhagen|Dublin|Lisbon|Vienna|Zurich|Warsaw|Prague
countries: US GB DE FR CA ES IT NL AU JP IN BR MX SE PL IE CH AT PT NO DK KR SG NG KE ZA AR
email_domains: gmail.com yahoo.com hotmail.com outlook.com icloud.com proton.me aol.com gmx.de web.de orange.fr
  live.com yandex.ru mail.com fastmail.com zoho.com
street_suffixes: Street Avenue Road Lane Drive Court Place Boulevard Way Terrace
currencies: USD EUR GBP CAD AUD JPY
languages: en en-US en-GB de fr es it nl pt ja
timezones: America/New_York America/Chicago America/Los_Angeles Europe/London Europe/Berlin Europe/Paris Asia/Tokyo
  Australia/Sydney America/Sao_Paulo Asia/Kolkata
event_kinds: page_view click search add_to_cart login purchase api_call logout error
payment_methods: card paypal apple_pay google_pay bank_transfer klarna
http_methods: GET GET GET POST POST PUT PATCH DELETE
http_statuses: 200 201 204 304 400 401 404 422 500 503
error_codes: E_TIMEOUT E_VALIDATION E_NOT_FOUND E_CONFLICT E_UPSTREAM E_INTERNAL
referrers: google.com bing.com t.co news.ycombinator.com facebook.com
login_methods: password google apple sso magic_link
elements: btn link tab card menu
widths: 390 1440 1920 414 768 1280
heights: 844 900 1080 896 1024 800
mime_binary: image/jpeg image/png application/pdf image/webp application/zip
mime_text: text/plain text/csv application/json text/markdown application/xml
onsets: b c d f g h j k l m n p r s t v w z br cr dr fr gr pr tr st sp ch sh th pl bl cl fl gl sl qu
vowels: a e i o u a e i o ai ea ee ou io y
codas: n r s t l m nd st ng ck rt ss x
"""


def parse_lists(text: str) -> dict[str, list[str]]:
    """``name: items`` blocks (continued on indented lines) into lists."""
    joined: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(" "):
            joined[name] += " " + line.strip()
        else:
            name, _, rest = line.partition(":")
            joined[name] = rest.strip()
    return {
        key: [item.strip() for item in value.split("|")] if "|" in value else value.split()
        for key, value in joined.items()
    }


LISTS = parse_lists(LISTS_TEXT)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile "
    "Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36 Edg/124.0.2478.51",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 "
    "Mobile/15E148 Safari/604.1",
    "curl/8.5.0",
    "MyShopApp/3.14.2 (iOS 17.4; iPhone15,2)",
)


def vocabulary(size: int = VOCABULARY_SIZE, seed: int = 7) -> list[str]:
    """Common English words first, then made-up words that grow longer with rank (as real ones do)."""
    rng = random.Random(seed)
    onsets = [*LISTS["onsets"], "", "", ""]
    vowels = LISTS["vowels"]
    codas = [*LISTS["codas"], "", "", ""]
    words = list(dict.fromkeys(LISTS["common_words"]))
    seen = set(words)
    while len(words) < size:
        syllables = 1 + min(4, int(rng.expovariate(1.0) + len(words) / (size / 2.5)))
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))
        if 2 <= len(word) <= 40 and word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def pick(values: Sequence[str]) -> str:
    """SQL: one of ``values``, uniformly."""
    items = ",".join(_literal(v) for v in values)
    return f"(ARRAY[{items}])[1 + floor(random() * {len(values)})::int]"


def zipf_index(n: int) -> str:
    """SQL: an index in 1..n with P(k) proportional to 1/k (log-uniform)."""
    return f"floor(exp(random() * ln({n + 1})))::int"


def zpick(values: Sequence[str]) -> str:
    """SQL: one of ``values``, the first ones much more often (Zipf)."""
    items = ",".join(_literal(v) for v in values)
    return f"(ARRAY[{items}])[{zipf_index(len(values))}]"


WORD = f"v.w[{zipf_index(VOCABULARY_SIZE)}]::text"


def words(count_sql: str, ref: str) -> str:
    """SQL: a run of Zipf-distributed words; ``ref`` ties the subquery to the outer row."""
    return f"(SELECT string_agg(x, ' ') FROM (SELECT {WORD} AS x FROM generate_series(1, {count_sql} + 0 * {ref})) q)"


def prose(sentences_sql: str, ref: str) -> str:
    """SQL: sentences of 4-18 words, capitalised and punctuated."""
    sentence = (
        f"initcap({WORD}) || ' ' || (SELECT string_agg(x, ' ') FROM (SELECT {WORD} AS x "
        f"FROM generate_series(1, 3 + floor(random() * 15)::int + 0 * s)) q) || "
        f"{pick(['.', '.', '.', '.', '!', '?'])}"
    )
    return f"(SELECT string_agg({sentence}, ' ') FROM generate_series(1, {sentences_sql} + 0 * {ref}) s)"


def spread_ts(start: str, days: int) -> str:
    """SQL: a timestamp growing with the row id over ``days`` days, with jitter (ids follow time)."""
    return (
        f"(timestamptz {_literal(start)} + make_interval(secs => (g::float8 / %(total)s::float8) * {days * 86400} "
        f"+ random() * 3600))"
    )


SCHEMA = """
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded');
CREATE TABLE customers (
    id bigint PRIMARY KEY,
    public_id uuid NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    email text NOT NULL,
    phone text,
    street text,
    city text,
    postal_code text,
    country char(2),
    marketing_opt_in boolean NOT NULL DEFAULT false,
    balance numeric(12, 2) NOT NULL DEFAULT 0,
    preferences jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    public_id uuid NOT NULL,
    customer_id bigint NOT NULL,
    status order_status NOT NULL,
    currency char(3) NOT NULL,
    subtotal numeric(12, 2) NOT NULL,
    tax numeric(12, 2) NOT NULL,
    total numeric(12, 2) NOT NULL,
    items jsonb NOT NULL,
    shipping_address text,
    note text,
    created_at timestamptz NOT NULL,
    shipped_at timestamptz
);
CREATE TABLE events (
    id bigint PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    customer_id bigint,
    session_id uuid NOT NULL,
    kind text NOT NULL,
    ip inet,
    user_agent text,
    payload jsonb NOT NULL
);
CREATE TABLE reviews (
    id bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    rating smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    created_at timestamptz NOT NULL,
    edited_at timestamptz
);
CREATE TABLE attachments (
    id bigint PRIMARY KEY,
    review_id bigint NOT NULL,
    file_name text NOT NULL,
    content_type text NOT NULL,
    content bytea NOT NULL,
    created_at timestamptz NOT NULL
);
COMMENT ON TABLE events IS 'Product analytics events, one row per client event';
"""

POST_LOAD = """
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE reviews ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE attachments ADD FOREIGN KEY (review_id) REFERENCES reviews (id);
CREATE UNIQUE INDEX customers_email_key ON customers (email);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
CREATE INDEX reviews_customer_id_idx ON reviews (customer_id);
"""

CUSTOMER = f"""
INSERT INTO customers
SELECT g, gen_random_uuid(), r.first, r.last,
       lower(r.first) || {pick([".", "_", ""])} || lower(r.last) || g::text || '@'
           || CASE WHEN random() < 0.8 THEN {zpick(LISTS["email_domains"])}
                   ELSE {WORD} || '.' || {pick(["com", "io", "co", "net", "org"])} END,
       CASE WHEN random() < 0.85 THEN '+1-' || lpad((floor(random() * 1000))::text, 3, '0') || '-555-'
           || lpad((floor(random() * 10000))::text, 4, '0') END,
       (1 + floor(random() * 9999))::text || ' ' || initcap({WORD}) || ' ' || {zpick(LISTS["street_suffixes"])},
       {zpick(LISTS["cities"])}, lpad(floor(random() * 100000)::text, 5, '0'), {zpick(LISTS["countries"])},
       random() < 0.3, round((random() ^ 3 * 5000)::numeric, 2),
       jsonb_strip_nulls(jsonb_build_object(
           'language', {zpick(LISTS["languages"])}, 'timezone', {zpick(LISTS["timezones"])},
           'newsletter', random() < 0.3,
           'theme', CASE WHEN random() < 0.4 THEN {pick(["dark", "light", "system"])} END,
           'notifications', jsonb_build_object('email', random() < 0.7, 'sms', random() < 0.2, 'push', random() < 0.5),
           'referral_code', CASE WHEN random() < 0.1 THEN upper(substr(md5(random()::text), 1, 8)) END)),
       {spread_ts("2019-01-01", 2000)},
       CASE WHEN random() < 0.6 THEN {spread_ts("2019-01-01", 2000)} + interval '30 days' * random() END
FROM (SELECT %(vocab)s::name[] AS w OFFSET 0) v, generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
     LATERAL (SELECT {zpick(LISTS["first_names"])} AS first, {zpick(LISTS["last_names"])} AS last, g AS ref) r
"""

ORDER = f"""
INSERT INTO orders
SELECT g, gen_random_uuid(), 1 + floor(random() * %(customers)s::bigint)::bigint,
       (ARRAY['delivered', 'delivered', 'delivered', 'shipped', 'paid', 'pending', 'cancelled', 'refunded'])
           [1 + floor(random() * 8)::int]::order_status,
       {zpick(LISTS["currencies"])}, o.subtotal, round(o.subtotal * 0.08, 2), round(o.subtotal * 1.08, 2),
       (SELECT jsonb_agg(item) FROM (SELECT jsonb_strip_nulls(jsonb_build_object(
            'sku', 'SKU-' || lpad({zipf_index(50000)}::text, 6, '0'),
            'name', initcap({WORD}) || ' ' || {WORD},
            'qty', 1 + floor(random() ^ 3 * 5)::int,
            'unit_price', round((2 + random() ^ 2 * 300)::numeric, 2),
            'discount', CASE WHEN random() < 0.15 THEN round((random() * 0.3)::numeric, 2) END,
            'gift_wrap', CASE WHEN random() < 0.05 THEN true END)) AS item
        FROM generate_series(1, 1 + floor(random() ^ 2 * 6)::int + 0 * g)) q),
       (1 + floor(random() * 9999))::text || ' ' || initcap({WORD}) || ' ' || {zpick(LISTS["street_suffixes"])}
           || ', ' || {zpick(LISTS["cities"])} || ' ' || lpad(floor(random() * 100000)::text, 5, '0'),
       CASE WHEN random() < 0.12 THEN {words("2 + floor(random() * 12)::int", "g")} END,
       {spread_ts("2019-06-01", 1800)},
       CASE WHEN random() < 0.7 THEN {spread_ts("2019-06-01", 1800)} + interval '3 days' * random() END
FROM (SELECT %(vocab)s::name[] AS w OFFSET 0) v, generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
     LATERAL (SELECT round((5 + random() ^ 2 * 800)::numeric, 2) AS subtotal, g AS ref) o
"""

# Events come in sessions of SESSION_EVENTS consecutive rows sharing session id, customer,
# address and user agent, all derived from a hash of the session number.
EVENT = f"""
INSERT INTO events
SELECT g, {spread_ts("2022-01-01", 900)},
       CASE WHEN get_byte(e.h, 6) < 205 THEN 1 + mod(get_byte(e.h, 0) * 16777216::bigint
           + get_byte(e.h, 1) * 65536 + get_byte(e.h, 2) * 256 + get_byte(e.h, 3), %(customers)s::bigint) END,
       encode(e.h, 'hex')::uuid, e.kind,
       CASE WHEN get_byte(e.h, 4) < 230
           THEN ((1 + mod(get_byte(e.h, 7), 223)) || '.' || get_byte(e.h, 8) || '.' || get_byte(e.h, 9) || '.'
                 || get_byte(e.h, 10))::inet
           ELSE ('2001:db8:' || to_hex(get_byte(e.h, 11) * 256 + get_byte(e.h, 12)) || '::'
                 || to_hex(get_byte(e.h, 13)))::inet
       END,
       (ARRAY[{",".join(_literal(ua) for ua in USER_AGENTS)}])
           [floor(exp(get_byte(e.h, 5) / 256.0 * ln({len(USER_AGENTS) + 1})))::int],
       CASE e.kind
         WHEN 'page_view' THEN jsonb_strip_nulls(jsonb_build_object(
             'path', '/' || {WORD} || '/' || {WORD}
                 || CASE WHEN random() < 0.5 THEN '/' || floor(random() * 100000)::int ELSE '' END,
             'referrer', CASE WHEN random() < 0.4 THEN 'https://' || {zpick(LISTS["referrers"])} || '/' END,
             'duration_ms', floor(random() ^ 2 * 60000)::int,
             'viewport', jsonb_build_object('w', {zpick(LISTS["widths"])}::int, 'h', {zpick(LISTS["heights"])}::int)))
         WHEN 'search' THEN jsonb_build_object(
             'query', {words("1 + floor(random() * 4)::int", "g")},
             'results', floor(random() ^ 2 * 500)::int, 'page', 1 + floor(random() ^ 4 * 5)::int)
         WHEN 'add_to_cart' THEN jsonb_build_object(
             'sku', 'SKU-' || lpad({zipf_index(50000)}::text, 6, '0'), 'qty', 1 + floor(random() ^ 3 * 4)::int,
             'price', round((2 + random() ^ 2 * 300)::numeric, 2), 'cart_size', 1 + floor(random() * 8)::int)
         WHEN 'purchase' THEN jsonb_build_object(
             'order_id', 1 + floor(random() * %(orders)s::bigint)::bigint,
             'amount', round((5 + random() ^ 2 * 800)::numeric, 2),
             'currency', {zpick(LISTS["currencies"])}, 'payment_method', {zpick(LISTS["payment_methods"])}, 'coupon',
             CASE WHEN random() < 0.1 THEN upper({WORD}) || floor(random() * 50)::int END)
         WHEN 'login' THEN jsonb_build_object(
             'method', {zpick(LISTS["login_methods"])}, 'success', random() < 0.93, 'mfa', random() < 0.25)
         WHEN 'api_call' THEN jsonb_build_object(
             'endpoint', '/api/v' || (1 + floor(random() * 3)::int) || '/' || {WORD} || 's',
             'method', {pick(LISTS["http_methods"])}, 'status', {zpick(LISTS["http_statuses"])}::int,
             'latency_ms', round((random() ^ 3 * 2000)::numeric, 1),
             'client_version', '3.' || floor(random() * 15)::int || '.' || floor(random() * 10)::int)
         WHEN 'error' THEN jsonb_build_object(
             'code', {zpick(LISTS["error_codes"])},
             'message', {words("4 + floor(random() * 10)::int", "g")}, 'retryable', random() < 0.5,
             'trace_id', replace(gen_random_uuid()::text, '-', ''))
         ELSE jsonb_build_object(
             'element', {pick(LISTS["elements"])} || '-' || {WORD},
             'x', floor(random() * 1920)::int, 'y', floor(random() * 1080)::int)
       END
FROM (SELECT %(vocab)s::name[] AS w OFFSET 0) v, generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
     LATERAL (SELECT {zpick(LISTS["event_kinds"])} AS kind, decode(md5((g / {SESSION_EVENTS})::text), 'hex') AS h) e
"""

REVIEW = f"""
INSERT INTO reviews
SELECT g, 1 + floor(random() * %(customers)s::bigint)::bigint,
       initcap({words("2 + floor(random() * 6)::int", "g")}),
       {prose("1 + floor(random() ^ 2 * 12)::int", "g")},
       ARRAY(SELECT {WORD} FROM generate_series(1, floor(random() * 4)::int + 0 * g)),
       {pick(["5", "5", "5", "4", "4", "3", "2", "1"])}::smallint,
       {spread_ts("2019-06-01", 1800)},
       CASE WHEN random() < 0.1 THEN {spread_ts("2019-06-01", 1800)} + interval '10 days' * random() END
FROM (SELECT %(vocab)s::name[] AS w OFFSET 0) v, generate_series(%(lo)s::bigint, %(hi)s::bigint) g
"""

# Two thirds of attachments are binary (random bytes: images, PDFs, archives are already
# compressed); the rest are text-like files.
ATTACHMENT = f"""
INSERT INTO attachments
SELECT g, 1 + floor(random() * %(reviews)s::bigint)::bigint,
       {WORD} || '_' || floor(random() * 1000)::int
           || CASE WHEN a.binary THEN {pick([".jpg", ".png", ".pdf"])} ELSE {pick([".txt", ".csv", ".json"])} END,
       CASE WHEN a.binary THEN {zpick(LISTS["mime_binary"])} ELSE {zpick(LISTS["mime_text"])} END,
       CASE WHEN a.binary
           THEN (SELECT string_agg(sha512(float8send(random())), ''::bytea)
                 FROM generate_series(1, 16 + floor(random() ^ 2 * 1000)::int + 0 * g))
           ELSE convert_to({prose("5 + floor(random() ^ 2 * 120)::int", "g")}, 'UTF8')
       END,
       {spread_ts("2019-06-01", 1800)}
FROM (SELECT %(vocab)s::name[] AS w OFFSET 0) v, generate_series(%(lo)s::bigint, %(hi)s::bigint) g,
     LATERAL (SELECT random() < 0.67 AS binary, g AS ref) a
"""

STATEMENTS = {
    "customers": CUSTOMER,
    "orders": ORDER,
    "events": EVENT,
    "reviews": REVIEW,
    "attachments": ATTACHMENT,
}


@dataclass(frozen=True)
class Chunk:
    table: str
    lo: int
    hi: int


def row_counts(size_bytes: int) -> dict[str, int]:
    units = max(1, round(size_bytes / BYTES_PER_UNIT))
    return {table: max(1, round(units * per_unit)) for table, per_unit in UNIT_ROWS.items()}


def chunks(counts: dict[str, int], chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """Interleave the tables' chunks so both connections stay busy to the end."""
    per_table = {
        table: [Chunk(table, lo, min(lo + chunk_rows - 1, n)) for lo in range(1, n + 1, chunk_rows)]
        for table, n in counts.items()
    }
    while any(per_table.values()):
        for table in list(per_table):
            if per_table[table]:
                yield per_table[table].pop(0)


def db_url(admin_url: str, dbname: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{dbname}"


def database_size(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def create_database(admin_url: str, dbname: str, *, replace: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists and not replace:
            raise SystemExit(f"database {dbname!r} already exists; pass --replace to drop and regenerate it")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def drop_database(admin_url: str, dbname: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def generate(
    admin_url: str,
    dbname: str,
    size_bytes: int,
    *,
    replace: bool = False,
    workers: int = WORKERS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Create ``dbname`` filled to about ``size_bytes`` on disk; return what was made."""
    say = progress or (lambda _msg: None)
    counts = row_counts(size_bytes)
    create_database(admin_url, dbname, replace=replace)
    url = db_url(admin_url, dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    params_base: dict[str, object] = {
        "vocab": vocabulary(),
        "customers": counts["customers"],
        "orders": counts["orders"],
        "reviews": counts["reviews"],
    }
    work = list(chunks(counts))
    done = 0
    lock = threading.Lock()
    local = threading.local()
    connections: list[psycopg.Connection[tuple[object, ...]]] = []
    t0 = time.monotonic()

    def run(chunk: Chunk) -> None:
        nonlocal done
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = psycopg.connect(url, autocommit=True)
            # JIT compiles these long expressions for longer than they take to run.
            conn.execute("SET synchronous_commit = off; SET jit = off")
            local.conn = conn
            with lock:
                connections.append(conn)
        params = {**params_base, "lo": chunk.lo, "hi": chunk.hi, "total": counts[chunk.table]}
        conn.execute(STATEMENTS[chunk.table], params)
        with lock:
            done += 1
            if done % max(1, len(work) // 20) == 0 or done == len(work):
                say(f"loaded {done}/{len(work)} chunks in {time.monotonic() - t0:.0f}s")

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for future in [pool.submit(run, chunk) for chunk in work]:
                future.result()
    finally:
        for conn in connections:
            conn.close()
    load_s = time.monotonic() - t0
    say("building indexes and foreign keys")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        for statement in filter(None, (s.strip() for s in POST_LOAD.split(";"))):
            conn.execute(statement)
        say("vacuum (freeze, analyze)")
        conn.execute("VACUUM (FREEZE, ANALYZE)")
    total_s = time.monotonic() - t0
    return {
        "database": dbname,
        "size_bytes": database_size(url),
        "rows": counts,
        "load_s": round(load_s, 1),
        "total_s": round(total_s, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="target on-disk size in GB (10^9 bytes)")
    parser.add_argument("--dbname", default=DEFAULT_DBNAME, help="database to create")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("RAILYARD_BENCH_PG_URL", DEFAULT_ADMIN_URL),
        help="URL of a database on the server, used to create the new one (env RAILYARD_BENCH_PG_URL)",
    )
    parser.add_argument("--replace", action="store_true", help="drop and regenerate the database if it exists")
    parser.add_argument("--drop", action="store_true", help="drop the database and exit")
    parser.add_argument("--workers", type=int, default=WORKERS, help="concurrent loading connections")
    args = parser.parse_args(argv)
    if args.drop:
        drop_database(args.admin_url, args.dbname)
        return 0
    result = generate(
        args.admin_url,
        args.dbname,
        int(args.size_gb * GB),
        replace=args.replace,
        workers=args.workers,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    size = int(str(result["size_bytes"]))
    print(
        f"generated {result['database']}: {size / GB:.2f} GB on disk "
        f"(target {args.size_gb:.2f}) in {result['total_s']}s (load {result['load_s']}s); rows {result['rows']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
