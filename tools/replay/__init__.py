"""``shopstream replay``: rescore a range of a service's input with a chosen model version.

* :mod:`.ranges` turns ``--from``/``--to`` (times or offsets) into per-partition offsets;
* :mod:`.reader` reads those offsets through ``assign()``, never as a member of the live group;
* :mod:`.runner` loads the service's scorer pinned to the version and refuses anything that would
  touch the live service; :mod:`.loop` decodes, scores and builds records with the runtime's own
  parts, and :mod:`.writer` sends them to the replay's own topics;
* :mod:`.compare` joins the replayed outputs to the live ones (read by :mod:`.live`) by their
  lineage headers; :mod:`.summary` and :mod:`.progress` report.

The CLI (``tools/cli/replay.py``) is a thin layer over :func:`.runner.run_replay`.
"""
