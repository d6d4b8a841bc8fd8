"""
Tests for L{appliance.cli}, the appliancectl command.
"""

import io
import os
import sqlite3
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


class ImportTests(SynchronousTestCase):
    """
    appliancectl user import.
    """

    def setUp(self):
        self.dataDir = self.mktemp()
        self.csv = self.mktemp()

    def run_(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = main(["--data-dir", self.dataDir] + list(argv), _Input(""), out, err)
        return status, out.getvalue(), err.getvalue()

    def write(self, text):
        with open(self.csv, "w") as f:
            f.write(text)

    def count(self):
        connection = sqlite3.connect(os.path.join(self.dataDir, "appliance.sqlite"))
        try:
            return connection.execute("SELECT count(*) FROM users").fetchone()[0]
        finally:
            connection.close()

    def test_importMany(self):
        """
        Twenty thousand rows, with a header row and optional columns, are
        imported in one go.
        """
        rows = ["user,password,name,email"] + [
            "u%d@example.test,pw%d,User %d,u%d@mail.test" % (i, i, i, i) for i in range(20000)
        ]
        self.write("\n".join(rows) + "\n")
        status, out, err = self.run_("user", "import", self.csv)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("imported 20000 user(s)", out)
        self.assertEqual(self.count(), 20000)
        status, out, err = self.run_("user", "list")
        self.assertIn("u19999@example.test\tUser 19999\tu19999@mail.test\n", out)

    def test_badRowsByLine(self):
        """
        Bad rows are reported with their line numbers and nothing is
        imported; --skip-bad imports the good ones.
        """
        self.run_("user", "add", "taken@example.test", "--password", "x")
        self.write(
            "ok@example.test,pw\n"
            "not a user,pw\n"
            "nopass@example.test,\n"
            "ok@example.test,again\n"
            "taken@example.test,pw\n"
            "fine@example.test,pw\n"
        )
        status, out, err = self.run_("user", "import", self.csv)
        self.assertEqual(status, 1)
        for line, reason in [(2, "not a user name"), (3, "empty password"),
                             (4, "also on line 1"), (5, "already exists")]:
            self.assertIn("%s:%d: " % (self.csv, line), out)
            self.assertIn(reason, out)
        self.assertIn("4 bad row(s), nothing imported", err)
        self.assertEqual(self.count(), 1)
        status, out, err = self.run_("user", "import", "--skip-bad", self.csv)
        self.assertEqual(status, 0)
        self.assertIn("imported 2 user(s)", out)
        self.assertEqual(self.count(), 3)

    def test_unreadableFile(self):
        """
        A missing file is one clear error.
        """
        status, out, err = self.run_("user", "import", "/nonexistent.csv")
        self.assertEqual(status, 1)
        self.assertIn("cannot read /nonexistent.csv", err)


class RuleCommandTests(SynchronousTestCase):
    """
    appliancectl rule set / del / list.
    """

    def setUp(self):
        self.dataDir = self.mktemp()
        self.run_("user", "add", "alice@example.test", "--password", "pw")

    def run_(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = main(["--data-dir", self.dataDir] + list(argv), _Input(""), out, err)
        return status, out.getvalue(), err.getvalue()

    def test_setListDel(self):
        """
        Rules are set, listed and removed.
        """
        self.assertEqual(self.run_("rule", "set", "alice@example.test", "busy",
                                   "sip:alice-vm@example.test")[0], 0)
        self.assertEqual(self.run_("rule", "set", "alice@example.test", "redirect")[0], 0)
        self.assertEqual(
            self.run_("rule", "list")[1],
            "alice@example.test\tbusy\tsip:alice-vm@example.test\n"
            "alice@example.test\tredirect\t\n",
        )
        self.assertEqual(self.run_("rule", "del", "alice@example.test", "busy")[0], 0)
        self.assertEqual(self.run_("rule", "list", "alice@example.test")[1],
                         "alice@example.test\tredirect\t\n")

    def test_errors(self):
        """
        Rules for unknown users, targets that are not SIP URIs, a target on
        redirect and removing a missing rule are refused.
        """
        cases = [
            (("rule", "set", "bob@example.test", "busy", "sip:x@example.test"), "no user"),
            (("rule", "set", "alice@example.test", "busy", "mailto:x@example.test"), "not a sip"),
            (("rule", "set", "alice@example.test", "noanswer"), "not a URI"),
            (("rule", "set", "alice@example.test", "redirect", "sip:x@y.test"), "no target"),
            (("rule", "del", "alice@example.test", "busy"), "has no busy rule"),
        ]
        for argv, message in cases:
            status, out, err = self.run_(*argv)
            self.assertEqual(status, 1, argv)
            self.assertIn(message, err)
