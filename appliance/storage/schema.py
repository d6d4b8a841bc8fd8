"""
The database schema as a list of migrations.

Migration N (counting from 1) brings a database from C{user_version} N-1 to
N. Migrations are only ever appended: a released one is never edited, so any
database the appliance ever wrote can be brought up to date.
"""

MIGRATIONS = [
    # 1: the user directory. Passwords are never stored: only the digest
    # HA1 hashes, H(username:realm:password), for MD5 and SHA-256, both for
    # the user part as username (ha1_*) and for user@domain (ha1b_*), as
    # clients send either (Kamailio keeps the same pair).
    [
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            domain TEXT NOT NULL,
            realm TEXT NOT NULL,
            display_name TEXT,
            email TEXT,
            ha1_md5 TEXT NOT NULL,
            ha1b_md5 TEXT NOT NULL,
            ha1_sha256 TEXT NOT NULL,
            ha1b_sha256 TEXT NOT NULL,
            created REAL NOT NULL,
            UNIQUE (username, domain)
        )
        """,
        "CREATE INDEX users_domain ON users (domain)",
    ],
    # 2: the location service (RFC 3261 section 10). One row per binding,
    # identified within its address of record by binding_key: the contact
    # URI as registered, or the +sip.instance and reg-id when the contact
    # has an instance (RFC 5626 section 6). expires and updated are absolute
    # times (seconds since the epoch); path and params are JSON arrays.
    [
        """
        CREATE TABLE bindings (
            aor TEXT NOT NULL,
            binding_key TEXT NOT NULL,
            contact TEXT NOT NULL,
            params TEXT NOT NULL,
            q REAL NOT NULL,
            expires REAL NOT NULL,
            call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL,
            path TEXT NOT NULL,
            instance TEXT,
            reg_id INTEGER,
            source_transport TEXT,
            source_host TEXT,
            source_port INTEGER,
            user_agent TEXT,
            updated REAL NOT NULL,
            PRIMARY KEY (aor, binding_key)
        )
        """,
        "CREATE INDEX bindings_expires ON bindings (expires)",
    ],
    # 3: per-user call rules (appliance.sip.routing): forward on busy, no
    # answer or not registered, or answer in redirect mode.
    [
        """
        CREATE TABLE call_rules (
            aor TEXT NOT NULL,
            rule TEXT NOT NULL,
            target TEXT NOT NULL,
            PRIMARY KEY (aor, rule)
        )
        """,
    ],
    # 4: protected messages (appliance.drm). drm_keys holds each content key
    # wrapped (AES-256-GCM) under the master key in the data directory, never
    # in clear; drm_rights one row per key and holder (plays_left, absolute
    # not_before / not_after, expiry relative to the first play, forwarding
    # depth; granted_by is the holder who delegated, NULL for the sender's
    # own grants); drm_audit every issuance and refusal.
    [
        """
        CREATE TABLE drm_keys (
            key_id TEXT PRIMARY KEY,
            content_id TEXT NOT NULL,
            owner TEXT NOT NULL,
            wrapped BLOB NOT NULL,
            created REAL NOT NULL
        )
        """,
        """
        CREATE TABLE drm_rights (
            key_id TEXT NOT NULL REFERENCES drm_keys (key_id) ON DELETE CASCADE,
            holder TEXT NOT NULL,
            plays_left INTEGER NOT NULL,
            not_before REAL,
            not_after REAL,
            play_window REAL,
            first_play REAL,
            forward_depth INTEGER NOT NULL,
            may_copy INTEGER NOT NULL,
            may_modify INTEGER NOT NULL,
            granted_by TEXT,
            revoked INTEGER NOT NULL DEFAULT 0,
            updated REAL NOT NULL,
            PRIMARY KEY (key_id, holder)
        )
        """,
        "CREATE INDEX drm_rights_holder ON drm_rights (holder)",
        """
        CREATE TABLE drm_audit (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            user TEXT,
            source TEXT,
            key_id TEXT,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT
        )
        """,
    ],
]
