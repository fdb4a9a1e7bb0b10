"""`iscore-serve`: start gunicorn with the shipped config on the app factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from iscore.settings import Settings, SettingsError


def main() -> None:
    """Check settings, then replace this process with gunicorn."""
    try:
        s = Settings.from_env()
    except SettingsError as e:
        sys.exit(f"iscore-serve: {e}")
    conf = Path(__file__).with_name("gunicorn_conf.py")
    args = ["gunicorn", "-c", str(conf), *sys.argv[1:], "service.app:create_app()"]
    print(f"iscore-serve: gunicorn on {os.environ.get('ISCORE_BIND', s.bind)}, models from {s.model_dir}",
          file=sys.stderr)
    os.execvp(sys.executable, [sys.executable, "-m", *args])


if __name__ == "__main__":
    main()
