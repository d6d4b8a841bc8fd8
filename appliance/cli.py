"""
appliancectl: the appliance's administration command.

    appliancectl --config FILE user add alice@example.test --password ... \\
        --display-name "Alice" --email alice@example.test
    appliancectl --config FILE user passwd alice@example.test
    appliancectl --config FILE user del alice@example.test
    appliancectl --config FILE user list [DOMAIN]
    appliancectl --config FILE user import users.csv [--skip-bad]
    appliancectl --config FILE rule set alice@example.test busy sip:alice-vm@example.test
    appliancectl --config FILE rule set bob@example.test redirect
    appliancectl --config FILE rule del|list ...
    appliancectl --config FILE status [--bus ADDRESS]
    appliancectl --config FILE drm protect|play|grant|revoke|rights ...  (docs/drm.md)

It works on the same database file as the running appliance (SQLite in WAL
mode allows both at once). A password not given with --password is read from
the terminal (twice) or, when standard input is not a terminal, from its
first line, so that it need not appear in the process list or shell history.
"""

import argparse
import csv
import getpass
import sys

from appliance.config import ConfigError, load
from appliance.storage.database import SchemaError, SynchronousDatabase
from appliance.sip.routing import RULES, CallRules, RuleError
from appliance.storage.users import InvalidUser, UserDirectory


class CommandError(Exception):
    """
    A failure to report in one line, with exit status 1.
    """


def _result(deferred):
    """
    Return the result of an already fired Deferred, raising its failure.
    """
    results = []
    deferred.addBoth(results.append)
    result = results[0]
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


def _readPassword(options, stdin):
    if options.password is not None:
        return options.password
    if stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the passwords do not match")
        password = first
    else:
        password = stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("the password must not be empty")
    return password


def userAdd(users, options, stdin, stdout):
    password = _readPassword(options, stdin)
    try:
        user = _result(
            users.addUser(options.user, password, options.display_name, options.email)
        )
    except KeyError:
        raise CommandError("user %s already exists" % (options.user,))
    stdout.write("added %s (realm %s)\n" % (user.aor, user.realm))


def userDel(users, options, stdin, stdout):
    try:
        _result(users.removeUser(options.user))
    except KeyError:
        raise CommandError("no user %s" % (options.user,))
    stdout.write("removed %s\n" % (options.user,))


def userPasswd(users, options, stdin, stdout):
    password = _readPassword(options, stdin)
    try:
        _result(users.setPassword(options.user, password))
    except KeyError:
        raise CommandError("no user %s" % (options.user,))
    stdout.write("password of %s changed\n" % (options.user,))


def userList(users, options, stdin, stdout):
    for user in _result(users.listUsers(options.domain)):
        stdout.write(
            "%s\t%s\t%s\n" % (user.aor, user.displayName or "", user.email or "")
        )


def userImport(users, options, stdin, stdout):
    """
    Import users from a CSV file: user@domain, password[, display name,
    email] per row; a first row naming the columns is skipped.
    """
    try:
        with open(options.file, newline="", encoding="utf-8") as f:
            rows = []
            for number, fields in enumerate(csv.reader(f), start=1):
                if not fields or not "".join(fields).strip():
                    continue
                if number == 1 and "@" not in fields[0]:
                    continue
                fields = [field.strip() for field in fields] + ["", "", ""]
                rows.append((number, fields[0], fields[1], fields[2], fields[3]))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CommandError("cannot read %s: %s" % (options.file, e))
    added, problems = _result(users.importUsers(rows, skipBad=options.skip_bad))
    for line, reason in problems:
        stdout.write("%s:%d: %s\n" % (options.file, line, reason))
    if problems and not options.skip_bad:
        raise CommandError(
            "%d bad row(s), nothing imported (--skip-bad imports the others)"
            % (len(problems),)
        )
    stdout.write("imported %d user(s)\n" % (added,))


def ruleSet(rules, options, stdin, stdout):
    try:
        _result(rules.set(options.user, options.rule, options.target or ""))
    except RuleError as e:
        raise CommandError(str(e))
    except KeyError as e:
        raise CommandError(e.args[0])
    stdout.write("%s: %s rule set\n" % (options.user, options.rule))


def ruleDel(rules, options, stdin, stdout):
    try:
        _result(rules.remove(options.user, options.rule))
    except KeyError as e:
        raise CommandError(e.args[0])
    stdout.write("%s: %s rule removed\n" % (options.user, options.rule))


def ruleList(rules, options, stdin, stdout):
    for aor, rule, target in _result(rules.list(options.user)):
        stdout.write("%s\t%s\t%s\n" % (aor, rule, target))


def buildParser():
    parser = argparse.ArgumentParser(
        prog="appliancectl", description="Administer the appliance."
    )
    parser.add_argument(
        "--config", "-c", help="the appliance configuration file (default: embedded defaults)"
    )
    parser.add_argument("--data-dir", "-d", help="overrides [appliance] data_dir")
    areas = parser.add_subparsers(dest="area", required=True)
    user = areas.add_parser("user", help="users of the appliance's domains")
    commands = user.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="add a user")
    add.add_argument("user", help="name@domain")
    add.add_argument("--password", help="the password (default: prompt or stdin)")
    add.add_argument("--display-name", help="the name shown to callers")
    add.add_argument("--email", help="where notifications go")
    add.set_defaults(run=userAdd)

    remove = commands.add_parser("del", help="remove a user")
    remove.add_argument("user", help="name@domain")
    remove.set_defaults(run=userDel)

    passwd = commands.add_parser("passwd", help="change a user's password")
    passwd.add_argument("user", help="name@domain")
    passwd.add_argument("--password", help="the password (default: prompt or stdin)")
    passwd.set_defaults(run=userPasswd)

    list_ = commands.add_parser("list", help="list users, tab-separated")
    list_.add_argument("domain", nargs="?", help="only this domain")
    list_.set_defaults(run=userList)

    import_ = commands.add_parser(
        "import", help="add users from a CSV file: user@domain,password[,name,email]"
    )
    import_.add_argument("file", help="the CSV file")
    import_.add_argument(
        "--skip-bad", action="store_true", help="import the good rows even if some are bad"
    )
    import_.set_defaults(run=userImport)

    rule = areas.add_parser("rule", help="call rules: forwarding and redirection")
    commands = rule.add_subparsers(dest="command", required=True)
    set_ = commands.add_parser(
        "set", help="set a rule: busy|noanswer|unregistered URI, or redirect"
    )
    set_.add_argument("user", help="name@domain")
    set_.add_argument("rule", choices=RULES)
    set_.add_argument("target", nargs="?", help="where calls go (a sip: URI)")
    set_.set_defaults(run=ruleSet, store="rules")
    remove = commands.add_parser("del", help="remove a rule")
    remove.add_argument("user", help="name@domain")
    remove.add_argument("rule", choices=RULES)
    remove.set_defaults(run=ruleDel, store="rules")
    list_ = commands.add_parser("list", help="list rules, tab-separated")
    list_.add_argument("user", nargs="?", help="only this user")
    list_.set_defaults(run=ruleList, store="rules")

    status = areas.add_parser(
        "status",
        help="each service's state, over D-Bus; exit 1 if one is down, 3 if the "
        "appliance cannot be reached",
    )
    status.add_argument("--bus", help="overrides [dbus] bus: system, session or an address")
    status.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the bus (default 5)"
    )
    from appliance.drm.cli import addParser as addDRMParser

    addDRMParser(areas)
    return parser


def main(argv=None, stdin=None, stdout=None, stderr=None):
    """
    Run appliancectl; return the exit status.
    """
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    options = buildParser().parse_args(argv)
    overrides = {}
    if options.data_dir:
        overrides[("appliance", "data_dir")] = options.data_dir
    try:
        config = load(options.config, overrides)
        if options.area == "status":
            from appliance.dbus.status import status

            return status(config, stdout, stderr, bus=options.bus, timeout=options.timeout)
        if options.area == "drm":
            from appliance.drm.cli import run as runDRM

            return runDRM(config, options, stdin, stdout, stderr)
        database = SynchronousDatabase(config.dataPath("appliance.sqlite"))
        database.open()
    except ConfigError as e:
        stderr.write("appliancectl: configuration errors:\n  %s\n" % ("\n  ".join(e.errors),))
        return 2
    except (SchemaError, OSError) as e:
        stderr.write("appliancectl: cannot open the database: %s\n" % (e,))
        return 1
    try:
        if getattr(options, "store", None) == "rules":
            store = CallRules(database)
        else:
            store = UserDirectory(database, realmFor=lambda domain: config.sip.realm or domain)
        options.run(store, options, stdin, stdout)
    except (CommandError, InvalidUser) as e:
        stderr.write("appliancectl: %s\n" % (e,))
        return 1
    finally:
        database.close()
    return 0


def run():
    """
    Console script entry point.
    """
    sys.exit(main())
