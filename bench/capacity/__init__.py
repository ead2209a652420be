"""`sllm bench capacity`: the router's throughput and latency with instant tiers."""
