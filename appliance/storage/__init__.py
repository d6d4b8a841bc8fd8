"""
Persistent state: the SQLite database, its migrations and the user directory.
"""
