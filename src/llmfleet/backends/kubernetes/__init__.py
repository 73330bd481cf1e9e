"""The Kubernetes backend: the same fleet as objects in a cluster.

Today only the pure half exists: ``render`` turns a resolved environment into
the objects a cluster runs (and ``compose`` into a docker-compose file from the
same containers). Applying them (server-side apply, the rollout wait) comes next.
"""
