"""The columns of the store's record tables, by name (torch- and SQLAlchemy-free).

:mod:`advdb.store.models` defines the tables; a test checks that they agree with these lists.
"""

from __future__ import annotations

from advdb.vocabulary import TRAJECTORY_MEASURES

#: The trajectory's data columns in table order (``row_id`` is the storage locator, not data).
TRAJECTORY_COLUMNS: tuple[str, ...] = ("run_id", "image_id", "iteration", "search_step", "pred", *TRAJECTORY_MEASURES)

#: A batch's per-image summary columns (``samples``, beside ``run_id``).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "image_id",
    "batch_index",
    "label",
    "target",
    "p_init",
    "first_success_iter",
    "success_l1",
    "success_l2",
    "success_linf",
    "final_pred",
    "final_p_target",
    "final_z_target",
    "final_l1",
    "final_l2",
    "final_linf",
    "n_iterations",
)
#: A batch's adversarial image files (``artifacts``, beside ``run_id``).
ARTIFACT_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "format",
    "sha256",
    "n_bytes",
    "saved_pred",
    "still_adversarial",
)
