"""
Tests for L{appliance.storage}.
"""
