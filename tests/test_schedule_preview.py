"""POST /worldwarp/schedule_preview: the web preview's curves come from the core schedule functions."""

import json

import torch

from nodes.schedule_preview import respond
from worldwarp_core.schedule import flow_sigmas, sigma_start


def _ask(**body):
    return respond(json.dumps(body).encode())


def test_curves_follow_steps_strength_and_variant():
    status, out = _ask(steps=10, strength=0.5, schedule="spatio-temporal")
    s = flow_sigmas(10)
    assert status == 200 and len(out["holes"]) == 11 and out["context"] == [0.0] * 11
    assert torch.allclose(torch.tensor(out["holes"]), s, atol=1e-5)
    assert abs(out["sigma_start"] - sigma_start(0.5, s)) < 1e-6 and out["warped"][0] == round(out["sigma_start"], 5)
    _, full = _ask(steps=10, strength=0.5, schedule="full")
    assert full["warped"] == full["holes"] and full["sigma_start"] == 1.0
    _, strong = _ask(steps=10, strength=0.9, schedule="temporal")
    assert strong["sigma_start"] > out["sigma_start"]


def test_bad_requests_say_which_field():
    assert _ask(steps=0) == (400, {"error": "'steps' must be an integer from 1 to 200, got 0"})
    assert _ask(strength=1.5)[1]["error"] == "'strength' must be a number from 0 to 1, got 1.5"
    assert _ask(schedule="x")[1]["error"] == ("'schedule' must be one of spatio-temporal, spatial, temporal, full, "
                                              "got \"x\"")
    assert respond(b"[1]")[0] == 400 and respond(b"{")[0] == 400
    assert respond(b" " * 5000) == (400, {"error": "request body is 5000 bytes; the limit is 4096"})
