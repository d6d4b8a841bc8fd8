"""
Tests for L{appliance.dbus}.
"""
