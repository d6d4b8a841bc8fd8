"""
SIP (RFC 3261): messages, transports, transactions and the services on top.
"""
