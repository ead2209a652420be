"""`sllm bench fuzz`: hostile input on every RPC of the Router and EdgeWorker services and
on the HTTP door (docs/reliability.md)."""
