"""
Tests for the appliance.
"""
