"""The model-holding gRPC server (install with the ``server`` extra; entry point ``visage-server``).

One process holds ONE causal LM. The servicers (``service``) only translate protobuf to engine
calls; the engine (``engine/``) owns generation, judging, directions and weight application; the
``ModelHost`` (``host``) is the single owner of the model and runs every job on one thread.
"""
