"""
Tests for L{appliance.randomness}.
"""

from twisted.trial.unittest import SynchronousTestCase

from appliance.randomness import tokenHex


class TokenTests(SynchronousTestCase):
    """
    Tokens for tags and branches.
    """

    def test_lengthAndAlphabet(self):
        """
        A token of N bytes is 2N hexadecimal digits, also across the refill
        of the pool.
        """
        for count in (1, 6, 10, 4096, 5000):
            token = tokenHex(count)
            self.assertEqual(len(token), 2 * count)
            int(token, 16)

    def test_distinct(self):
        """
        Ten thousand 6-byte tokens are all different (a collision would be a
        broken source, not bad luck).
        """
        tokens = {tokenHex(6) for _ in range(10000)}
        self.assertEqual(len(tokens), 10000)
