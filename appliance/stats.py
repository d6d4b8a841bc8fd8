"""
Statistics: counters and gauges a service exports through L{IStatsSource}.
"""

from collections import Counter

from zope.interface import implementer

from appliance.interfaces import IStatsSource


@implementer(IStatsSource)
class Statistics:
    """
    A service's counters (which only grow) and gauges (read from a callable
    when a snapshot is taken, so they are never stale and never counted
    twice).

    @ivar name: the service name.
    """

    def __init__(self, name):
        self.name = name
        self._counters = Counter()
        self._gauges = {}
        self._groups = []

    def increment(self, key, amount=1):
        """
        Add C{amount} to the counter C{key}.
        """
        self._counters[key] += amount

    def gauge(self, key, read):
        """
        Export C{read()} as the gauge C{key}.
        """
        self._gauges[key] = read

    def gauges(self, readAll):
        """
        Export every entry of the C{dict} that C{readAll()} returns as a
        gauge, for a component that keeps its own figures.
        """
        self._groups.append(readAll)

    def get(self, key):
        """
        Return one current value (0 for a counter never incremented).
        """
        return self.snapshot().get(key, 0)

    def snapshot(self):
        values = dict(self._counters)
        for readAll in self._groups:
            values.update(readAll())
        for key, read in self._gauges.items():
            values[key] = read()
        return values
