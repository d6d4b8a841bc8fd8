"""
Tests for L{appliance.stats}.
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.interfaces import IStatsSource
from appliance.stats import Statistics


class StatisticsTests(SynchronousTestCase):
    """
    Counters and gauges of one service.
    """

    def test_interface(self):
        """
        L{Statistics} provides L{IStatsSource}.
        """
        self.assertTrue(verifyObject(IStatsSource, Statistics("sip")))

    def test_countersAndGauges(self):
        """
        Counters add up, gauges and gauge groups are read at snapshot time.
        """
        stats = Statistics("sip")
        level = [3]
        stats.increment("requests.in.OPTIONS")
        stats.increment("requests.in.OPTIONS", 2)
        stats.gauge("transactions.active", lambda: level[0])
        stats.gauges(lambda: {"transactions.timeouts": level[0] * 2})
        self.assertEqual(
            stats.snapshot(),
            {"requests.in.OPTIONS": 3, "transactions.active": 3, "transactions.timeouts": 6},
        )
        level[0] = 5
        self.assertEqual(stats.get("transactions.active"), 5)
        self.assertEqual(stats.get("never.counted"), 0)
