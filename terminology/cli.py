"""The `terminology` command: serve, reload, check content, import a licensed CPT release."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from terminology.content import ContentError, load_registry
from terminology.settings import Settings, SettingsError, settings_help

log = logging.getLogger("terminology")


def _settings(args: argparse.Namespace) -> Settings:
    """The settings from TX_* variables and the flags; exit 2 with one line when one is bad."""
    try:
        s = Settings.from_env()
        _apply_flags(s, args)
        s.check()
    except SettingsError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return s


def _apply_flags(s: Settings, args: argparse.Namespace) -> None:
    if getattr(args, "host", None):
        s.host = args.host
    if getattr(args, "port", None) is not None:
        s.port = args.port
    if getattr(args, "content", None):
        s.content_dirs = [*s.content_dirs, *args.content]
    if getattr(args, "no_bundled", False):
        s.content_dirs = list(args.content or [])
    if getattr(args, "cpt", None):
        s.cpt_databases = list(args.cpt)
    if getattr(args, "package", None):
        s.packages = [*s.packages, *args.package]
    if getattr(args, "pid_file", None):
        s.pid_file = args.pid_file
    if getattr(args, "workers", None) is not None:
        s.workers = args.workers
    if getattr(args, "threads", None) is not None:
        s.threads = args.threads
    if getattr(args, "server", None):
        s.server = args.server
    if getattr(args, "cpt_rules", None):
        s.cpt_rules = args.cpt_rules
    if getattr(args, "store", None):
        s.store = args.store
    if getattr(args, "data_dir", None):
        s.data_dir = args.data_dir


def _load(settings: Settings) -> Any:
    from terminology.content import load_content

    try:
        return load_content(settings)
    except ContentError as e:
        log.error("invalid content: %s", e)
        raise SystemExit(2) from e


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the content, then serve it (granian by default, Flask's server with --dev)."""
    from terminology import logs

    settings = _settings(args)
    logs.configure(settings.log_level)
    if not args.dev:
        # Before prometheus_client is imported and before the workers fork (multiproc.py).
        from terminology.http.server.multiproc import prepare_metrics_dir

        prepare_metrics_dir()
    from terminology.http.app import create_app
    from terminology.http.server.reload import install_sighup, record_loaded

    started = time.monotonic()
    registry = _load(settings)
    app = create_app(settings, registry)
    record_loaded(app, time.monotonic() - started)
    log.info("serving http://%s:%s/fhir", settings.host, settings.port)
    if args.dev:
        import flask.cli

        install_sighup(app)
        flask.cli.show_server_banner = lambda *_a, **_k: None  # plain text; werkzeug logs it
        app.run(host=settings.host, port=settings.port, threaded=True)
        return 0
    from terminology.http.server.launch import prepare_production
    from terminology.http.server.workers import serve_production

    serve_production(app, settings, prepare_production(app, settings))
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Ask a running server to reload its content: SIGHUP by pid file, or POST /admin/reload."""
    settings = _settings(args)
    if args.url is None:
        if settings.pid_file is None:
            print("error: give --pid-file (or TX_PID_FILE) of the running server, or --url",
                  file=sys.stderr)
            return 2
        try:
            pid = int(settings.pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as e:
            print(f"error: cannot signal the server named in {settings.pid_file}: {e}",
                  file=sys.stderr)
            return 1
        print(f"sent SIGHUP to {pid}: the server reloads its content (its log says how it went)")
        return 0
    import requests

    if not settings.admin_token:
        print("error: TX_ADMIN_TOKEN must hold the server's admin token to use --url",
              file=sys.stderr)
        return 2
    try:
        resp = requests.post(args.url.rstrip("/") + "/admin/reload", timeout=120,
                             headers={"Authorization": f"Bearer {settings.admin_token}"})
    except requests.RequestException as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{resp.status_code} {resp.text}")
    return 0 if resp.status_code in (200, 202) else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Validate content folders without serving; exit 2 naming the first problem."""
    settings = _settings(args)
    try:
        registry = load_registry(settings.content_dirs, packages=settings.packages)
    except ContentError as e:
        print(f"error: invalid content: {e}", file=sys.stderr)
        return 2
    for p in registry.providers():
        print(f"CodeSystem {p.url}|{p.version}: {p.total()} concepts")
    print(f"ValueSets: {len(registry.resources('ValueSet'))}; "
          f"ConceptMaps: {len(registry.resources('ConceptMap'))}")
    return _check_cpt(args.cpt or [])


def _check_cpt(databases: list[Path]) -> int:
    """Check each CPT database without serving it; 2 with the first problem."""
    from terminology.content import cpt_database_files
    from terminology.cpt.check import check_cpt_database
    from terminology.cpt.release import CptDataError

    try:
        files = cpt_database_files(databases)  # a folder: every *.db in it
    except ContentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in files:
        try:
            lines = check_cpt_database(path)
        except CptDataError as e:
            print(f"error: CPT database {e}", file=sys.stderr)
            return 2
        for line in lines:
            print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)
    return 0


def cmd_import_cpt(args: argparse.Namespace) -> int:
    """Import an AMA CPT release folder into a SQLite database and print the import report."""
    from terminology.cpt.ama_import import AmaImportError, import_release_to_db

    started = time.monotonic()
    try:
        report = import_release_to_db(args.source, args.version, args.out, strict=args.strict)
    except AmaImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    release = report.release
    print(f"imported CPT {release.version}: {len(release.concepts)} concepts into {args.out} "
          f"in {time.monotonic() - started:.1f} s")
    for line in report.lines():
        print(line, file=sys.stderr if line.startswith("warning:") else sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="terminology", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the FHIR terminology API",
                           epilog=settings_help(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--content", type=Path, action="append", metavar="DIR",
                       help="extra folder of FHIR JSON content (repeatable)")
    serve.add_argument("--no-bundled", action="store_true", help="do not load codesystems/")
    serve.add_argument("--cpt", type=Path, action="append", metavar="FILE",
                       help="a CPT SQLite database (repeatable: several versions side by side)")
    serve.add_argument("--package", type=Path, action="append", metavar="PATH",
                       help="a FHIR package (.tgz or extracted folder) to load (repeatable)")
    serve.add_argument("--pid-file", type=Path, default=None, metavar="FILE",
                       help="write the main process id here (for `terminology reload`)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes")
    serve.add_argument("--threads", type=int, default=None, help="threads per worker")
    serve.add_argument("--server", choices=("granian", "gunicorn"), default=None,
                       help="production WSGI server (default granian)")
    serve.add_argument("--cpt-rules", choices=("cpt", "tx.fhir.org"), default=None,
                       help="rules for CPT modifier expressions (default cpt: CPT and CMS "
                            "guidance; tx.fhir.org: tx.fhir.org's rules exactly)")
    serve.add_argument("--store", default=None, metavar="URL",
                       help="where authored resources live: postgresql://... to share writes "
                            "between replicas (default: SQLite under the data directory)")
    serve.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                       help="the data directory (the SQLite store); default ~/.local/share/cpt-terminology")
    serve.add_argument("--dev", action="store_true", help="use Flask's development server")
    serve.set_defaults(func=cmd_serve)

    reload = sub.add_parser("reload", help="make a running server reload its content")
    reload.add_argument("--pid-file", type=Path, default=None, metavar="FILE",
                        help="the server's pid file (sends SIGHUP)")
    reload.add_argument("--url", default=None,
                        help="the server's root url: POST /admin/reload with TX_ADMIN_TOKEN")
    reload.set_defaults(func=cmd_reload)

    check = sub.add_parser("check", help="validate content without serving")
    check.add_argument("--content", type=Path, action="append", metavar="DIR")
    check.add_argument("--package", type=Path, action="append", metavar="PATH")
    check.add_argument("--no-bundled", action="store_true")
    check.add_argument("--cpt", type=Path, action="append", metavar="FILE",
                       help="a CPT SQLite database to check (schema, counts, a sample of "
                            "lookups) without serving it (repeatable)")
    check.set_defaults(func=cmd_check)

    imp = sub.add_parser("import-cpt", help="import an AMA CPT release into a SQLite database")
    imp.add_argument("source", type=Path, help="the AMA release folder, or the release .zip")
    imp.add_argument("--version", required=True, help="the CPT version, e.g. 2026")
    imp.add_argument("--out", type=Path, required=True, help="the SQLite file to write")
    imp.add_argument("--strict", action="store_true",
                     help="fail (and write nothing) when the release lacks what every CPT "
                          "release has: general modifiers, 26, 59, LT, RT")
    imp.set_defaults(func=cmd_import_cpt)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `terminology` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
