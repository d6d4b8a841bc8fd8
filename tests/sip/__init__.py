"""
Tests for L{appliance.sip}.
"""
