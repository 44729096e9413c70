"""What talks to real systems: Docker Engine, the OCI registry, MLflow, Swarm, Azure.

Backends never import pulumi or the resources. ``protocols`` holds the
interfaces the resources depend on; each other module implements one of them
for one real system and translates that system's errors into
``mldeploy.errors`` once.
"""
