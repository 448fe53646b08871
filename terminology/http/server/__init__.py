"""The server process: the launcher, granian/gunicorn workers, reload, the metrics folder and
the in-app gzip."""
