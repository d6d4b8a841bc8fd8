"""
appliancectl: the appliance's administration command.

    appliancectl --config FILE user add alice@example.test --password ... \\
        --display-name "Alice" --email alice@example.test
    appliancectl --config FILE user passwd alice@example.test
    appliancectl --config FILE user del alice@example.test
    appliancectl --config FILE user list [DOMAIN]

It works on the same database file as the running appliance (SQLite in WAL
mode allows both at once). A password not given with --password is read from
the terminal (twice) or, when standard input is not a terminal, from its
first line, so that it need not appear in the process list or shell history.
"""

import argparse
import getpass
import sys

from appliance.config import ConfigError, load
from appliance.storage.database import SchemaError, SynchronousDatabase
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
        database = SynchronousDatabase(config.dataPath("appliance.sqlite"))
        database.open()
    except ConfigError as e:
        stderr.write("appliancectl: configuration errors:\n  %s\n" % ("\n  ".join(e.errors),))
        return 2
    except (SchemaError, OSError) as e:
        stderr.write("appliancectl: cannot open the database: %s\n" % (e,))
        return 1
    try:
        users = UserDirectory(database, realmFor=lambda domain: config.sip.realm or domain)
        options.run(users, options, stdin, stdout)
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
