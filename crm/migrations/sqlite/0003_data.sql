-- Lists and de-duplication (SQLite). Independent of 0002 (deals, activities,
-- outcomes): nothing here references those tables.

-- A marketing or calling list. A static list's members are frozen in
-- list_members; a dynamic list stores its filter as JSON (crm::lists::ListFilter)
-- and is evaluated each time it is used.
CREATE TABLE lists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('static','dynamic')),
    filter TEXT,
    owner_id INTEGER REFERENCES users(id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX lists_owner ON lists(owner_id);

CREATE TABLE list_members (
    list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    party_id INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (list_id, party_id)
);
CREATE INDEX list_members_party ON list_members(party_id);

-- Pairs a person has reviewed and declared "not the same party", so the
-- duplicate scan stops proposing them. Stored with party_a < party_b.
CREATE TABLE dedup_dismissals (
    party_a INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    party_b INTEGER NOT NULL REFERENCES parties(id) ON DELETE CASCADE,
    actor_id INTEGER,
    at INTEGER NOT NULL,
    PRIMARY KEY (party_a, party_b)
);

-- The similar-name scan and the list filters compare cities case-blind.
CREATE INDEX parties_city_ci ON parties(LOWER(city));
CREATE INDEX parties_company_id_idx ON parties(company_id);
-- Partial, so that the planner never picks it for the ubiquitous
-- `merged_into IS NULL` (which matches nearly every row); it serves the
-- merge's `merged_into = victim` and the foreign-key checks.
CREATE INDEX parties_merged_into_idx ON parties(merged_into) WHERE merged_into IS NOT NULL;
