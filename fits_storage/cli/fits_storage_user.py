"""fits_storage_user: manage the staff accounts of the status page (add, passwd, remove, list).

A password is read from the terminal (asked twice) or, for scripts, as one line on standard
input with ``--password-stdin``; never from the command line, where other users and the shell
history would see it.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from fits_storage.cli.common import EXIT_USAGE, fail, load_config_or_exit, open_database

COMMAND = "fits_storage_user"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Manage the staff accounts that may log in to /queuestatus. Passwords are "
        "hashed with argon2id; give them at the prompt or with --password-stdin.",
        epilog="add and passwd ask for the password twice at the terminal; with "
        "--password-stdin they read it as one line from standard input (for scripts).",
    )
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, helptext in (
        ("add", "create an account"),
        ("passwd", "set a new password (ends the user's open sessions)"),
    ):
        sub = commands.add_parser(action, help=helptext, description=helptext)
        sub.add_argument("username")
        sub.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password as one line from standard input instead of asking",
        )
    remove = commands.add_parser("remove", help="delete an account (its sessions end)")
    remove.add_argument("username")
    commands.add_parser("list", help="list the accounts")
    return parser


def read_password(from_stdin: bool) -> str:
    """The new password, from stdin or asked twice at the terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        fail(COMMAND, "no terminal to ask for the password: use --password-stdin", EXIT_USAGE)
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        fail(COMMAND, "the two passwords differ; nothing changed", EXIT_USAGE)
    return first


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config_or_exit(COMMAND)
    from fits_storage.staff.accounts import (
        AccountError,
        add_user,
        list_users,
        remove_user,
        set_password,
    )

    password = read_password(args.password_stdin) if args.action in ("add", "passwd") else ""
    engine, sessions = open_database(config, COMMAND)
    try:
        with sessions.begin() as session:
            if args.action == "add":
                add_user(session, args.username, password)
                print(f"user {args.username!r} added")
            elif args.action == "passwd":
                set_password(session, args.username, password)
                print(f"password of {args.username!r} changed")
            elif args.action == "remove":
                remove_user(session, args.username)
                print(f"user {args.username!r} removed")
            else:
                for user in list_users(session):
                    print(
                        f"{user.username}\tcreated {user.created:%Y-%m-%d %H:%M}"
                        f"\tpassword set {user.password_changed:%Y-%m-%d %H:%M}"
                    )
    except AccountError as exc:
        fail(COMMAND, str(exc), EXIT_USAGE)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
