"""How this process was launched: alone, or as one rank of ``torchrun``.

Under ``torchrun --nproc-per-node K`` (or several nodes), every rank runs the same
``advdb attack`` command. The ranks share one run through the store, not through
``torch.distributed``: the run is keyed by torchrun's launch id (``TORCHELASTIC_RUN_ID``,
the same for every rank and kept across torchrun's restarts); rank 0 creates it and the
other ranks join it as workers (:mod:`advdb.worker`). Each rank uses ``cuda:LOCAL_RANK``
when there are GPUs, with ``--device auto`` or ``cuda`` (:func:`advdb.devices.resolve_device`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from advdb.errors import ConfigError

# torchrun's run id when it was started with neither ``--rdzv-id`` nor ``--standalone``: every such
# launch has it, so it names no launch.
ANONYMOUS_RUN_ID = "none"


@dataclass(frozen=True)
class Launch:
    """This process's place in a launch: ``rank`` is None when it was started alone."""

    rank: int | None = None
    world_size: int = 1
    key: str | None = None

    def run_key(self, join_key: str | None) -> str | None:
        """The key this launch's processes share a run by: ``--join-key`` when given, else torchrun's launch id.

        A torchrun launch without a launch id of its own (``TORCHELASTIC_RUN_ID=none``) has no key:
        taking ``none`` would join every later such launch to this run.
        """
        if join_key is not None or self.rank is None:
            return join_key
        if self.key is None:
            raise ConfigError(
                "torchrun was started without a launch id (TORCHELASTIC_RUN_ID=none), so its ranks cannot be told "
                "apart from another launch's: start torchrun with --standalone or --rdzv-id ID, or give advdb "
                "--join-key KEY"
            )
        return self.key

    @property
    def creates_run(self) -> bool:
        """Whether this process may create the run (every process when alone; rank 0 under torchrun)."""
        return self.rank in (None, 0)


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch:
    """Read torchrun's variables (``RANK``, ``WORLD_SIZE``, ``TORCHELASTIC_RUN_ID``)."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env["RANK"]) if "RANK" in env else None
    except ValueError:
        return Launch()
    if rank is None or world <= 1:
        return Launch()
    run_id = env.get("TORCHELASTIC_RUN_ID") or env.get("MASTER_ADDR", "") + ":" + env.get("MASTER_PORT", "")
    if run_id.strip().lower() == ANONYMOUS_RUN_ID:
        return Launch(rank=rank, world_size=world, key=None)
    return Launch(rank=rank, world_size=world, key=f"torchrun:{run_id}")


def local_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """torchrun's ``LOCAL_RANK`` (this process's rank on its machine), or None when it is not set."""
    value = (os.environ if environ is None else environ).get("LOCAL_RANK", "")
    return int(value) if value.isdigit() else None
