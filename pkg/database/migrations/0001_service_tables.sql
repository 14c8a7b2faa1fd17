-- The financial service's own tables, as far as the worker reads or cleans them.
-- Rows are soft-deleted (deleted_at set) and removed for good by the database_cleanup job; the
-- partial indexes on deleted_at serve that job's "deleted before the cutoff" scans.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL,
    name        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz NULL
);
-- Unique among live users only: a soft-deleted account does not block re-registration.
CREATE UNIQUE INDEX users_email_live_key ON users (lower(email)) WHERE deleted_at IS NULL;
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE categories (
    id          bigserial PRIMARY KEY,
    user_id     bigint NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL DEFAULT 'expense' CHECK (kind IN ('expense', 'income')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz NULL
);
CREATE INDEX categories_user_id_idx ON categories (user_id);
CREATE INDEX categories_deleted_at_idx ON categories (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE budgets (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id   bigint NULL REFERENCES categories (id) ON DELETE SET NULL,
    name          text NOT NULL,
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    currency      char(3) NOT NULL DEFAULT 'BRL',
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz NULL,
    CHECK (period_end >= period_start)
);
CREATE INDEX budgets_user_id_idx ON budgets (user_id);
CREATE INDEX budgets_category_id_idx ON budgets (category_id);
CREATE INDEX budgets_deleted_at_idx ON budgets (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE invoices (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id   bigint NULL REFERENCES categories (id) ON DELETE SET NULL,
    number        text NOT NULL,
    amount_cents  bigint NOT NULL CHECK (amount_cents >= 0),
    currency      char(3) NOT NULL DEFAULT 'BRL',
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'void')),
    due_date      date NULL,
    issued_at     timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz NULL
);
CREATE INDEX invoices_user_id_idx ON invoices (user_id);
CREATE INDEX invoices_category_id_idx ON invoices (category_id);
CREATE INDEX invoices_deleted_at_idx ON invoices (deleted_at) WHERE deleted_at IS NOT NULL;
