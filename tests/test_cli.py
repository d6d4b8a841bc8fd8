"""
Tests for L{appliance.cli}, the appliancectl command.
"""

import io
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from appliance.cli import main


class _Input(io.StringIO):
    def isatty(self):
        return False


class UserCommandTests(SynchronousTestCase):
    """
    appliancectl user add / passwd / del / list on a real database file.
    """

    def setUp(self):
        self.dataDir = self.mktemp()
        self.config = self.mktemp()
        with open(self.config, "w") as f:
            f.write("[appliance]\ndata_dir = %s\n[sip]\ndomains = example.test\n"
                    % (self.dataDir,))

    def run_(self, *argv, stdin=""):
        out, err = io.StringIO(), io.StringIO()
        status = main(["--config", self.config] + list(argv), _Input(stdin), out, err)
        return status, out.getvalue(), err.getvalue()

    def test_addListDel(self):
        """
        A user added with details is listed, then removed.
        """
        status, out, err = self.run_(
            "user", "add", "alice@example.test", "--password", "pw",
            "--display-name", "Alice", "--email", "alice@mail.test",
        )
        self.assertEqual((status, err), (0, ""))
        self.assertIn("added alice@example.test", out)
        status, out, err = self.run_("user", "list")
        self.assertEqual(out, "alice@example.test\tAlice\talice@mail.test\n")
        self.assertEqual(self.run_("user", "del", "alice@example.test")[0], 0)
        self.assertEqual(self.run_("user", "list")[1], "")

    def test_passwordFromStdin(self):
        """
        Without --password the first line of standard input is the password.
        """
        self.assertEqual(self.run_("user", "add", "bob@example.test", stdin="pw\n")[0], 0)
        self.assertEqual(self.run_("user", "passwd", "bob@example.test", stdin="new\n")[0], 0)

    def test_errors(self):
        """
        Duplicates, unknown users, bad names and empty passwords fail with
        status 1 and one line saying why.
        """
        self.run_("user", "add", "alice@example.test", "--password", "pw")
        cases = [
            (("user", "add", "alice@example.test", "--password", "x"), "already exists"),
            (("user", "del", "nobody@example.test"), "no user"),
            (("user", "passwd", "nobody@example.test", "--password", "x"), "no user"),
            (("user", "add", "not a user", "--password", "x"), "not a user name"),
            (("user", "add", "carol@example.test"), "must not be empty"),
        ]
        for argv, message in cases:
            status, out, err = self.run_(*argv)
            self.assertEqual(status, 1, argv)
            self.assertIn(message, err)

    def test_configErrors(self):
        """
        A bad configuration file is reported with status 2.
        """
        with open(self.config, "a") as f:
            f.write("bogus = 1\n")
        status, out, err = self.run_("user", "list")
        self.assertEqual(status, 2)
        self.assertIn("[sip] bogus: unknown key", err)

    def test_consoleScript(self):
        """
        The installed appliancectl command runs.
        """
        script = os.path.join(os.path.dirname(sys.executable), "appliancectl")
        result = subprocess.run(
            [script, "--config", self.config, "user", "add", "dave@example.test"],
            input="pw\n", capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("added dave@example.test", result.stdout)
