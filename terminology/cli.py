"""The `terminology` command: serve, check content, import a licensed CPT release."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from terminology.content import ContentError, load_registry
from terminology.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env()
    if getattr(args, "host", None):
        s.host = args.host
    if getattr(args, "port", None):
        s.port = args.port
    if getattr(args, "content", None):
        s.content_dirs = [*s.content_dirs, *args.content]
    if getattr(args, "no_bundled", False):
        s.content_dirs = list(args.content or [])
    if getattr(args, "cpt", None):
        s.cpt_databases = list(args.cpt)
    if getattr(args, "workers", None):
        s.workers = args.workers
    if getattr(args, "threads", None):
        s.threads = args.threads
    if getattr(args, "server", None):
        s.server = args.server
    if getattr(args, "store", None):
        s.store = args.store
    if getattr(args, "data_dir", None):
        s.data_dir = args.data_dir
    return s


def _load(settings: Settings) -> Any:
    from terminology.content import load_content

    try:
        return load_content(settings)
    except ContentError as e:
        print(f"error: invalid content: {e}", file=sys.stderr)
        raise SystemExit(2) from e


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the content, then serve it (gunicorn by default, Flask's server with --dev)."""
    from terminology.http.app import create_app
    from terminology.http.server import serve_production

    settings = _settings(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(message)s")
    started = time.monotonic()
    registry = _load(settings)
    app = create_app(settings, registry)
    print(f"loaded content in {time.monotonic() - started:.2f} s; serving "
          f"http://{settings.host}:{settings.port}/fhir", file=sys.stderr, flush=True)
    if args.dev:
        app.run(host=settings.host, port=settings.port, threaded=True)
        return 0
    serve_production(app, settings)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate content folders without serving; exit 2 naming the first problem."""
    settings = _settings(args)
    try:
        registry = load_registry(settings.content_dirs)
    except ContentError as e:
        print(f"error: invalid content: {e}", file=sys.stderr)
        return 2
    for p in registry.providers():
        print(f"CodeSystem {p.url}|{p.version}: {p.total()} concepts")
    print(f"ValueSets: {len(registry.resources('ValueSet'))}; "
          f"ConceptMaps: {len(registry.resources('ConceptMap'))}")
    return 0


def cmd_import_cpt(args: argparse.Namespace) -> int:
    """Import an AMA CPT release folder into a SQLite database."""
    from terminology.cpt.ama_import import AmaImportError, import_to_db

    started = time.monotonic()
    try:
        release = import_to_db(args.source, args.version, args.out)
    except AmaImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"imported CPT {release.version}: {len(release.concepts)} concepts into {args.out} "
          f"in {time.monotonic() - started:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every sub-command."""
    parser = argparse.ArgumentParser(prog="terminology", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the FHIR terminology API")
    serve.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8080)")
    serve.add_argument("--content", type=Path, action="append", metavar="DIR",
                       help="extra folder of FHIR JSON content (repeatable)")
    serve.add_argument("--no-bundled", action="store_true", help="do not load codesystems/")
    serve.add_argument("--cpt", type=Path, action="append", metavar="FILE",
                       help="a CPT SQLite database (repeatable: several versions side by side)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes")
    serve.add_argument("--threads", type=int, default=None, help="threads per worker")
    serve.add_argument("--server", choices=("granian", "gunicorn"), default=None,
                       help="production WSGI server (default granian)")
    serve.add_argument("--store", default=None, metavar="URL",
                       help="where authored resources live: postgresql://... to share writes "
                            "between replicas (default: SQLite under the data directory)")
    serve.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                       help="the data directory (the SQLite store); default ~/.local/share/cpt-terminology")
    serve.add_argument("--dev", action="store_true", help="use Flask's development server")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate content without serving")
    check.add_argument("--content", type=Path, action="append", metavar="DIR")
    check.add_argument("--no-bundled", action="store_true")
    check.set_defaults(func=cmd_check)

    imp = sub.add_parser("import-cpt", help="import an AMA CPT release into a SQLite database")
    imp.add_argument("source", type=Path, help="the AMA release folder")
    imp.add_argument("--version", required=True, help="the CPT version, e.g. 2026")
    imp.add_argument("--out", type=Path, required=True, help="the SQLite file to write")
    imp.set_defaults(func=cmd_import_cpt)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `terminology` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
