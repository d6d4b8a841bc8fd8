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
]
