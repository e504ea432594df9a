"""Lane placement of a trained model (:mod:`golden.placement`): the last step of every recipe, and a command that
applies it to a model file.

    python -m train.place MODEL.npz --recipe NAME --out OUT.npz [--data DIR] [--pe 16]

The activity that weighs each neuron is measured on the recipe's training splits, clean (no augmented copies).
Placement never changes what the model computes (every decision and readout potential is the same, the test
accuracy too); it changes only how evenly the core's lanes share the weight reads, so the cycles per frame.
``OUT`` must not be the input (nothing given is overwritten), and its folder must exist.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from golden.data import DataError, default_data_dir
from golden.model import Model
from golden.modelfile import ModelFileError, load_model, save_model
from golden.params import HardwareParams
from golden.placement import place_lanes

from .data import load_features

#: the lanes the shipped models are placed for: the default core's P
PLACEMENT_PE = HardwareParams().pe_count


def place_for_recipe(model: Model, recipe, data_dir: Path, P: int = PLACEMENT_PE, log=print) -> Model:
    """``model`` placed for ``P`` lanes by its activity on the clean training splits of ``recipe``."""
    from .recipes import LABELS
    feats = []
    for split in recipe.train_splits:
        feats += load_features(data_dir, split, LABELS, recipe.frontend).feats
    placed, _ = place_lanes(model, feats, P)
    placed = placed.replace(meta={**placed.meta, "lane_placement": {
        "pe_count": P, "activity": f"clean {'+'.join(recipe.train_splits)} split(s)"}})   # the input's meta untouched
    log(f"placed the neurons for {P} lanes by their activity on {len(feats)} training utterances")
    return placed


def main(argv=None) -> int:
    from .recipes import RECIPES
    p = argparse.ArgumentParser(prog="python -m train.place", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="the data set's folder (default ../shared/data/<set>)")
    p.add_argument("--pe", type=int, default=PLACEMENT_PE, help=f"lanes to place for (default {PLACEMENT_PE})")
    a = p.parse_args(argv)
    from rsnn.cli import CliError, check_output
    try:     # before any work: not over the input, a regular file in a folder that exists
        out = check_output(a.out, [("the input model file", a.model)], option="--out")
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not 1 <= a.pe <= 256:
        print(f"error: --pe {a.pe} not in 1..256", file=sys.stderr)
        return 2
    recipe = RECIPES[a.recipe]
    try:
        model = load_model(a.model)
        placed = place_for_recipe(model, recipe, a.data or default_data_dir(recipe.dataset), a.pe)
    except (ModelFileError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    size = save_model(placed, out)
    print(f"wrote {a.out} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
