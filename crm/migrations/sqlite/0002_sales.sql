-- Sales schema (SQLite): deals and their assignment rules, activities, the
-- outcome graph (seed 004 "Relazioni") and the points ledger. Same
-- conventions as 0001: unix-millisecond INTEGER timestamps, 0/1 booleans,
-- money in integer cents.

-- Assignment rules: the first active rule by (priority, id) whose non-NULL
-- criteria all match a new deal decides its owner (a user, or a team whose
-- lead receives it). NULL criteria match anything; the value range is
-- inclusive at both ends.
CREATE TABLE assignment_rules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    product TEXT,
    zone TEXT,
    min_value_cents INTEGER,
    max_value_cents INTEGER,
    assign_user_id INTEGER REFERENCES users(id),
    assign_team_id INTEGER REFERENCES teams(id),
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    CHECK ((assign_user_id IS NULL) <> (assign_team_id IS NULL))
);
CREATE INDEX assignment_rules_priority ON assignment_rules(priority, id);

CREATE TABLE deals (
    id INTEGER PRIMARY KEY,
    party_id INTEGER NOT NULL REFERENCES parties(id),
    title TEXT NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('lead','potential','opportunity')),
    status TEXT NOT NULL CHECK (status IN ('open','won','lost')),
    value_cents INTEGER NOT NULL DEFAULT 0,
    probability INTEGER NOT NULL DEFAULT 0 CHECK (probability BETWEEN 0 AND 100),
    expected_close_at INTEGER,
    product TEXT,
    zone TEXT,
    owner_id INTEGER REFERENCES users(id),
    team_id INTEGER REFERENCES teams(id),
    assignment_rule_id INTEGER REFERENCES assignment_rules(id) ON DELETE SET NULL,
    notes TEXT,
    closed_at INTEGER,
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deals_party ON deals(party_id);
CREATE INDEX deals_owner ON deals(owner_id);
CREATE INDEX deals_status ON deals(status, phase);

-- The outcome graph. Action types ("Tipi/Azioni") and outcomes ("Esiti")
-- are named, deactivatable vocabularies; a relation allows one outcome for
-- one action type and says what completing an activity with it does.
CREATE TABLE action_types (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    active INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    active INTEGER NOT NULL DEFAULT 1
);

-- followup_recipient is one of me / owner / contact / operator / all;
-- followup_user_id is set exactly when it is 'operator'. A follow-up waits
-- either followup_days (then lands at followup_at_hour, UTC) or
-- followup_hours.
CREATE TABLE outcome_relations (
    action_type_id INTEGER NOT NULL REFERENCES action_types(id),
    outcome_id INTEGER NOT NULL REFERENCES outcomes(id),
    commercial_state_id INTEGER REFERENCES commercial_states(id),
    followup_action_type_id INTEGER REFERENCES action_types(id),
    followup_kind TEXT CHECK (followup_kind IN ('appointment','todo','call','note')),
    followup_recipient TEXT CHECK (followup_recipient IN ('me','owner','contact','operator','all')),
    followup_user_id INTEGER REFERENCES users(id),
    followup_days INTEGER,
    followup_hours INTEGER,
    followup_at_hour INTEGER,
    points INTEGER NOT NULL DEFAULT 0,
    closes_parent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (action_type_id, outcome_id)
);

CREATE TABLE activities (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('appointment','todo','call','note')),
    party_id INTEGER NOT NULL REFERENCES parties(id),
    deal_id INTEGER REFERENCES deals(id),
    action_type_id INTEGER NOT NULL REFERENCES action_types(id),
    outcome_id INTEGER REFERENCES outcomes(id),
    owner_id INTEGER REFERENCES users(id),
    subject TEXT NOT NULL,
    notes TEXT,
    due_at INTEGER,
    done_at INTEGER,
    done_by INTEGER REFERENCES users(id),
    parent_activity_id INTEGER REFERENCES activities(id),
    follow_up_of INTEGER REFERENCES activities(id),
    version INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX activities_party ON activities(party_id, done_at);
CREATE INDEX activities_owner_due ON activities(owner_id, due_at);
CREATE INDEX activities_due ON activities(due_at);
CREATE INDEX activities_deal ON activities(deal_id);
CREATE INDEX activities_parent ON activities(parent_activity_id);

-- Points awarded to operators by completed activities; leaderboards sum it.
CREATE TABLE points_ledger (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    points INTEGER NOT NULL,
    activity_id INTEGER REFERENCES activities(id),
    at INTEGER NOT NULL
);
CREATE INDEX points_ledger_at ON points_ledger(at, user_id);
