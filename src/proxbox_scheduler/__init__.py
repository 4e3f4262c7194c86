"""proxbox-scheduler: drive proxbox-api full syncs on a schedule."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("proxbox-scheduler")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
