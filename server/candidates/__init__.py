"""Release candidates registered at run time: checkpoints and LoRA adapters tenants add, list and
remove while the server runs (``roots``: where they may come from; ``inspection``: the checks
against the served model before one is accepted; ``loading``: its fingerprint and factors, off
the model's worker; ``records``: a candidate's record and the limits a new one must fit;
``store``: states, leases, expiry; ``service``: the gRPC servicer).
docs/operations.md, "Candidates", is the operator's view."""
