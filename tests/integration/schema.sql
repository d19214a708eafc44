-- A deliberately varied schema: what a backup must carry through a round trip unchanged.
CREATE SCHEMA app;
CREATE SCHEMA billing;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE app.money_pair AS (amount numeric(12, 2), currency char(3));

CREATE TABLE app.users (
    id bigint GENERATED ALWAYS AS IDENTITY (START WITH 1000 INCREMENT BY 7) PRIMARY KEY,
    email text UNIQUE NOT NULL,
    profile jsonb,
    avatar bytea,
    tags text[],
    scores int[],
    balance numeric(30, 10),
    created_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00',
    mood app.mood,
    wallet app.money_pair,
    updated_at timestamptz
);
COMMENT ON TABLE app.users IS 'People who use the app ✓';
COMMENT ON COLUMN app.users.email IS 'unique login';

CREATE SEQUENCE billing.invoice_seq START 500000 INCREMENT 3 MAXVALUE 9223372036854775000;
CREATE TABLE billing.invoices (
    id bigint PRIMARY KEY DEFAULT nextval('billing.invoice_seq'),
    user_id bigint NOT NULL REFERENCES app.users (id),
    amount numeric NOT NULL,
    issued date NOT NULL
);
CREATE INDEX invoices_user_idx ON billing.invoices (user_id);

CREATE TABLE billing.events (id bigint NOT NULL, at timestamptz NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE billing.events_2025 PARTITION OF billing.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE billing.events_2026 PARTITION OF billing.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');

CREATE TABLE app.notes (id serial PRIMARY KEY, body text, extra text, flags bit(4), span tsrange);

CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := '2026-06-01 12:00:00+00';
    RETURN NEW;
END $$;
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();

CREATE VIEW app.happy_users AS SELECT id, email FROM app.users WHERE mood = 'happy';

INSERT INTO app.users (email, profile, avatar, tags, scores, balance, mood, wallet)
SELECT 'user' || i || '@example.com',
       jsonb_build_object('name', 'User ' || i, 'langs', jsonb_build_array('en', 'fr'), 'n', i),
       decode(md5(i::text), 'hex'),
       ARRAY['t' || (i % 5), 'common'],
       ARRAY[i, i * 2],
       (i * 12345.6789012345)::numeric(30, 10),
       (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::app.mood,
       ROW((i * 1.5)::numeric(12, 2), 'EUR')::app.money_pair
FROM generate_series(1, 300) AS i;
UPDATE app.users SET profile = profile || '{"edited": true}' WHERE id % 10 = 0;
INSERT INTO billing.invoices (user_id, amount, issued)
SELECT u.id, (u.id % 97) * 3.25, DATE '2026-01-01' + (u.id % 300)::int FROM app.users AS u;
SELECT setval('billing.invoice_seq', 9000000000000000000);
INSERT INTO billing.events SELECT i, TIMESTAMPTZ '2025-06-01' + i * INTERVAL '1 day', jsonb_build_object('i', i)
FROM generate_series(1, 400) AS i;
INSERT INTO app.notes (body, extra, flags, span) VALUES
    ('plain', NULL, B'1010', '[2026-01-01, 2026-02-01)'),
    (NULL, NULL, NULL, NULL),
    ('unicode: 日本語 ÅÄÖ 🚂 ∑', 'emoji 🎉', B'0001', 'empty'),
    (E'tabs\tand\nnewlines and \\ backslashes', '''quotes''', B'1111', '(,)');
CREATE MATERIALIZED VIEW billing.totals AS SELECT user_id, sum(amount) AS total FROM billing.invoices GROUP BY user_id;
COMMENT ON MATERIALIZED VIEW billing.totals IS 'per-user totals';
