"""MatFormer from Python: select a submodel at run time (no reload) and
get each golden slice's numbers; the official table; invalid specs."""
import json
import os

import numpy as np
import pytest

import gemma3n
from conftest import LOGITS_TOL, golden_path

MF = golden_path("matformer_tiny")


def last_logits(model, results):
    ids = np.load(os.path.join(MF, results, "input_ids.npy"))[0].tolist()
    ref = np.load(os.path.join(MF, results, "logits_prefill.npy"))
    with model.session(n_ctx=64) as s:
        s.eval(ids)
        return np.abs(s.logits - ref[-1]).max()


def test_select_each_slice_and_back():
    with gemma3n.Model(MF) as m:
        assert last_logits(m, "full") <= LOGITS_TOL
        for name in ("slice_A", "slice_B", "slice_C"):
            m.select_submodel(os.path.join(MF, name + ".json"))
            assert last_logits(m, name) <= LOGITS_TOL, name
        with open(os.path.join(MF, "slice_B.json")) as f:
            spec = json.load(f)
        m.select_submodel({"layers_to_skip": spec["layers_to_skip"], "ffn_hidden_dims": spec["ffn_hidden_dims"]})
        assert m.submodel["layers_to_skip"] == [1]
        assert last_logits(m, "slice_B") <= LOGITS_TOL
        m.select_submodel("full")
        assert m.submodel == {"layers_to_skip": [], "ffn_hidden_dims": []}
        assert last_logits(m, "full") <= LOGITS_TOL


def test_existing_session_keeps_its_submodel():
    with gemma3n.Model(MF) as m:
        ids = np.load(os.path.join(MF, "full", "input_ids.npy"))[0].tolist()
        ref = np.load(os.path.join(MF, "full", "logits_prefill.npy"))
        with m.session(n_ctx=64) as s:
            m.select_submodel(os.path.join(MF, "slice_C.json"))
            s.eval(ids)
            assert np.abs(s.logits - ref[-1]).max() <= LOGITS_TOL
        with m.session(n_ctx=64, submodel=os.path.join(MF, "slice_A.json")) as s:
            s.eval(np.load(os.path.join(MF, "slice_A", "input_ids.npy"))[0].tolist())
            ref_a = np.load(os.path.join(MF, "slice_A", "logits_prefill.npy"))
            assert np.abs(s.logits - ref_a[-1]).max() <= LOGITS_TOL


def test_submodels_table():
    with gemma3n.Model(MF) as m:
        rows = m.submodels()
        assert len(rows) == 16
        assert rows[1]["alias"] == "E2B" and rows[1]["spec"]["layers_to_skip"] == [20, 21, 22, 23, 24]
        assert rows[0]["valid"] is False and rows[0]["effective_params"] is None  # E4B rows vs a 10-layer model


@pytest.mark.parametrize("spec, fragment", [
    ({"layers_to_skip": [4]}, "cannot be skipped"),
    ({"layers_to_skip": [1, 1]}, "listed twice"),
    ({"ffn_hidden_dims": [65] * 10}, "larger than the layer's intermediate_size"),
    ("E9B", "unknown submodel"),
])
def test_invalid_specs(spec, fragment):
    with gemma3n.Model(MF) as m:
        with pytest.raises(gemma3n.ArgumentError, match=fragment):
            m.select_submodel(spec)
        assert m.submodel["layers_to_skip"] == []


def test_bad_types():
    with gemma3n.Model(MF) as m:
        with pytest.raises(TypeError):
            m.select_submodel(3)
        with pytest.raises(ValueError):
            m.select_submodel({"layers_to_skip": [-1]})
