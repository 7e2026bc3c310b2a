"""The known answer of the negative at cfg 1 through NAG, on the toy portraits model
(devtools/toy_model/): asked for glasses at cfg 1 it draws them, and the negative "glasses",
acting through normalized attention guidance from a delayed start, takes some of them off while
the face stays. Without NAG a negative does nothing at cfg 1, so these images would keep every
pair of glasses.
"""

import numpy as np
import pytest
from delayed_negative.samplers.nag import NAGSettings

from devtools.toy_model.experiments import Run, compare, has_glasses, sample



# At cfg 1 the toy model draws glasses far less often than at cfg 5 (10 of 32 images against 27
# in `make study`): the images below are the six of the first 24 of seed 0's single-image noises
# (ComfyUI's batch_index) that have glasses at cfg 1, 10 euler steps. NAG at scale 5, tau 2.5
# from step 3: at ComfyUI's default tau 1.5 (scale 3) it takes off 1 of these 6 from step 3, as
# tau caps it (docs/toy-model.md, "NAG at cfg 1, beside CFG"). Measured on ComfyUI 0.3.75
# (2026-12-02): glasses in 6 of 6 without a negative; from step 3, 3 of 6 gone, their face's skin
# outside the glasses region overlapping the original by IoU 0.95, 0.96, 0.93. Each threshold is
# that less a margin of about one image. With the NAG hook returning the attention unchanged,
# 0 of 6 are removed and the second test fails.
NAG_RUN = {"seed": 0, "steps": 10, "cfg": 1.0, "batch_index": (4, 6, 14, 15, 17, 18)}
GLASSES_PROMPT = "portrait photo of a man with glasses"
NAG_START = 3
MIN_WITH_GLASSES = 5     # measured 6 of 6
MIN_REMOVED = 2          # measured 3 of 6
MIN_FACE_OVERLAP = 0.85  # measured >= 0.93 for each removed image


@pytest.fixture(scope="module")
def nag_runs(toy):
    return {
        "none": sample(toy, Run(GLASSES_PROMPT, **NAG_RUN)),
        "delayed": sample(toy, Run(GLASSES_PROMPT, "glasses", NAG_START, nag=NAGSettings(5.0, 2.5), **NAG_RUN)),
    }


def test_asked_for_glasses_at_cfg_1_the_toy_model_draws_them(nag_runs):
    found = has_glasses(nag_runs["none"])
    assert found.sum() >= MIN_WITH_GLASSES, found


def test_nag_from_a_delayed_start_takes_glasses_off_and_keeps_the_face(nag_runs):
    had = has_glasses(nag_runs["none"])
    delayed = compare(nag_runs["delayed"], nag_runs["none"])
    removed = had & ~delayed.glasses
    assert removed.sum() >= MIN_REMOVED, (had, delayed.glasses)
    assert np.all(delayed.face_overlap[removed] >= MIN_FACE_OVERLAP), delayed.face_overlap
