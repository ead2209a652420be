"""`sllm bench` (or `sllm bench all`): every benchmark in turn, each in a process of its
own, with its output in a log file and its headline gathered; docs/benchmarks.md."""
