"""``vigil bench``: Vigil against a hand-written baseline and the compute limit, each mode measured in
a child process of its own.

- ``run``: runs the modes one after the other (``run_bench``) and builds the JSON report.
- ``spec``: what is measured (``BenchSpec``, ``ModeSpec``), the input video and its file cameras.
- ``child``: the child process entry, ``python -m pipeline.bench.child MODE SPEC.json``.
- ``protocol``: the lines a child sends its parent on stdout.
- ``limit``, ``baseline``, ``vigil``, ``no_ray``: the modes; ``threads``: the thread-per-camera
  harness of the baseline and no-Ray modes; ``cores``: processes on several cores at once.
- ``meter``: CPU and memory of a mode's process tree; ``stats``: latency quantiles.
- ``overhead``: the run's CPU beyond decoding and the model calls, and the models' speed in the run.
- ``table``: the summary table.
"""
