"""`iscore-serve`: start gunicorn with the shipped config on the app factory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from iscore.settings import Settings, SettingsError, logged_path


def main() -> None:
    """Check settings, then replace this process with gunicorn."""
    try:
        s = Settings.from_env()
    except SettingsError as e:
        sys.exit(f"iscore-serve: {e}")
    if not (s.model_dir / "CURRENT").is_file():
        # A server that can only ever answer 503 is worse than one that does not start.
        sys.exit(f"iscore-serve: no model registry at {s.model_dir.resolve()} (no CURRENT file); "
                 "set ISCORE_MODEL_DIR to a registry directory, or run from the repository root")
    conf = Path(__file__).with_name("gunicorn_conf.py")
    args = ["gunicorn", "-c", str(conf), *sys.argv[1:], "service.app:create_app()"]
    print(f"iscore-serve: gunicorn on {s.bind}, models from {logged_path(s.model_dir)}, state in {logged_path(s.state_dir)}",
          file=sys.stderr)
    os.execvp(sys.executable, [sys.executable, "-m", *args])


if __name__ == "__main__":
    main()
