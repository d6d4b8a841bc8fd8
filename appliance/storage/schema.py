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
]
