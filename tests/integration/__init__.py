"""
Whole-appliance tests on loopback sockets against real third-party peers.
"""
