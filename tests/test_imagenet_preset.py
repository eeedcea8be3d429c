"""``advdb reproduce --preset imagenet`` on a stand-in validation set where 80 % of the images are
classified correctly (the real one: about 76–81 % for ResNet-50): it plans every correct image
(``--n all``), says how many before attacking, and runs its first steps. CPU, random weights,
ten small images, one iteration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advdb.reproduce import plan_study
from advdb.store import open_store
from advdb.store.runs import get_run


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """An ImageFolder of 1,000 class folders (ImageNet's indices) holding 10 images, 8 of them in the
    folder of the class a seeded random ResNet-50 predicts for them; and that ResNet-50's weights."""
    import torchvision

    from advdb.data.imagefolder import ImageFolder
    from advdb.models.wrapper import PixelSpaceClassifier

    root = tmp_path_factory.mktemp("val")
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    weights = root.parent / "resnet50.pth"
    torch.save(net.state_dict(), weights)
    for c in range(1000):
        (root / f"c{c:03d}").mkdir()
    rng = np.random.default_rng(0)
    staging = root.parent / "staging"
    (staging / "c000").mkdir(parents=True)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(staging / "c000" / f"{i}.png")
    x = torch.from_numpy(ImageFolder(staging, workers=0).load_array(range(10)))
    with torch.no_grad():
        pred = PixelSpaceClassifier(net, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))(x).argmax(1).tolist()
    for i, p in enumerate(pred):
        label = p if i < 8 else (p + 1) % 1000  # two images whose folder is not the predicted class
        (staging / "c000" / f"{i}.png").rename(root / f"c{label:03d}" / f"{i}.png")
    return root, weights, 8


def test_the_imagenet_preset_plans_every_correct_image_and_runs_its_first_steps(
    stand_in: tuple[Path, Path, int], tmp_path: Path
) -> None:
    root, weights, correct = stand_in
    notices: list[str] = []
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        steps, ids = plan_study(
            store,
            "imagenet",
            data_dir=str(root),
            weights=str(weights),
            iterations=1,
            device="cpu",
            notice=notices.append,
        )
        assert [s.label for s in steps[:2]] == ["ce equal-multiplier", "ce-sign equal-multiplier"]
        for step in steps[:2]:
            run = get_run(store, step.run())
            assert run.status == "finished" and run.n_images == correct
            assert run.config["n"] == "all" and run.config["resolved"]["n"] == correct
    assert notices[0] == (
        f"ce equal-multiplier: planned {correct} images (--n all): resnet50 classifies {correct} of the 10 images "
        f"in {root.name} correctly"
    )
