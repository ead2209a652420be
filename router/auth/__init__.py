"""Who may use the router: API tokens, their tenants and roles (access.py), checked once
per request at each door: gRPC (grpc.py) and HTTP (router/http/auth.py)."""
