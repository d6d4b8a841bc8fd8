"""
Log level control for the appliance's own events.

twistd owns the log observers; the appliance's modules log through
L{observer}, which drops events below the configured C{[appliance]
log_level} before they reach twistd's observers::

    _log = Logger(observer=logs.observer)
"""

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)

_levels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)


def observer(event):
    """
    Forward C{event} to the global log publisher unless its level is below
    the configured one.
    """
    _filtered(event)


_filtered = FilteringLogObserver(
    lambda event: globalLogPublisher(event), [_levels]
)


def setLevel(name):
    """
    Set the lowest level logged, by name (C{'debug'}, C{'info'}, ...).
    """
    _levels.setLogLevelForNamespace(None, LogLevel.levelWithName(name))
