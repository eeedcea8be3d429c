# ruff: noqa: E402
"""advdb from Python, notebook style: each ``# %%`` cell runs on its own in Jupyter or VS Code.

    python examples/notebook.py [STORE]        # default: ./advdb-example.db

It opens a store, runs an attack, loads its trajectories into pandas, plots one image's path
(``trajectory.png`` beside the store) and records torchattacks' BIM through ``advdb.record``,
checking that it stores the rows of advdb's own IFGS on the same images. A few minutes on a
laptop CPU at most; the digits CNN trains on first use (about a minute, once).
"""

# %% Open a store: a SQLite path or URL, a PostgreSQL URL, or None for the default (./advdb.db)
import sys
from pathlib import Path

import advdb

path = Path(sys.argv[1] if len(sys.argv) > 1 else "advdb-example.db").resolve()
store = advdb.open(path)
print(store)

# %% Run an attack from Python: the options of `advdb attack`, the same checks and errors
run = advdb.attack(store=store, loss="ce-sign", n=8, iterations=30, batch_size=8, device="cpu")
print(f"run {run.run_id}: {run.status}, {run.n_images} images × {run.iterations} iterations")

# %% Its trajectories in pandas (as_="arrow" gives an Arrow table, as_="polars" a Polars frame)
df = store.trajectory(run.run_id)
print(df.groupby("iteration")[["p_target", "p_init", "l2"]].mean().iloc[::10])
print(store.samples(run.run_id, columns=["image_id", "label", "target", "first_success_iter"]))

# %% One image's path: the target's and the initial class's softmax, iteration by iteration
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

image = int(df["image_id"].iloc[0])
one = df[df["image_id"] == image]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(one["iteration"], one["p_target"], label="target $s_t$")
ax.plot(one["iteration"], one["p_init"], "--", label="initial class $s_y$")
ax.set(xlabel="iteration", ylabel="softmax", title=f"run {run.run_id}, image {image}")
ax.legend()
figure = path.with_name("trajectory.png")
fig.savefig(figure, bbox_inches="tight")
print(f"wrote {figure}")

# %% Any SQL over the store (read-only), as `advdb sql` runs it
print(store.sql("SELECT attack, loss, count(*) AS images, avg(first_success_iter) AS mean_first FROM samples "
                "JOIN runs USING (run_id) GROUP BY ALL"))  # fmt: skip

# %% Record another library's attack: torchattacks' targeted BIM, on the images of an advdb IFGS run
import torchattacks

eps, alpha, steps = 0.3, 4 / 255, 20
ifgs = advdb.attack(
    store=store, attack="ifgs", epsilon=eps, alpha=alpha, iterations=steps, n=8, device="cpu",
    memory_format="contiguous",  # the layout the plain model below computes in: bit-identical logits
)  # fmt: skip
inputs = store.inputs(ifgs.run_id)  # its images, labels and targets, in attack order
model = advdb.classifier("digits-cnn")
with advdb.record(
    model, inputs.images, inputs.labels, inputs.targets, store=store, library="torchattacks", attack="BIM",
    params={"eps": eps, "alpha": alpha, "steps": steps}, dataset=inputs.dataset, indices=inputs.indices,
) as rec:  # fmt: skip
    bim = torchattacks.BIM(rec.model, eps=eps, alpha=alpha, steps=steps)
    bim.set_mode_targeted_by_label(quiet=True)
    rec.finish(bim(inputs.images, inputs.targets))  # evaluated once more: the (T + 1)-th row
assert rec.run is not None
config = rec.run.config
print(f"recorded run {rec.run.run_id}: {rec.run.attack} ({config['library']} {config['external_attack']})")

# %% Both runs stored the same rows (the library's loss and gradient are not visible: left out)
columns = ["image_id", "iteration", "pred", "p_init", "p_target", "p_other", "z_target", "l2", "linf"]
ours = store.trajectory(ifgs.run_id, columns=columns)
theirs = store.trajectory(rec.run.run_id, columns=columns)
print(f"{len(theirs)} rows, {theirs.groupby('image_id').size().iloc[0]} per image; identical: {ours.equals(theirs)}")
