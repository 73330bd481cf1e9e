"""The Kubernetes backend: the same fleet as objects in a cluster.

``render`` turns a resolved environment into the objects a cluster runs (model
services' engines, agents in their own images, the gateway; ``compose`` makes a
docker-compose file from the same engine containers); ``fleet`` plans and
applies them with server-side apply and waits for the rollouts.
"""
