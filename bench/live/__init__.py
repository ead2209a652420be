"""`sllm bench live`: the learning loop on the real system (docs/benchmarks.md, "Live loop").

The bundled edge worker, the replay cloud and a router process serve mixed questions from
../shared/data; gold answers give Feedback; the exported log teaches a policy on the first
part of the traffic, which is evaluated on the rest, then hot-loaded and used to route it.
"""
