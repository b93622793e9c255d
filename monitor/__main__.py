"""Lets `python -m monitor` behave exactly like the `policy-monitor` console script."""

from monitor.cli import main

if __name__ == "__main__":
    main()
